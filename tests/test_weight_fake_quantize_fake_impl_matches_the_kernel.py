"""The fake (meta) impl of dwq::weight_fake_quantize takes every output dtype the kernel takes (none, w's own
dtype spelled out, float16 / bfloat16 for a float32 w) and gives the kernel's output: its dtype, shape and
contiguous strides, also for a channels-last or transposed w; so torch.compile traces what eager runs."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT, has_kernel

pytestmark = pytest.mark.skipif(not (HAS_EXT and has_kernel("weight_fake_quantize", "cpu")),
                                reason="dwq._C without the fused quantizer ops")


def _weights(w_dtype):
    g = torch.Generator().manual_seed(4)
    w = torch.randn(6, 3, 3, 2, generator=g).to(w_dtype)
    return [("contiguous", w), ("channels_last", w.contiguous(memory_format=torch.channels_last)),
            ("transposed", torch.randn(5, 7, generator=g).to(w_dtype).t())]


@pytest.mark.parametrize("w_dtype, dtype", [(torch.float32, None), (torch.float32, torch.float32),
                                            (torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16),
                                            (torch.float32, torch.float16), (torch.float32, torch.bfloat16)])
def test_fake_output_is_the_kernels(w_dtype, dtype):
    """For each dtype the kernel takes, the fake impl gives the kernel's dtype, shape and strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    for layout, w in _weights(w_dtype):
        got = torch.ops.dwq.weight_fake_quantize(w, 4, dtype)
        with FakeTensorMode() as mode:
            fake = torch.ops.dwq.weight_fake_quantize(mode.from_tensor(w), 4, dtype)
        where = f"{layout} {w_dtype} -> {dtype}"
        assert got.dtype == (dtype or w_dtype) and got.is_contiguous(), where
        assert (fake.dtype, fake.shape, fake.stride()) == (got.dtype, got.shape, got.stride()), \
            f"{where}: fake {fake.dtype} {tuple(fake.shape)} {fake.stride()} vs kernel {got.stride()}"

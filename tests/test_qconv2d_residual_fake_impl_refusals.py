"""The fake (meta) impl of dwq::qconv2d_residual refuses what the kernel refuses, so torch.compile's trace fails
where eager fails: a residual that is not of the output's shape [B, O, OH, OW] (no broadcast, no other
geometry) or not float32; and for a good call it gives the kernel's two outputs: float32 y and the codes, both
channels-last of the output's shape."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT, has_kernel

pytestmark = pytest.mark.skipif(not (HAS_EXT and has_kernel("qconv2d_residual", "cpu")),
                                reason="dwq._C without the qconv2d_residual CPU kernel")


def _args(residual_shape=(2, 8, 5, 5), residual_dtype=torch.float32, out_bits=8):
    """Positional arguments of torch.ops.dwq.qconv2d_residual: a 3 x 3 conv, 4 -> 8 channels, over 2 x 4 x 5 x 5."""
    from test_qconv_residual import _case

    g = torch.Generator().manual_seed(11)
    conv, x, *_ = _case(g, 8, 4, 8, 5, 3, 1, True)
    res = torch.randn(residual_shape, generator=g).to(residual_dtype)
    if res.dim() == 4:
        res = res.contiguous(memory_format=torch.channels_last)
    nxt = (torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32), out_bits)
    return (x, *conv[:5], [3, 3], [1, 1], [1, 1], *conv[8:], res, True, *nxt)


def _eager_and_fake(args):
    """The op's outputs on CPU tensors and in FakeTensorMode."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    eager = torch.ops.dwq.qconv2d_residual(*args)
    with FakeTensorMode() as mode:
        fake = torch.ops.dwq.qconv2d_residual(*(mode.from_tensor(a) if torch.is_tensor(a) else a for a in args))
    return eager, fake


@pytest.mark.parametrize("shape, dtype", [((2, 8, 1, 1), torch.float32), ((1, 8, 5, 5), torch.float32),
                                          ((2, 8, 5, 4), torch.float32), ((8, 5, 5), torch.float32),
                                          ((2, 8, 5, 5), torch.float64)],
                         ids=["broadcast hw", "broadcast batch", "short width", "3-D", "float64"])
def test_a_residual_of_another_shape_or_dtype_fails_in_eager_and_in_the_fake_impl(shape, dtype):
    """Each bad residual raises RuntimeError naming the residual, on CPU tensors and in FakeTensorMode alike."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    args = _args(shape, dtype)
    with pytest.raises(RuntimeError, match="residual"):
        torch.ops.dwq.qconv2d_residual(*args)
    with FakeTensorMode() as mode:
        with pytest.raises(RuntimeError, match="residual must be float32 of the output's shape"):
            torch.ops.dwq.qconv2d_residual(*(mode.from_tensor(a) if torch.is_tensor(a) else a for a in args))


@pytest.mark.parametrize("out_bits", [4, 12])
def test_the_fake_outputs_are_the_kernels_dtypes_shapes_and_strides(out_bits):
    """y float32 and the codes (uint8 / int32 by out_bits), [2, 8, 5, 5], channels-last, as the kernel makes them."""
    (y, codes), (fy, fcodes) = _eager_and_fake(_args(out_bits=out_bits))
    for name, e, f in (("y", y, fy), ("codes", codes, fcodes)):
        assert (f.dtype, f.shape, f.stride()) == (e.dtype, e.shape, e.stride()), \
            f"{name}: fake {f.dtype} {tuple(f.shape)} {f.stride()} vs kernel {e.dtype} {tuple(e.shape)} {e.stride()}"
    assert y.dtype == torch.float32 and codes.dtype == (torch.uint8 if out_bits <= 8 else torch.int32)

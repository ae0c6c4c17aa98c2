"""The fake (meta) impls of dwq::qconv2d_acc and dwq::qconv2d take every geometry the kernels take, down to an
input (padding included) exactly the kernel's size, which gives one output row or column; and they give the
kernels' output dtype, shape and channels-last strides there, so torch.compile traces what eager runs."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402

# (H, W, kernel_size, stride, padding): H + 2 * padding[0] == kh and / or W + 2 * padding[1] == kw
EDGES = [(3, 3, [3, 3], [1, 1], [0, 0]), (1, 1, [3, 3], [1, 1], [1, 1]), (3, 6, [3, 2], [2, 3], [0, 0]),
         (5, 2, [2, 4], [1, 1], [0, 1]), (1, 4, [1, 4], [1, 2], [0, 0])]


@pytest.mark.parametrize("op", ["qconv2d_acc", "qconv2d"])
@pytest.mark.parametrize("H, W, ks, st, pd", EDGES)
def test_an_input_of_the_kernels_size_traces_like_it_runs(op, H, W, ks, st, pd):
    """Eager and FakeTensorMode both run; the fake output has the kernel output's dtype, shape and strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(H * 100 + W)
    x = rand_codes(g, (2, 3, H, W), 8, torch.uint8)
    w = rand_codes(g, (4, 3, *ks), 8, torch.int32)
    zx, zw = rand_zp(g, 8), rand_zp(g, 8, (4,))
    wp = q.pack_conv_weight(w, zw, 8)
    sx, sw = torch.tensor([0.1]), torch.full((4,), 0.02)

    def call(x, zx, sx, sw, wp):
        if op == "qconv2d_acc":
            return torch.ops.dwq.qconv2d_acc(x, zx, 8, wp, ks, st, pd)
        return torch.ops.dwq.qconv2d(x, sx, zx, 8, wp, sw, ks, st, pd, None, None, False, None, None, 8)

    got = call(x, zx, sx, sw, wp)
    want_hw = ((H + 2 * pd[0] - ks[0]) // st[0] + 1, (W + 2 * pd[1] - ks[1]) // st[1] + 1)
    assert tuple(got.shape) == (2, 4, *want_hw), f"kernel output {tuple(got.shape)}"
    with FakeTensorMode() as mode:
        fake = call(*(mode.from_tensor(t) for t in (x, zx, sx, sw, wp)))
    assert (fake.dtype, fake.shape, fake.stride()) == (got.dtype, got.shape, got.stride()), \
        f"fake {fake.dtype} {tuple(fake.shape)} {fake.stride()} vs kernel {got.dtype} {tuple(got.shape)} {got.stride()}"

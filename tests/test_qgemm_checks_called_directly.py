"""The C++ argument checks of the true-integer ops (csrc/ops/qgemm_checks.h), called through
torch.ops.dwq so that no Python-side check runs first: each argument a kernel would misread (another
dtype, extra dims, a zero point just outside its codes, a kernel that agrees in one dimension only,
geometry bad in its second entry) is refused with a RuntimeError that names it, never read."""

import re

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402

ops = torch.ops.dwq
I32 = torch.int32


def _gemm():
    x = torch.randint(0, 256, (7, 33), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    w = torch.randint(0, 256, (9, 33), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    zw = torch.zeros(9, dtype=I32)
    return x, w, zw, torch.tensor([1], dtype=I32), torch.tensor([0.05]), torch.full((9,), 0.01), q.pack_weight(w, zw, 8)


def _lin(x, sx, zx, wp, sw, a=None, bias=None, so=None, zo=None, ob=8):
    return ops.qlinear(x, sx, zx, 8, wp, sw, a, bias, False, so, zo, ob)


def _raises(message, fn):
    with pytest.raises(RuntimeError, match=message):
        fn()


def test_codes_of_another_integer_dtype_are_refused():
    x, w, zw, zx, _, _, wp = _gemm()
    _raises(r"dwq.qgemm_acc: x_codes must hold codes as uint8 or int32, got Short",
            lambda: ops.qgemm_acc(x.short(), zx, 8, wp))
    _raises(r"dwq.qgemm_acc: x_codes must hold codes as uint8 or int32, got Long",
            lambda: ops.qgemm_acc(x.long(), zx, 8, wp))
    _raises(r"dwq.pack_weight: w_codes must hold codes as uint8 or int32, got Short",
            lambda: ops.pack_weight(w.short(), zw, 8))


def test_codes_with_extra_dims_are_refused():
    x, w, zw, zx, _, _, wp = _gemm()
    _raises(r"dwq.qgemm_acc: x_codes must be 2-D, got shape \[7, 33, 1\]",
            lambda: ops.qgemm_acc(x.unsqueeze(-1), zx, 8, wp))
    _raises(r"dwq.pack_weight: w_codes must be 2-D, got shape \[9, 33, 1\]",
            lambda: ops.pack_weight(w.unsqueeze(-1), zw, 8))
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    _raises(r"dwq.qconv2d_acc: x_codes must be 4-D, got shape \[7, 33, 1, 1, 1\]",
            lambda: ops.qconv2d_acc(x.reshape(7, 33, 1, 1, 1), zx, 8, wc, [1, 1], [1, 1], [0, 0]))


def test_float64_scales_are_refused_not_read_as_float32():
    x, _, _, zx, sx, sw, wp = _gemm()
    _raises(r"dwq.qlinear: x_scale must be float32, got Double", lambda: _lin(x, sx.double(), zx, wp, sw))
    _raises(r"dwq.quantize_act: scale must be float32, got Double",
            lambda: ops.quantize_act(torch.ones(3), sx.double(), zx, 8))
    _raises(r"dwq.qlinear: out_scale must be float32, got Double",
            lambda: _lin(x, sx, zx, wp, sw, so=sx.double(), zo=zx))
    _raises(r"dwq.qlinear: w_scale must be float32, got Double", lambda: _lin(x, sx, zx, wp, sw.double()))
    _raises(r"dwq.qlinear: affine_scale must be float32, got Double",
            lambda: _lin(x, sx, zx, wp, sw, a=torch.ones(9, dtype=torch.float64)))
    _raises(r"dwq.qlinear: affine_bias must be float32, got Double",
            lambda: _lin(x, sx, zx, wp, sw, bias=torch.zeros(9, dtype=torch.float64)))


@pytest.mark.parametrize("bits, value", [(8, -1), (8, 256), (4, -1), (4, 16), (16, 65536)])
def test_a_zero_point_just_outside_its_codes_is_refused(bits, value):
    x, _, _, _, sx, sw, wp = _gemm()
    qmax = (1 << bits) - 1
    z = torch.tensor([value], dtype=I32)
    msg = rf"{value} is not a code of {bits} bits \(0..{qmax}\)"
    _raises(rf"dwq.qgemm_acc: x_zero_point = {msg}", lambda: ops.qgemm_acc(x, z, bits, wp))
    _raises(rf"dwq.quantize_act: zero_point = {msg}", lambda: ops.quantize_act(torch.ones(3), sx, z, bits))
    _raises(rf"dwq.qlinear: out_zero_point = {msg}",
            lambda: _lin(x, sx, torch.tensor([1], dtype=I32), wp, sw, so=sx, zo=z, ob=bits))


def test_the_edge_zero_points_are_codes():
    x, w, zw, _, sx, _, wp = _gemm()
    for z in (0, 255):
        zx = torch.tensor([z], dtype=I32)
        got = ops.qgemm_acc(x, zx, 8, wp)
        want = (x.long() - z) @ w.long().t()
        assert torch.equal(got, want)


def test_pack_weight_refuses_a_negative_zero_point():
    _, w, zw, _, _, _, _ = _gemm()
    zw[3] = -1
    _raises(r"dwq.pack_weight: zero_point\[3\] = -1 is not a code of 8 bits \(0..255\)",
            lambda: ops.pack_weight(w, zw, 8))


def test_per_channel_vectors_must_be_1d():
    x, _, _, zx, sx, sw, wp = _gemm()
    _raises(r"dwq.qlinear: w_scale must have shape \[9\] \(one per output channel\), got \[3, 3\]",
            lambda: _lin(x, sx, zx, wp, sw.reshape(3, 3)))
    _raises(r"dwq.qlinear: affine_bias must have shape \[9\] \(one per output channel\), got \[9, 1\]",
            lambda: _lin(x, sx, zx, wp, sw, bias=torch.zeros(9, 1)))


@pytest.mark.parametrize("value", [0.0, -0.01])
def test_a_weight_scale_that_is_not_positive_is_named(value):
    # (the multiplier check would catch it too, as an "underflow" of a product it never was)
    x, _, _, zx, sx, sw, wp = _gemm()
    sw[4] = value
    _raises(rf"dwq.qlinear: w_scale\[4\] must be finite and > 0, got {value:g}", lambda: _lin(x, sx, zx, wp, sw))


def test_a_gemm_refuses_a_conv_weight_packed_for_a_1xk_kernel():
    x, _, zw, zx, _, _, _ = _gemm()
    w13 = q.pack_conv_weight(torch.zeros(9, 11, 1, 3, dtype=torch.uint8), zw, 8)  # K = 33, (kx, c) order
    _raises(r"dwq.qgemm_acc: w_packed was packed by dwq.ops.pack_conv_weight for a 1x3 kernel",
            lambda: ops.qgemm_acc(x, zx, 8, w13))


def test_a_conv_kernel_must_match_the_packed_kernel_in_width_too():
    zx = torch.tensor([1], dtype=I32)
    # 3x2 kernel x 6 channels = 3x4 kernel x 3 channels = 36 columns, in another order
    w32 = q.pack_conv_weight(torch.zeros(9, 6, 3, 2, dtype=torch.uint8), torch.zeros(9, dtype=I32), 8)
    _raises(r"dwq.qconv2d_acc: w_packed was packed for a 3x2 kernel but kernel_size is \[3, 4\]",
            lambda: ops.qconv2d_acc(torch.zeros(1, 3, 5, 5, dtype=torch.uint8), zx, 8, w32, [3, 4], [1, 1], [0, 0]))


def test_a_conv_refuses_a_gemm_packed_weight_for_a_1xk_kernel():
    _, _, _, zx, _, _, wp = _gemm()  # K = 33 = 1 x 3 x 11
    _raises(re.escape("dwq.qconv2d_acc: w_packed was packed for a GEMM (dwq.ops.pack_weight) but kernel_size "
                      "[1, 3] needs its K columns in (ky, kx, c) order"),
            lambda: ops.qconv2d_acc(torch.zeros(1, 11, 4, 4, dtype=torch.uint8), zx, 8, wp, [1, 3], [1, 1], [0, 0]))


@pytest.mark.parametrize("kernel_size", [[1, -3], [1, 0]])
def test_pack_weight_refuses_a_kernel_width_below_1(kernel_size):
    # (a width of 0 was K % 0; -3 divides 33)
    _, w, zw, _, _, _, _ = _gemm()
    _raises(re.escape(f"dwq.pack_weight: kernel_size {kernel_size} must be >= 1 and divide K = 33"),
            lambda: ops.pack_weight(w, zw, 8, kernel_size))


@pytest.mark.parametrize("x_width, geometry, message", [
    (6, ([3, 3], [1, 0], [1, 1]), r"stride must be >= 1, got \[1, 0\]"),
    (6, ([3, 3], [1, 1], [0, -1]), r"padding must be >= 0, got \[0, -1\]"),
    (6, ([3, 0], [1, 1], [1, 1]), r"kernel_size must be >= 1, got \[3, 0\]"),
    (2, ([3, 3], [1, 1], [0, 0]), r"input 6x2 with padding \[0, 0\] is smaller than the kernel \[3, 3\]"),
    (1, ([3, 3], [1, 1], [1, 0]), r"input 6x1 with padding \[1, 0\] is smaller than the kernel \[3, 3\]"),
])
@pytest.mark.parametrize("op", ["qconv2d_acc", "qconv2d"])
def test_conv_geometry_is_checked_in_its_second_entry_too(op, x_width, geometry, message):
    x = torch.zeros(1, 3, 6, x_width, dtype=torch.uint8)
    zx, sx, sw = torch.tensor([5], dtype=I32), torch.tensor([0.1]), torch.full((4,), 0.02)
    wp = q.pack_conv_weight(torch.zeros(4, 3, 3, 3, dtype=torch.uint8), torch.zeros(4, dtype=I32), 8)
    if op == "qconv2d_acc":
        fn = lambda: ops.qconv2d_acc(x, zx, 8, wp, *geometry)  # noqa: E731
    else:
        fn = lambda: ops.qconv2d(x, sx, zx, 8, wp, sw, *geometry, None, None, False, None, None, 8)  # noqa: E731
    _raises(f"dwq.{op}: {message}", fn)

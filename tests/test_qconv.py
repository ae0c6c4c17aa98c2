"""True-integer conv2d ops (dwq.ops.qconv2d / qconv2d_acc): bit-exact against the int64 reference
on every CPU ISA path (1x1/3x3/7x7, stride 1/2, padding with the zero-point code, bits 2..16,
channels_last and strided inputs), the fused epilogue, opcheck and bad input."""
import math

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402


def ri(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def rand_case(g):
    xb, wb = ri(g, 2, 16), ri(g, 2, 16)
    k = [1, 3, 7][ri(g, 0, 2)]
    s = ri(g, 1, 2)
    p = ri(g, 0, k // 2)
    B, C, O = ri(g, 1, 2), ri(g, 1, 12), ri(g, 1, 70)
    H, W = ri(g, max(1, k - 2 * p), 11), ri(g, max(1, k - 2 * p), 10)
    xdt = torch.uint8 if xb <= 8 and ri(g, 0, 1) else torch.int32
    x = rand_codes(g, (B, C, H, W), xb, xdt)
    layout = ri(g, 0, 2)
    if layout == 1:
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == 2:  # non-contiguous: every other column of a wider tensor
        big = torch.zeros(B, C, H, 2 * W, dtype=xdt)
        big[..., ::2] = x
        x = big[..., ::2]
    w = rand_codes(g, (O, C, k, k), wb, torch.int32 if wb > 8 or ri(g, 0, 1) else torch.uint8)
    return x, xb, w, wb, k, s, p


def test_qconv2d_acc_exact(isa):
    g = torch.Generator().manual_seed(21)
    for i in range(220):
        x, xb, w, wb, k, s, p = rand_case(g)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (w.shape[0],))
        got = q.qconv2d_acc(x, zx, xb, q.pack_conv_weight(w, zw, wb), k, s, p)
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (p, p))
        assert got.shape == want.shape and got.dtype == torch.int64
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(got, want), f"case {i}: k={k} s={s} p={p} x={tuple(x.shape)} xb={xb} wb={wb}"


def test_wide_images(isa):
    """Channels-last uint8 images wider than one work item (the implicit conv sums only its windows'
    columns; it once summed whole rows, work growing with the square of the width): exact, and a code
    out of range at the far right edge is still found."""
    g = torch.Generator().manual_seed(25)
    for (B, C, H, W), k, p in [((1, 8, 3, 500), 3, 1), ((2, 4, 2, 450), 7, 3), ((1, 12, 1, 700), 1, 0),
                               ((1, 4, 5, 300), 3, 0), ((1, 16, 2, 1000), 5, 2)]:
        xb = ri(g, 2, 8)
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8).contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (9, C, k, k), 8)
        zx, zw = rand_zp(g, xb), rand_zp(g, 8, (9,))
        wp = q.pack_conv_weight(w, zw, 8)
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (p, p))
        assert torch.equal(q.qconv2d_acc(x, zx, xb, wp, k, 1, p), want), ((B, C, H, W), k, p, xb)
        if xb < 8:
            x[-1, -1, -1, -1] = 1 << xb
            with pytest.raises(RuntimeError, match=r"outside 0\.\.\d+"):
                q.qconv2d_acc(x, zx, xb, wp, k, 1, p)


def test_model_width_convs(isa):
    """Convs of 64 and 128 channels on channels-last uint8 codes at widths <= 8, the shapes for which
    the AMX path reads its input in place from a zero-point-padded copy (whole 16-pixel tiles, or 64
    channels at OW >= 12 with tiles 3/4 full; not OW 20): accumulators and requantized codes exact,
    with output scales a power of two (multiplied), not one (checked reciprocal) and 16-bit codes
    (divided); a code out of range in the last pixel is found."""
    g = torch.Generator().manual_seed(26)
    for i, (B, C, H, W, k, p) in enumerate([(2, 64, 5, 12, 3, 1), (1, 64, 3, 14, 3, 1), (2, 128, 2, 16, 3, 1),
                                            (1, 64, 4, 28, 3, 1), (1, 128, 3, 32, 3, 1), (1, 64, 6, 24, 5, 2),
                                            (3, 64, 4, 18, 3, 0), (1, 64, 7, 16, 7, 3), (1, 64, 3, 20, 3, 1)]):
        xb, wb, O = ri(g, 2, 8), ri(g, 2, 8), ri(g, 1, 70)
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8).contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (O, C, k, k), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        wp = q.pack_conv_weight(w, zw, wb)
        assert torch.equal(q.qconv2d_acc(x, zx, xb, wp, k, 1, p), ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (p, p)))
        sx, sw = torch.rand(1, generator=g) * 0.1 + 1e-3, torch.rand(O, generator=g) * 0.01 + 1e-4
        y = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), None, None, i % 2 == 1)
        top = float(y.abs().max()) + 1e-3
        pow2 = 2.0 ** math.ceil(math.log2(top / 100))
        for so, ob in [(pow2, 8), (top / 100 + 1e-3, 8), (top / 3e4 + 1e-6, 16)]:
            so, zo = torch.as_tensor(so, dtype=torch.float32).reshape(1), rand_zp(g, ob)
            c = q.qconv2d(x, sx, zx, xb, wp, sw, k, 1, p, None, None, i % 2 == 1, so, zo, ob)
            want = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), None, None, i % 2 == 1, so, zo, ob)
            assert torch.equal(c, want), (i, float(so), ob)
        if xb < 8:
            x[-1, -1, -1, -1] = 1 << xb
            with pytest.raises(RuntimeError, match=r"outside 0\.\.\d+"):
                q.qconv2d_acc(x, zx, xb, wp, k, 1, p)


def test_limb_codes_on_model_width_convs(isa):
    """Codes of 9..16 bits (either side) on the shapes where AMX reads a zero-point-padded copy split
    into limb planes (stride 1, 64 | C, whole or 3/4-full 16-pixel tiles): accumulators, float and
    requantized outputs exact, and a code out of range found."""
    g = torch.Generator().manual_seed(31)
    for i, (B, C, H, W, p, xb, wb) in enumerate([(2, 64, 4, 16, 1, 16, 16), (1, 64, 3, 14, 1, 12, 5),
                                                 (1, 128, 3, 16, 1, 8, 16), (1, 64, 4, 32, 0, 9, 9)]):
        O = ri(g, 1, 70)
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8 if xb <= 8 else torch.int32)
        x = x.contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (O, C, 3, 3), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        wp = q.pack_conv_weight(w, zw, wb)
        assert torch.equal(q.qconv2d_acc(x, zx, xb, wp, 3, 1, p), ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (p, p))), i
        sx, sw = torch.rand(1, generator=g) * 1e-3 + 1e-5, torch.rand(O, generator=g) * 1e-4 + 1e-6
        y = q.qconv2d(x, sx, zx, xb, wp, sw, 3, 1, p, None, None, True)
        assert torch.equal(y, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), None, None, True)), i
        so, zo = (y.abs().max() / 200 + 1e-3).reshape(1), rand_zp(g, 8)
        c = q.qconv2d(x, sx, zx, xb, wp, sw, 3, 1, p, None, None, False, so, zo, 8)
        assert torch.equal(c, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), None, None, False, so, zo, 8)), i
        if xb > 8 and xb < 16:
            x[-1, -1, -1, -1] = 1 << xb
            with pytest.raises(RuntimeError, match=r"outside 0\.\.\d+"):
                q.qconv2d_acc(x, zx, xb, wp, 3, 1, p)


def test_weights_stored_less_their_zero_point_compute_what_the_128_offset_did(isa, monkeypatch):
    """Weights of at most 7 bits are packed less their channel's zero point (no row sums needed);
    DWQ_PACK_ZP_SHIFT=0 packs them with the 128 offset of wider codes, as blobs made before were.
    Other bytes, the same accumulators, float outputs (affine, ReLU) and requantized codes, on the
    in-place (64 channels) and im2col (12 channels, stride 2) paths, and 8 bits packs alike either way."""
    g = torch.Generator().manual_seed(29)
    for B, C, H, W, s in [(2, 64, 5, 16, 1), (1, 12, 7, 9, 2)]:
        for wb in (2, 5, 7, 8):
            xb, O = ri(g, 2, 8), ri(g, 1, 70)
            x = rand_codes(g, (B, C, H, W), xb, torch.uint8).contiguous(memory_format=torch.channels_last)
            w = rand_codes(g, (O, C, 3, 3), wb)
            zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
            monkeypatch.setenv("DWQ_PACK_ZP_SHIFT", "0")
            old = q.pack_conv_weight(w, zw, wb)
            monkeypatch.delenv("DWQ_PACK_ZP_SHIFT")
            new = q.pack_conv_weight(w, zw, wb)
            assert torch.equal(old, new) == (wb == 8), wb
            acc = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (1, 1))
            sx, sw = torch.rand(1, generator=g) * 0.1 + 1e-3, torch.rand(O, generator=g) * 0.01 + 1e-4
            a, b = torch.rand(O, generator=g) + 0.5, torch.randn(O, generator=g)
            so, zo = (acc.abs().max().float() * 1e-3 + 1e-3).reshape(1), rand_zp(g, 8)
            for wp in (old, new):
                assert torch.equal(q.qconv2d_acc(x, zx, xb, wp, 3, s, 1), acc), (C, wb)
                y = q.qconv2d(x, sx, zx, xb, wp, sw, 3, s, 1, a, b, True)
                assert torch.equal(y, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (1, 1), a, b, True)), (C, wb)
                c = q.qconv2d(x, sx, zx, xb, wp, sw, 3, s, 1, a, b, True, so, zo, 8)
                want = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (1, 1), a, b, True, so, zo, 8)
                assert torch.equal(c, want), (C, wb)


def test_qconv2d_epilogue(isa):
    g = torch.Generator().manual_seed(22)
    for i in range(60):
        x, xb, w, wb, k, s, p = rand_case(g)
        O = w.shape[0]
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        sx = torch.rand(1, generator=g) * 0.1 + 1e-3
        sw = torch.rand(O, generator=g) * 0.01 + 1e-4
        a = torch.randn(O, generator=g) if i % 2 else None  # folded BN scale
        b = torch.randn(O, generator=g) if i % 3 else None  # folded BN shift / bias
        relu = i % 4 >= 2
        wp = q.pack_conv_weight(w, zw, wb)
        y = q.qconv2d(x, sx, zx, xb, wp, sw, k, s, p, a, b, relu)
        y_ref = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (p, p), a, b, relu)
        assert torch.equal(y, y_ref), f"case {i}: the float epilogue differs from the reference's order"
        ob = ri(g, 2, 16)
        so = (y_ref.abs().max() / (1 << (ob - 1)) + 1e-3).reshape(1)
        zo = rand_zp(g, ob)
        c = q.qconv2d(x, sx, zx, xb, wp, sw, k, s, p, a, b, relu, so, zo, ob)
        assert c.dtype == ref.codes_dtype(ob) and c.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(c, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (p, p), a, b, relu, so, zo, ob))


def test_padding_is_zero_point():
    """All-zx input: every output is exactly 0 however much of the window is padding."""
    x = torch.full((1, 3, 5, 5), 77, dtype=torch.uint8)
    zx = torch.tensor([77], dtype=torch.int32)
    w = torch.randint(0, 256, (4, 3, 7, 7), dtype=torch.uint8)
    zw = torch.randint(0, 256, (4,), dtype=torch.int32)
    acc = q.qconv2d_acc(x, zx, 8, q.pack_conv_weight(w, zw, 8), 7, 2, 3)
    assert acc.shape == (1, 4, 3, 3) and int(acc.abs().max()) == 0


def test_packed_kernel_recorded():
    """pack_conv_weight records its kernel in the blob's header and nothing else differs from the
    (ky, kx, c)-ordered GEMM blob; a 1 x 1 conv accepts a GEMM blob (one tap: no order), with the
    same result. (Refusals of other kernels: kernel_data.bad_op_cases.)"""
    g = torch.Generator().manual_seed(25)
    w, zw = rand_codes(g, (5, 4, 3, 2), 6), rand_zp(g, 6, (5,))
    conv = q.pack_conv_weight(w, zw, 6)
    gemm = q.pack_weight(w.permute(0, 2, 3, 1).reshape(5, -1), zw, 6)
    head = 128  # csrc/cpu/qgemm.h kHeaderBytes
    assert conv.shape == gemm.shape and torch.equal(conv.view(-1)[head:], gemm.view(-1)[head:])
    assert not torch.equal(conv.view(-1)[:head], gemm.view(-1)[:head])
    x, zx = rand_codes(g, (2, 4, 5, 6), 6, torch.uint8), rand_zp(g, 6)
    assert torch.equal(q.qconv2d_acc(x, zx, 6, conv, (3, 2), 1, 1), ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (1, 1)))
    w1 = w[:, :, :1, :1]
    want = ref.qconv2d_acc_ref(x, zx, w1, zw, (2, 2), (0, 0))
    for wp in (q.pack_conv_weight(w1, zw, 6), q.pack_weight(w1.reshape(5, 4), zw, 6)):
        assert torch.equal(q.qconv2d_acc(x, zx, 6, wp, 1, 2, 0), want)


def test_input_without_pixels(isa):
    """H or W 0 with padding: every tap is padding, so each output is the zero point's product with the
    weights; channels-last uint8 with 4 | C (the implicit conv's layout, which once divided by H * W = 0)
    and the other layouts, stride 1 and 2, accumulators and the requantizing epilogue."""
    g = torch.Generator().manual_seed(24)
    for shape, k, s, p in [((1, 16, 0, 0), 1, 1, 5), ((2, 16, 0, 3), 3, 1, 2), ((1, 8, 2, 0), 3, 2, 2)]:
        for dt, cl in [(torch.uint8, True), (torch.uint8, False), (torch.int32, True)]:
            x = torch.zeros(shape, dtype=dt)
            x = x.contiguous(memory_format=torch.channels_last) if cl else x
            w = rand_codes(g, (5, shape[1], k, k), 8)
            zx, zw = rand_zp(g, 8), rand_zp(g, 8, (5,))
            wp = q.pack_conv_weight(w, zw, 8)
            want = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (p, p))
            assert want.numel() > 0
            assert torch.equal(q.qconv2d_acc(x, zx, 8, wp, k, s, p), want), (shape, dt, cl)
            sx, sw, so = torch.tensor([0.1]), torch.full((5,), 0.01), torch.tensor([0.3])
            c = q.qconv2d(x, sx, zx, 8, wp, sw, k, s, p, None, None, True, so, zx, 8)
            assert torch.equal(c, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (p, p), None, None, True, so, zx, 8))


def test_chained_layers_match_float():
    """Codes flow from one qconv2d into the next; matches fake-quant float math to float rounding."""
    g = torch.Generator().manual_seed(4)
    x = rand_codes(g, (2, 8, 9, 9), 6, torch.uint8).contiguous(memory_format=torch.channels_last)
    zx, sx = torch.tensor([20], dtype=torch.int32), torch.tensor([0.02])
    w1 = rand_codes(g, (16, 8, 3, 3), 6, torch.uint8)
    w2 = rand_codes(g, (5, 16, 1, 1), 10, torch.int32)
    z1, z2 = rand_zp(g, 6, (16,)), rand_zp(g, 10, (5,))
    s1, s2 = torch.rand(16, generator=g) * 0.01 + 1e-3, torch.rand(5, generator=g) * 0.01 + 1e-3
    so, zo = torch.tensor([0.05]), torch.tensor([0], dtype=torch.int32)  # ReLU output: z' = 0
    h = q.qconv2d(x, sx, zx, 6, q.pack_conv_weight(w1, z1, 6), s1, 3, 1, 1, None, None, True, so, zo, 10)
    assert h.dtype == torch.int32 and h.is_contiguous(memory_format=torch.channels_last)
    y = q.qconv2d(h, so, zo, 10, q.pack_conv_weight(w2, z2, 10), s2, 1, 1, 0)
    h_ref = ref.qconv2d_ref(x, sx, zx, w1, s1, z1, (1, 1), (1, 1), None, None, True, so, zo, 10)
    assert torch.equal(h, h_ref)
    assert torch.equal(y, ref.qconv2d_ref(h_ref, so, zo, w2, s2, z2))
    # float model of the same math
    xf = (x.float() - zx.float()) * sx
    w1f = (w1.float() - z1.float().view(-1, 1, 1, 1)) * s1.view(-1, 1, 1, 1)
    hf = torch.relu(torch.nn.functional.conv2d(xf.double(), w1f.double(), padding=1))
    assert (hf - h.double() * so.double()).abs().max() <= 0.5 * so.item() + 1e-6  # within half a step


@pytest.mark.parametrize("bits", [8, 16])
def test_opcheck(bits):
    g = torch.Generator().manual_seed(6)
    x = rand_codes(g, (2, 3, 6, 5), bits, torch.uint8 if bits <= 8 else torch.int32)
    w = rand_codes(g, (4, 3, 3, 3), bits, torch.int32)
    zx, zw = rand_zp(g, bits), rand_zp(g, bits, (4,))
    wp = q.pack_conv_weight(w, zw, bits)
    sx, sw = torch.tensor([0.1]), torch.full((4,), 0.02)
    torch.library.opcheck(torch.ops.dwq.pack_weight.default, (w.permute(0, 2, 3, 1).reshape(4, -1), zw, bits, [3, 3]))
    torch.library.opcheck(torch.ops.dwq.qconv2d_acc.default, (x, zx, bits, wp, [3, 3], [2, 1], [1, 0]))
    for xl in (x.contiguous(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)):
        torch.library.opcheck(torch.ops.dwq.qconv2d_acc.default, (xl, zx, bits, wp, [3, 3], [1, 1], [1, 1]))
    xs = rand_codes(g, (2, 3, 8, 7), bits, x.dtype)[:, :, ::2, 1:6].contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.dwq.qconv2d.default,
                          (xs, sx, zx, bits, wp, sw, [3, 3], [1, 1], [1, 1], None, None, False, None, None, 8))
    torch.library.opcheck(torch.ops.dwq.qconv2d.default,
                          (x, sx, zx, bits, wp, sw, [3, 3], [1, 1], [1, 1], torch.randn(4), torch.randn(4), True,
                           None, None, 8))
    torch.library.opcheck(torch.ops.dwq.qconv2d.default,
                          (x, sx, zx, bits, wp, sw, [3, 3], [1, 2], [0, 1], None, None, False, torch.tensor([0.7]),
                           torch.tensor([5], dtype=torch.int32), 4))


def _bad_cases():
    x = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8)
    w = torch.randint(0, 256, (4, 3, 3, 3), dtype=torch.uint8)
    zx, zw = torch.tensor([5], dtype=torch.int32), torch.zeros(4, dtype=torch.int32)
    wp = q.pack_conv_weight(w, zw, 8)
    sx, sw = torch.tensor([0.1]), torch.full((4,), 0.02)
    ops = torch.ops.dwq
    return [
        ("x dim", lambda: ops.qconv2d_acc(x[0], zx, 8, wp, [3, 3], [1, 1], [1, 1]), "x_codes must be 4-D"),
        ("C mismatch", lambda: ops.qconv2d_acc(x[:, :2], zx, 8, wp, [3, 3], [1, 1], [1, 1]),
         "packed with K = 27 but kernel_size .* needs K = 18"),
        ("kernel mismatch", lambda: ops.qconv2d_acc(x, zx, 8, wp, [1, 1], [1, 1], [0, 0]), "needs K = 3"),
        ("stride 0", lambda: ops.qconv2d_acc(x, zx, 8, wp, [3, 3], [0, 1], [1, 1]), "stride must be >= 1"),
        ("padding neg", lambda: ops.qconv2d_acc(x, zx, 8, wp, [3, 3], [1, 1], [-1, 0]), "padding must be >= 0"),
        ("too small", lambda: ops.qconv2d_acc(x[..., :2, :2], zx, 8, wp, [3, 3], [1, 1], [0, 0]),
         "smaller than the kernel"),
        ("codes range", lambda: ops.qconv2d_acc(x, zx, 5, wp, [3, 3], [1, 1], [1, 1]), "outside 0..31"),
        ("bits", lambda: ops.qconv2d(x, sx, zx, 20, wp, sw, [3, 3], [1, 1], [1, 1], None, None, False, None, None, 8),
         "x_bits must be in 2..16, got 20"),
        ("w_scale inf", lambda: ops.qconv2d(x, sx, zx, 8, wp, sw / 0, [3, 3], [1, 1], [1, 1], None, None, False, None,
                                            None, 8), "w_scale\\[0\\] must be finite and > 0, got inf"),
        ("out zp range", lambda: ops.qconv2d(x, sx, zx, 8, wp, sw, [3, 3], [1, 1], [1, 1], None, None, False, sx,
                                             torch.tensor([16], dtype=torch.int32), 4),
         "out_zero_point = 16 is not a code of 4 bits"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, fn, match = case
    with pytest.raises(RuntimeError, match=match):
        fn()


@pytest.mark.parametrize("geometry, match", [
    (([3, 3], [0, 1], [1, 1]), "stride must be >= 1, got \\[0, 1\\]"),
    (([3, 3], [-1, 1], [1, 1]), "stride must be >= 1"),
    (([3, 3], [1, 1], [-1, 0]), "padding must be >= 0"),
    (([0, 3], [1, 1], [1, 1]), "kernel_size must be >= 1"),
    (([3, 3, 1], [1, 1], [1, 1]), "kernel_size, stride and padding must have 2 entries each"),
    (([3, 3], [1], [1, 1]), "kernel_size, stride and padding must have 2 entries each"),
])
@pytest.mark.parametrize("op", ["qconv2d_acc", "qconv2d"])
def test_bad_geometry_fails_alike_in_the_fake_impl(op, geometry, match):
    # torch.compile meets the fake impl first: it raised ZeroDivisionError for stride 0, "not enough
    # values to unpack" for a list of another length, and made a negative-size tensor for stride -1.
    from torch._subclasses.fake_tensor import FakeTensorMode

    x = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8)
    zx, sx, sw = torch.tensor([5], dtype=torch.int32), torch.tensor([0.1]), torch.full((4,), 0.02)
    wp = q.pack_conv_weight(torch.zeros(4, 3, 3, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.int32), 8)

    def call(x, zx, sx, sw, wp):
        if op == "qconv2d_acc":
            return torch.ops.dwq.qconv2d_acc(x, zx, 8, wp, *geometry)
        return torch.ops.dwq.qconv2d(x, sx, zx, 8, wp, sw, *geometry, None, None, False, None, None, 8)

    with pytest.raises(RuntimeError, match=match):
        call(x, zx, sx, sw, wp)
    with FakeTensorMode() as mode:
        with pytest.raises(RuntimeError, match=match):
            call(*(mode.from_tensor(t) for t in (x, zx, sx, sw, wp)))

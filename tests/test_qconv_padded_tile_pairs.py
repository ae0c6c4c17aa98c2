"""Stride-1 convs whose 16-pixel tiles the AMX path multiplies two at a time (ukernel_padded_pair:
a whole tile followed by another within its output row, in 2 x 2 accumulator tiles): pairs within
one output row (OW 32), across output rows (OW 16), a pair and a single tile per row (OW 48), a
pair, a whole and a partial tile (64 channels at OW 56), three k blocks per tap (192 channels), a
5x5 kernel, a partial second column block (100 outputs). Accumulators (the int64 store), float
output with affine and ReLU, 8- and 12-bit codes out and the residual epilogue: bit for bit the
int64 reference (and, for the residual, the conv then the residual ops) on every ISA path, with
weights of 4 bits (packed less their zero point: no pixel sums), of 8 (pixel sums per row) and
12-bit codes times 16-bit weights (the limb planes' three partial products, paired too)."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402

# (batch, channels, H, W, kernel, outputs); at least 256 output pixels, so that the items of the
# plan keep at least two tiles at one and at two threads (smaller convs are split into 16-row items)
SHAPES = [(2, 128, 8, 16, 3, 100), (1, 128, 8, 32, 3, 64), (1, 64, 6, 48, 3, 64), (1, 64, 5, 56, 3, 40),
          (2, 192, 8, 16, 3, 20), (1, 64, 8, 32, 5, 24)]


@pytest.mark.parametrize("xb,wb", [(5, 4), (8, 8), (12, 16)])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_paired_tiles_are_exact(isa, shape, xb, wb):
    B, C, H, W, k, O = shape
    p = k // 2
    g = torch.Generator().manual_seed(B * 1000 + C + W + k + wb)
    x = rand_codes(g, (B, C, H, W), xb, torch.uint8 if xb <= 8 else torch.int32)
    x = x.contiguous(memory_format=torch.channels_last)
    w = rand_codes(g, (O, C, k, k), wb)
    zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
    wp = q.pack_conv_weight(w, zw, wb)
    at = f"{shape} bits {xb} x {wb} {isa}"
    assert torch.equal(q.qconv2d_acc(x, zx, xb, wp, k, 1, p), ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (p, p))), at
    sx, sw = torch.tensor([0.01]), torch.rand(O, generator=g) * 1e-3 + 1e-5
    aff = (torch.randn(O, generator=g), torch.randn(O, generator=g))
    y = q.qconv2d(x, sx, zx, xb, wp, sw, k, 1, p, *aff, True)
    assert torch.equal(y, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), *aff, True)), at
    top = float(y.abs().max()) + 1e-3
    for ob in (8, 12):
        so, zo = torch.tensor([top / (1 << (ob - 1))]), rand_zp(g, ob)
        c = q.qconv2d(x, sx, zx, xb, wp, sw, k, 1, p, *aff, False, so, zo, ob)
        want = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (p, p), *aff, False, so, zo, ob)
        assert torch.equal(c, want), (at, ob)
    res = (torch.randn(y.shape, generator=g) * top).contiguous(memory_format=torch.channels_last)
    nxt = (torch.tensor([top / 64]), torch.tensor([128], dtype=torch.int32), 8)
    y2, c2 = torch.ops.dwq.qconv2d_residual.default(x, sx, zx, xb, wp, sw, [k, k], [1, 1], [p, p], *aff, res, True,
                                                    *nxt)
    want_y = torch.relu(q.qconv2d(x, sx, zx, xb, wp, sw, k, 1, p, *aff) + res)
    assert torch.equal(y2, want_y) and torch.equal(c2, ref.quantize_act_ref(want_y, *nxt)), at

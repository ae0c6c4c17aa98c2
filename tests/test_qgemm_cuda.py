"""The true-integer ops on CUDA (csrc/cuda/qgemm*.cu): every op bit-exact against the int64 reference
(dwq.ops.qgemm_reference) and against the CPU op, over randomized cases that reach each kernel path:
the 8-bit tensor-core kernel on the caller's uint8 codes (16-byte aligned rows), on prepared planes
(int32 codes, strided or misaligned rows), the implicit-GEMM conv (channels-last uint8, C % 16 == 0)
and im2col conv, the limb kernel (widths 9..16 of x and/or w), split-K for K beyond the int32-exact
chunk; the same packed-weight bytes on both devices; the CPU op's errors, plus device mismatches;
a converted integer model on the GPU. Float outputs equal the CPU op's bit for bit (one arithmetic,
csrc/common/arith.h) and the reference within float rounding of the epilogue.
"""
import pytest
import torch

from dwq.ops._lib import HAS_EXT, has_kernel

pytestmark = [
    pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(HAS_EXT and torch.cuda.is_available() and not has_kernel("qlinear", "cuda"),
                       reason="dwq._C was built without its CUDA kernels (DWQ_NO_CUDA=1 or no nvcc)"),
]

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import bad_op_cases, rand_codes, rand_zp  # noqa: E402

DEV = "cuda"
WIDTHS = list(range(2, 17))
ENGINES = ["mma", "wgmma", "wgmma_tma", "wgmma_pp"]


@pytest.fixture
def engine(request, monkeypatch):
    """The tensor-core kernel the op runs on (DWQ_CUDA_GEMM): mma.sync on every GPU, wgmma (cp.async-fed),
    wgmma_tma (warp-specialized: a producer warpgroup feeds it by TMA) and wgmma_pp (the same with ping-pong
    consumer warpgroups, 8-bit tiles) on Hopper."""
    if request.param.startswith("wgmma") and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip(f"the {request.param} engine needs a GPU of compute capability 9.0 (H100, H200)")
    monkeypatch.setenv("DWQ_CUDA_GEMM", request.param)
    return request.param


engines = pytest.mark.parametrize("engine", ENGINES, indirect=True)


def rdim(g, hi):
    r = int(torch.randint(0, 5, (1,), generator=g))
    return 1 if r == 0 else int(torch.randint(1, hi + 1, (1,), generator=g))


def layout(g, x):
    """The same values as contiguous, transposed-storage or column-sliced (misaligned rows) codes."""
    r = int(torch.randint(0, 3, (1,), generator=g))
    if r == 1:
        return x.t().contiguous().t()
    if r == 2:
        big = torch.zeros(x.shape[0], x.shape[1] + 3, dtype=x.dtype, device=x.device)
        big[:, 3:] = x
        return big[:, 3:]
    return x


def gemm_case(g, xb, wb, M, N, K, x_dtype=None):
    x = rand_codes(g, (M, K), xb, x_dtype)
    w = rand_codes(g, (N, K), wb)
    return x, w, rand_zp(g, xb), rand_zp(g, wb, (N,))


def cu(*ts):
    return [None if t is None else t.to(DEV) for t in ts]


# ----------------------------------------------------------------------------- pack / quantize

@pytest.mark.parametrize("bits", WIDTHS)
def test_pack_weight_same_bytes_as_cpu(bits):
    g = torch.Generator().manual_seed(100 + bits)
    for N, K in [(1, 1), (5, 33), (64, 64), (65, 3), (130, 257)]:
        w = rand_codes(g, (N, K), bits)
        zw = rand_zp(g, bits, (N,))
        want = q.pack_weight(w, zw, bits)
        for wl in (w, w.t().contiguous().t(), w[:, :]):
            got = q.pack_weight(wl.to(DEV), zw.to(DEV), bits)
            assert got.device.type == "cuda" and got.shape == want.shape == q.packed_weight_shape(N, K, bits)
            assert torch.equal(got.cpu(), want), f"N={N} K={K} bits={bits}"
    wc = rand_codes(g, (7, 3, 3, 2), bits)
    zc = rand_zp(g, bits, (7,))
    assert torch.equal(q.pack_conv_weight(wc.to(DEV), zc.to(DEV), bits).cpu(), q.pack_conv_weight(wc, zc, bits))


def test_cpu_packed_blob_moved_to_cuda():
    g = torch.Generator().manual_seed(2)
    x, w, zx, zw = gemm_case(g, 8, 12, 37, 70, 99)
    wp = q.pack_weight(w, zw, 12).to(DEV)  # packed on the CPU: the same bytes serve the GPU
    assert torch.equal(q.qgemm_acc(x.to(DEV), zx.to(DEV), 8, wp).cpu(), ref.qgemm_acc_ref(x, zx, w, zw))


@engines
def test_both_packings_of_narrow_weights(engine, monkeypatch):
    """Weights of 2..7 bits packed less their zero point (the default) and with the 128 offset
    (DWQ_PACK_ZP_SHIFT=0, every blob before): the same bytes on either device, and on the GPU the
    exact accumulators and requantized codes of the reference, whichever the blob."""
    g = torch.Generator().manual_seed(7)
    for xb, wb in [(8, 2), (5, 7), (12, 4)]:
        x, w, zx, zw = gemm_case(g, xb, wb, 70, 90, 300)
        monkeypatch.setenv("DWQ_PACK_ZP_SHIFT", "0")
        old = q.pack_weight(w, zw, wb)
        assert torch.equal(q.pack_weight(*cu(w, zw), wb).cpu(), old)
        monkeypatch.delenv("DWQ_PACK_ZP_SHIFT")
        new = q.pack_weight(w, zw, wb)
        assert torch.equal(q.pack_weight(*cu(w, zw), wb).cpu(), new) and not torch.equal(old, new)
        sx, sw = torch.tensor([0.02]), torch.rand(90, generator=g) * 0.01 + 1e-3
        so, zo = torch.tensor([0.3]), torch.tensor([9], dtype=torch.int32)
        want = ref.qgemm_acc_ref(x, zx, w, zw)
        codes = q.qlinear(x, sx, zx, xb, new, sw, None, None, True, so, zo, 8)
        for wp in (old, new):
            assert torch.equal(q.qgemm_acc(*cu(x, zx), xb, wp.to(DEV)).cpu(), want), (xb, wb)
            got = q.qlinear(*cu(x, sx, zx), xb, wp.to(DEV), sw.to(DEV), None, None, True, *cu(so, zo), 8)
            assert torch.equal(got.cpu(), codes), (xb, wb)


@pytest.mark.parametrize("bits", WIDTHS)
def test_quantize_act_matches_cpu(bits):
    g = torch.Generator().manual_seed(200 + bits)
    s = torch.rand(1, generator=g) * 0.1 + 1e-3
    z = rand_zp(g, bits)
    base = torch.randn(3, 5, 7, 9, generator=g) * 4
    base.view(-1)[:8] = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1e30, -float("inf"), 0.0]) * s
    for x in (base, base.contiguous(memory_format=torch.channels_last), base.transpose(1, 3), base[:, :, ::2, 1:],
              base[0, 0]):
        want = q.quantize_act(x, s, z, bits)
        got = q.quantize_act(x.to(DEV), s.to(DEV), z.to(DEV), bits)
        assert got.dtype == ref.codes_dtype(bits) and got.shape == x.shape and got.stride() == want.stride()
        assert torch.equal(got.cpu(), want)
        assert torch.equal(got.cpu(), ref.quantize_act_ref(x, s, z, bits))


# ----------------------------------------------------------------------------- GEMM

@engines
def test_qgemm_acc_every_width_pair(engine):
    """Every x width 2..16 against every w width 2..16 once, ragged shapes, random layouts."""
    g = torch.Generator().manual_seed(300)
    for xb in WIDTHS:
        for wb in WIDTHS:
            M, N, K = rdim(g, 150), rdim(g, 200), rdim(g, 300)
            x, w, zx, zw = gemm_case(g, xb, wb, M, N, K)
            xd = layout(g, x.to(DEV))
            wp = q.pack_weight(layout(g, w.to(DEV)), zw.to(DEV), wb)
            got = q.qgemm_acc(xd, zx.to(DEV), xb, wp)
            assert got.dtype == torch.int64 and got.shape == (M, N) and got.device.type == "cuda"
            assert torch.equal(got.cpu(), ref.qgemm_acc_ref(x, zx, w, zw)), f"M={M} N={N} K={K} xb={xb} wb={wb}"


@pytest.mark.parametrize("M, N, K", [(1, 1, 1), (1, 10, 4096), (1, 1000, 512), (128, 128, 64), (129, 129, 65),
                                     (300, 64, 48), (257, 384, 1000), (2048, 256, 96), (128, 256, 128),
                                     (129, 257, 129), (65, 129, 383), (130, 65, 300), (9, 300, 700), (257, 64, 200)])
@pytest.mark.parametrize("xb, wb", [(8, 8), (4, 4), (2, 8), (8, 16), (16, 8), (12, 12)])
@engines
def test_qgemm_acc_tile_edges(M, N, K, xb, wb, engine):
    """Shapes at and around the CTA tiles (mma: 128 x 128 or 256 x 64 by N, 64 x 128 for limbs, 64-deep K
    stages; wgmma and wgmma_tma: 128 x 64, 128 or 256 by N, 64 x 128 for limbs, 128-deep K stages; wgmma_pp:
    128 x 64 or 128 per warpgroup), 1 row and 9
    (dp4a up to 8), uint8 codes with 16-byte aligned rows (read in place: contiguous, and rows longer than K,
    which the TMA tensor map strides over) and the same through prepared planes."""
    g = torch.Generator().manual_seed(M * 7 + N * 3 + K)
    x, w, zx, zw = gemm_case(g, xb, wb, M, N, K, torch.uint8 if xb <= 8 else torch.int32)
    want = ref.qgemm_acc_ref(x, zx, w, zw)
    wp = q.pack_weight(w.to(DEV), zw.to(DEV), wb)
    wide = torch.full((M, (K + 16) // 16 * 16 + 16), 255, dtype=x.dtype, device=DEV)
    wide[:, :K] = x.to(DEV)  # 16-byte aligned rows, K .. row end not zero: must never be read
    for xd in (x.to(DEV), wide[:, :K], layout(g, x.to(DEV)), x.to(DEV).int()):
        assert torch.equal(q.qgemm_acc(xd, zx.to(DEV), xb, wp).cpu(), want)


@pytest.mark.parametrize("xb", [8, 12])
@engines
def test_many_tiles(xb, engine):
    """More output tiles than an H200 has SMs (132): wgmma_tma's persistent grid walks several per CTA
    through one stage ring (its barrier phases run on across tiles; wgmma_pp's two consumer warpgroups take
    them in turn), for a matrix and an implicit conv;
    against the CPU op (itself exact against the int64 reference), which is fast at this size."""
    g = torch.Generator().manual_seed(21 + xb)
    x, w, zx, zw = gemm_case(g, xb, 8, 2304, 2304, 200, torch.uint8 if xb <= 8 else torch.int32)
    want = q.qgemm_acc(x, zx, xb, q.pack_weight(w, zw, 8))
    assert torch.equal(q.qgemm_acc(*cu(x, zx), xb, q.pack_weight(*cu(w, zw), 8)).cpu(), want)
    if xb <= 8:  # 72 x 16 x 16 outputs = 144 row tiles of 128
        xc = rand_codes(g, (72, 64, 16, 16), xb, torch.uint8).contiguous(memory_format=torch.channels_last)
        wc, zc = rand_codes(g, (128, 64, 3, 3), 8), rand_zp(g, 8, (128,))
        want = q.qconv2d_acc(xc, zx, xb, q.pack_conv_weight(wc, zc, 8), 3, 1, 1)
        got = q.qconv2d_acc(xc.to(DEV), zx.to(DEV), xb, q.pack_conv_weight(*cu(wc, zc), 8), 3, 1, 1)
        assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("zx_at, zw_at", [(0, 0), ("max", "max"), (0, "max"), ("max", 0)])
@engines
def test_qgemm_acc_extreme_zero_points(zx_at, zw_at, engine):
    g = torch.Generator().manual_seed(7)
    for bits in (2, 8, 9, 16):
        qmax = (1 << bits) - 1
        x, w, _, _ = gemm_case(g, bits, bits, 33, 70, 130)
        zx = torch.tensor([0 if zx_at == 0 else qmax], dtype=torch.int32)
        zw = torch.full((70,), 0 if zw_at == 0 else qmax, dtype=torch.int32)
        got = q.qgemm_acc(*cu(x, zx), bits, q.pack_weight(*cu(w, zw), bits))
        assert torch.equal(got.cpu(), ref.qgemm_acc_ref(x, zx, w, zw))


@engines
def test_no_overflow_k65536_16bit(engine):
    """K = 65,536 (+3) at 16 bits, every code at an extreme: int64 accumulators, two z-slices of the limb
    kernel (split-K through the int64 workspace)."""
    K = 65536 + 3
    x = torch.full((2, K), 65535, dtype=torch.int32)
    x[1] = 0
    w = torch.full((3, K), 65535, dtype=torch.int32)
    w[1] = 0
    zw = torch.tensor([0, 65535, 32768], dtype=torch.int32)
    wp = q.pack_weight(*cu(w, zw), 16)
    big = K * 65535 * 65535
    acc = q.qgemm_acc(*cu(x, torch.tensor([0], dtype=torch.int32)), 16, wp).cpu()
    assert acc[0].tolist() == [big, -big, K * 65535 * 32767] and acc[1].tolist() == [0, 0, 0]
    zx = torch.tensor([40000], dtype=torch.int32)
    assert torch.equal(q.qgemm_acc(*cu(x, zx), 16, wp).cpu(), ref.qgemm_acc_ref(x, zx, w, zw))


@pytest.mark.parametrize("K", [40000, 65536, 65536 + 64 + 5, 140000])
@engines
def test_8bit_large_k(K, engine):
    """8-bit codes at the extremes with K around the 65,536-column z-slice of the 8-bit kernel."""
    x = torch.full((3, K), 255, dtype=torch.uint8)
    x[2, ::3] = 0
    w = torch.full((2, K), 255, dtype=torch.uint8)
    w[1] = 0
    zx, zw = torch.tensor([0], dtype=torch.int32), torch.tensor([0, 255], dtype=torch.int32)
    acc = q.qgemm_acc(*cu(x, zx), 8, q.pack_weight(*cu(w, zw), 8)).cpu()
    assert torch.equal(acc, ref.qgemm_acc_ref(x, zx, w, zw))


@engines
def test_qlinear_epilogue_matches_cpu(engine):
    g = torch.Generator().manual_seed(12)
    for i in range(90):
        xb, wb = WIDTHS[i % 15], int(torch.randint(2, 17, (1,), generator=g))
        M, N, K = rdim(g, 140), rdim(g, 150), rdim(g, 200)
        x, w, zx, zw = gemm_case(g, xb, wb, M, N, K)
        sx = torch.rand(1, generator=g) * 0.1 + 1e-3
        sw = torch.rand(N, generator=g) * 0.01 + 1e-4
        a = torch.randn(N, generator=g) if i % 2 else None
        b = torch.randn(N, generator=g) if i % 3 else None
        relu = bool(i % 4 >= 2)
        wp = q.pack_weight(w, zw, wb)
        wpd = q.pack_weight(*cu(w, zw), wb)
        y_cpu = q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu)
        y = q.qlinear(layout(g, x.to(DEV)), *cu(sx, zx), xb, wpd, *cu(sw, a, b), relu)
        assert y.dtype == torch.float32 and y.shape == (M, N)
        assert torch.equal(y.cpu(), y_cpu), f"case {i}: float output differs from the CPU op"
        y_ref = ref.qlinear_ref(x, sx, zx, w, sw, zw, a, b, relu)
        torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-5, atol=1e-6 * (1 + y_ref.abs().max().item()))
        ob = int(torch.randint(2, 17, (1,), generator=g))
        so = (y_ref.abs().max() / (1 << (ob - 1)) + 1e-3).reshape(1)
        zo = rand_zp(g, ob)
        c = q.qlinear(x.to(DEV), *cu(sx, zx), xb, wpd, *cu(sw, a, b), relu, *cu(so, zo), ob)
        assert c.dtype == ref.codes_dtype(ob)
        assert torch.equal(c.cpu(), ref.qlinear_ref(x, sx, zx, w, sw, zw, a, b, relu, so, zo, ob)), f"case {i}"
        assert torch.equal(c.cpu(), q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu, so, zo, ob))


@pytest.mark.parametrize("M", range(1, 10))
def test_few_rows_dp4a(M):
    """Up to 8 rows run on the dp4a kernel whatever the engine (9: the tensor cores): every width pair
    class, K with 1..3 trailing codes (read byte by byte, never past a row's K), rows read in place,
    strided past K, misaligned (planes) or as int32, and split-K slices; accumulators and the fused
    epilogue."""
    g = torch.Generator().manual_seed(100 + M)
    for xb, wb, N, K in [(8, 8, 70, 1), (2, 2, 64, 3), (8, 16, 130, 67), (16, 8, 5, 4098), (16, 16, 64, 129),
                         (12, 5, 200, 250), (4, 4, 1000, 4096), (8, 8, 64, 70001), (16, 16, 3, 40000)]:
        x, w, zx, zw = gemm_case(g, xb, wb, M, N, K, torch.uint8 if xb <= 8 else torch.int32)
        want = ref.qgemm_acc_ref(x, zx, w, zw)
        wpd = q.pack_weight(*cu(w, zw), wb)
        wide = torch.full((M, (K + 16) // 16 * 16 + 16), 255 if xb <= 8 else 65535, dtype=x.dtype, device=DEV)
        wide[:, :K] = x.to(DEV)
        for xd in (x.to(DEV), wide[:, :K], layout(g, x.to(DEV)), x.to(DEV).int()):
            assert torch.equal(q.qgemm_acc(xd, zx.to(DEV), xb, wpd).cpu(), want), f"xb={xb} wb={wb} N={N} K={K}"
        sx, sw = torch.tensor([0.003]), torch.rand(N, generator=g) * 1e-3 + 1e-5
        a, b = torch.randn(N, generator=g), torch.randn(N, generator=g)
        y = q.qlinear(x.to(DEV), *cu(sx, zx), xb, wpd, *cu(sw, a, b), True)
        assert torch.equal(y.cpu(), q.qlinear(x, sx, zx, xb, q.pack_weight(w, zw, wb), sw, a, b, True))


@pytest.mark.parametrize("M, K", [(1, 4096), (5, 3000), (40, 2048)])
@pytest.mark.parametrize("xb, wb", [(8, 8), (12, 4)])
@engines
def test_qlinear_split_k_epilogue(M, K, xb, wb, engine):
    """Skinny GEMMs run split over K (int64 sums in a workspace, then the epilogue kernel): the fused
    epilogue's results, float and requantized, equal the CPU op's."""
    g = torch.Generator().manual_seed(M + K + xb)
    x, w, zx, zw = gemm_case(g, xb, wb, M, 70, K)
    sx, sw = torch.tensor([0.002]), torch.rand(70, generator=g) * 1e-3 + 1e-5
    a, b = torch.randn(70, generator=g), torch.randn(70, generator=g)
    wp, wpd = q.pack_weight(w, zw, wb), q.pack_weight(*cu(w, zw), wb)
    assert torch.equal(q.qgemm_acc(*cu(x, zx), xb, wpd).cpu(), ref.qgemm_acc_ref(x, zx, w, zw))
    for relu in (False, True):
        y = q.qlinear(*cu(x, sx, zx), xb, wpd, *cu(sw, a, b), relu)
        assert torch.equal(y.cpu(), q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu))
        so, zo = (y.abs().max().cpu() / 100 + 1e-3).reshape(1), torch.tensor([9], dtype=torch.int32)
        c = q.qlinear(*cu(x, sx, zx), xb, wpd, *cu(sw, a, b), relu, *cu(so, zo), 8)
        assert torch.equal(c.cpu(), q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu, so, zo, 8))


@engines
def test_qlinear_batched_and_empty(engine):
    g = torch.Generator().manual_seed(3)
    x = rand_codes(g, (2, 3, 17), 8, torch.uint8)
    w = rand_codes(g, (5, 17), 8, torch.uint8)
    zx, zw = torch.tensor([7], dtype=torch.int32), torch.full((5,), 100, dtype=torch.int32)
    sx, sw = torch.tensor([0.1]), torch.full((5,), 0.02)
    wp = q.pack_weight(*cu(w, zw), 8)
    y = q.qlinear(*cu(x, sx, zx), 8, wp, sw.to(DEV))
    assert y.shape == (2, 3, 5)
    assert torch.equal(y.cpu(), q.qlinear(x, sx, zx, 8, q.pack_weight(w, zw, 8), sw))
    e = q.qlinear(torch.zeros(0, 17, dtype=torch.uint8, device=DEV), *cu(sx, zx), 8, wp, sw.to(DEV))
    assert e.shape == (0, 5) and e.dtype == torch.float32 and e.device.type == "cuda"


@engines
def test_odd_storage(engine):
    """Storage the kernels read in place or must copy first: rows at storage offset 1 (planes), a padded
    row stride (in place, and the TMA's direct map of x), stride-0 rows (an expanded row), a packed blob
    at an odd address (cloned for cp.async), tiles larger than the tensor; each exact."""
    g = torch.Generator().manual_seed(11)
    M, N, K = 300, 48, 1000
    x, w, zx, zw = gemm_case(g, 8, 8, M, N, K, torch.uint8)
    wp, zxd = q.pack_weight(*cu(w, zw), 8), zx.to(DEV)
    want = ref.qgemm_acc_ref(x, zx, w, zw)
    padded = torch.zeros(M, 1008, dtype=torch.uint8, device=DEV)
    padded[:, :K] = x.to(DEV)
    shifted = torch.zeros(M * K + 1, dtype=torch.uint8, device=DEV)[1:].view(M, K)
    shifted.copy_(x)
    for name, xv in {"padded rows": padded[:, :K], "offset 1": shifted}.items():
        assert torch.equal(q.qgemm_acc(xv, zxd, 8, wp).cpu(), want), name
    row = x.to(DEV)[:1].expand(M, K)
    assert torch.equal(q.qgemm_acc(row, zxd, 8, wp).cpu(), ref.qgemm_acc_ref(x[:1].expand(M, K), zx, w, zw))
    odd = torch.zeros(wp.numel() + 1, dtype=torch.int8, device=DEV)[1:].view(wp.shape)
    odd.copy_(wp)
    assert torch.equal(q.qgemm_acc(x.to(DEV), zxd, 8, odd).cpu(), want)
    xs, ws, zxs, zws = gemm_case(g, 8, 8, 9, 48, 16, torch.uint8)
    assert torch.equal(q.qgemm_acc(*cu(xs, zxs), 8, q.pack_weight(*cu(ws, zws), 8)).cpu(),
                       ref.qgemm_acc_ref(xs, zxs, ws, zws))


@engines
def test_conv_storage_offsets_and_padding_only(engine, monkeypatch):
    """Channels-last codes at storage offset 16 (aligned: the implicit conv reads them in place) and 1
    (copied to planes); an input with no pixels whose output is all padding; checks on and off."""
    g = torch.Generator().manual_seed(12)
    B, C, H, W, O = 2, 16, 9, 9, 24
    x = rand_codes(g, (B, C, H, W), 8, torch.uint8)
    w = rand_codes(g, (O, C, 3, 3), 8)
    zx, zw = rand_zp(g, 8), rand_zp(g, 8, (O,))
    wp = q.pack_conv_weight(*cu(w, zw), 8)
    want = ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (1, 1))
    cl = x.contiguous(memory_format=torch.channels_last)
    for off in (16, 1):
        xo = torch.zeros(x.numel() + off, dtype=torch.uint8, device=DEV).as_strided(cl.shape, cl.stride(), off)
        xo.copy_(cl)
        assert torch.equal(q.qconv2d_acc(xo, zx.to(DEV), 8, wp, 3, 1, 1).cpu(), want), off
    empty = torch.zeros(1, C, 0, 0, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    w1 = rand_codes(g, (O, C, 1, 1), 8)
    want0 = q.qconv2d_acc(empty, zx, 8, q.pack_conv_weight(w1, zw, 8), 1, 1, 5)
    assert want0.shape == (1, O, 10, 10)
    wp1 = q.pack_conv_weight(*cu(w1, zw), 8)
    for checks in ("1", "0"):
        monkeypatch.setenv("DWQ_CUDA_CHECKS", checks)
        assert torch.equal(q.qconv2d_acc(empty.to(DEV), zx.to(DEV), 8, wp1, 1, 1, 5).cpu(), want0), checks


@engines
def test_side_stream_and_cuda_graph(engine, monkeypatch):
    """The op runs on the caller's current stream (a side stream here), and with DWQ_CUDA_CHECKS=0 (no
    read-back) it is captured in a CUDA graph whose replay reads new codes from the captured input (the
    tensor maps and the launch parameters baked into the graph stay valid)."""
    g = torch.Generator().manual_seed(13)
    M, N, K = 300, 64, 1024
    x, w, zx, zw = gemm_case(g, 8, 8, M, N, K, torch.uint8)
    sx, sw = torch.tensor([0.1]), torch.rand(N, generator=g) * 1e-2 + 1e-4
    wp, wpd = q.pack_weight(w, zw, 8), q.pack_weight(*cu(w, zw), 8)
    sxd, zxd, swd = cu(sx, zx, sw)  # on the device before the capture: a capture copies nothing from the host

    def run(xd):
        return q.qlinear(xd, sxd, zxd, 8, wpd, swd)

    side = torch.cuda.Stream()
    xd = x.to(DEV)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = run(xd)
    side.synchronize()
    assert torch.equal(y.cpu(), q.qlinear(x, sx, zx, 8, wp, sw))
    monkeypatch.setenv("DWQ_CUDA_CHECKS", "0")
    static = xd.clone()
    with torch.cuda.stream(side):
        run(static)  # warm-up outside the capture, as torch.cuda.graphs advises
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run(static)
    x2 = rand_codes(g, (M, K), 8, torch.uint8)
    static.copy_(x2)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), q.qlinear(x2, sx, zx, 8, wp, sw))


# ----------------------------------------------------------------------------- conv

CONVS = [  # (B, C, H, W, O, k, stride, pad)
    (2, 16, 9, 9, 24, 3, 1, 1), (1, 32, 8, 8, 64, 3, 2, 1), (2, 3, 17, 15, 16, 7, 2, 3), (3, 64, 6, 6, 130, 1, 1, 0),
    (1, 16, 12, 12, 40, 1, 2, 0), (2, 5, 7, 9, 11, 3, 1, 2), (1, 48, 5, 5, 33, 5, 1, 2), (4, 128, 4, 4, 128, 3, 1, 1),
    (1, 16, 3, 3, 8, 3, 1, 0),
]


@pytest.mark.parametrize("case", CONVS, ids=lambda c: "x".join(map(str, c)))
@engines
def test_qconv2d_acc_exact(case, engine):
    B, C, H, W, O, k, s, p = case
    g = torch.Generator().manual_seed(sum(case))
    for xb, wb in [(8, 8), (4, 6), (2, 2), (8, 12), (12, 8), (16, 16), (3, 9)]:
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8 if xb <= 8 else torch.int32)
        w = rand_codes(g, (O, C, k, k), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (p, p))
        wp = q.pack_conv_weight(*cu(w, zw), wb)
        for xd in (x.to(DEV).contiguous(memory_format=torch.channels_last), x.to(DEV), x.to(DEV).int()):
            got = q.qconv2d_acc(xd, zx.to(DEV), xb, wp, k, s, p)
            assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal(got.cpu(), want), f"{case} xb={xb} wb={wb} layout={xd.stride()}"


@pytest.mark.parametrize("case", [(1, 512, 7, 7, 512, 3, 1, 1), (2, 256, 4, 4, 256, 3, 1, 1), (1, 1024, 3, 3, 96, 1, 1, 0)],
                         ids=lambda c: "x".join(map(str, c)))
@engines
def test_qconv2d_split_k(case, engine):
    """Few output pixels, deep K (ResNet-50's last stage at batch 1: 49 rows, K = 4,608): fewer tiles than
    SMs, so K is split (int64 workspace, then the epilogue), for the implicit conv and the im2col planes;
    accumulators against the reference, requantized codes against the CPU op."""
    B, C, H, W, O, k, s, p = case
    g = torch.Generator().manual_seed(sum(case))
    for xb, wb in [(8, 8), (4, 4), (12, 8)]:
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8 if xb <= 8 else torch.int32)
        x = x.contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (O, C, k, k), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        wp, wpd = q.pack_conv_weight(w, zw, wb), q.pack_conv_weight(*cu(w, zw), wb)
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (p, p))
        for xd in (x.to(DEV), x.to(DEV).int()):
            assert torch.equal(q.qconv2d_acc(xd, zx.to(DEV), xb, wpd, k, s, p).cpu(), want), f"xb={xb} wb={wb}"
        sx, sw = torch.tensor([0.01]), torch.rand(O, generator=g) * 1e-3 + 1e-5
        b = torch.randn(O, generator=g)
        so, zo = torch.tensor([0.05]), rand_zp(g, 8)
        c = q.qconv2d(*cu(x, sx, zx), xb, wpd, sw.to(DEV), k, s, p, None, b.to(DEV), True, *cu(so, zo), 8)
        assert torch.equal(c.cpu(), q.qconv2d(x, sx, zx, xb, wp, sw, k, s, p, None, b, True, so, zo, 8))


@engines
def test_conv_checks_only_the_codes_it_reads(engine):
    """A 1x1 stride-2 conv never reads pixel (1, 1): a 4-bit code of 200 there is no error, as on the CPU
    (the implicit conv's pixel sums cover every pixel); at pixel (2, 2) it is read and is one."""
    g = torch.Generator().manual_seed(12)
    x = rand_codes(g, (1, 16, 6, 6), 4, torch.uint8).contiguous(memory_format=torch.channels_last)
    w, zw, zx = rand_codes(g, (8, 16, 1, 1), 4), rand_zp(g, 4, (8,)), rand_zp(g, 4)
    x[0, 5, 1, 1] = 200
    got = q.qconv2d_acc(x.to(DEV), zx.to(DEV), 4, q.pack_conv_weight(*cu(w, zw), 4), 1, 2, 0)
    assert torch.equal(got.cpu(), q.qconv2d_acc(x, zx, 4, q.pack_conv_weight(w, zw, 4), 1, 2, 0))
    x[0, 5, 2, 2] = 200
    with pytest.raises(RuntimeError, match="outside 0..15"):
        q.qconv2d_acc(x.to(DEV), zx.to(DEV), 4, q.pack_conv_weight(*cu(w, zw), 4), 1, 2, 0)


@engines
def test_qconv2d_every_width(engine):
    g = torch.Generator().manual_seed(41)
    for bits in WIDTHS:
        x = rand_codes(g, (2, 32, 7, 7), bits, torch.uint8 if bits <= 8 else torch.int32)
        x = x.contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (20, 32, 3, 3), bits)
        zx, zw = rand_zp(g, bits), rand_zp(g, bits, (20,))
        got = q.qconv2d_acc(*cu(x, zx), bits, q.pack_conv_weight(*cu(w, zw), bits), 3, 1, 1)
        assert torch.equal(got.cpu(), ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (1, 1))), f"bits={bits}"


def test_qconv2d_default_engine_every_code_layout(monkeypatch):
    """The default engine (auto) on convs of every kind of input: uint8 in place, int32 or strided codes
    and codes of 9..16 bits (on Hopper, the implicit conv on the input's limb planes), requantized out."""
    monkeypatch.delenv("DWQ_CUDA_GEMM", raising=False)
    g = torch.Generator().manual_seed(43)
    for xb, wb in [(8, 8), (8, 16), (16, 16), (12, 4), (6, 9)]:
        x = rand_codes(g, (3, 48, 9, 9), xb, torch.uint8 if xb <= 8 else torch.int32)
        w, zw, zx = rand_codes(g, (72, 48, 3, 3), wb), rand_zp(g, wb, (72,)), rand_zp(g, xb)
        sx, sw, so, zo = torch.tensor([0.02]), torch.rand(72, generator=g) * 1e-3 + 1e-5, torch.tensor([0.3]), rand_zp(g, 8)
        wp, wpd = q.pack_conv_weight(w, zw, wb), q.pack_conv_weight(*cu(w, zw), wb)
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (1, 1))
        want_q = q.qconv2d(x, sx, zx, xb, wp, sw, 3, 1, 1, None, None, True, so, zo, 8)
        for xd in (x.contiguous(memory_format=torch.channels_last).cuda(), x.cuda(), x.int().cuda()):
            assert torch.equal(q.qconv2d_acc(xd, zx.cuda(), xb, wpd, 3, 1, 1).cpu(), want), (xb, wb, xd.stride())
            got = q.qconv2d(xd, *cu(sx, zx), xb, wpd, sw.cuda(), 3, 1, 1, None, None, True, *cu(so, zo), 8)
            assert torch.equal(got.cpu(), want_q), (xb, wb, xd.stride())


@pytest.mark.parametrize("case", CONVS[:6], ids=lambda c: "x".join(map(str, c)))
@engines
def test_qconv2d_epilogue_matches_cpu(case, engine):
    B, C, H, W, O, k, s, p = case
    g = torch.Generator().manual_seed(7 * sum(case))
    for i, (xb, wb, ob) in enumerate([(8, 8, 8), (4, 4, 4), (8, 12, 16), (16, 8, 2)]):
        x = rand_codes(g, (B, C, H, W), xb, torch.uint8 if xb <= 8 else torch.int32)
        x = x.contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (O, C, k, k), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        sx, sw = torch.rand(1, generator=g) * 0.1 + 1e-3, torch.rand(O, generator=g) * 0.01 + 1e-4
        a = torch.randn(O, generator=g) if i % 2 else None
        b = torch.randn(O, generator=g)
        relu = i % 2 == 0
        args = (k, s, p, a, b, relu)
        wp, wpd = q.pack_conv_weight(w, zw, wb), q.pack_conv_weight(*cu(w, zw), wb)
        y_cpu = q.qconv2d(x, sx, zx, xb, wp, sw, *args)
        y = q.qconv2d(*cu(x, sx, zx), xb, wpd, sw.to(DEV), k, s, p, *cu(a, b), relu)
        assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == torch.float32
        assert torch.equal(y.cpu(), y_cpu)
        y_ref = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (p, p), a, b, relu)
        torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-5, atol=1e-6 * (1 + y_ref.abs().max().item()))
        so, zo = (y_ref.abs().max() / (1 << (ob - 1)) + 1e-3).reshape(1), rand_zp(g, ob)
        c = q.qconv2d(*cu(x, sx, zx), xb, wpd, sw.to(DEV), k, s, p, *cu(a, b), relu, *cu(so, zo), ob)
        assert c.dtype == ref.codes_dtype(ob)
        assert torch.equal(c.cpu(), ref.qconv2d_ref(x, sx, zx, w, sw, zw, (s, s), (p, p), a, b, relu, so, zo, ob))


@engines
def test_unchecked_mode_same_results(monkeypatch, engine):
    """DWQ_CUDA_CHECKS=0 (no read-back, no sync) computes the same values. On the Hopper engines an unsplit
    product of one limb each sums its rows by MMA; with the checks on, codes that can be out of range (fewer
    than 8 bits, int32 codes) still go through the prep kernel's sums: both ways against the reference, for
    a uint8 matrix read in place and for convs."""
    g = torch.Generator().manual_seed(5)
    for xb in (8, 4):
        x, w, zx, zw = gemm_case(g, xb, 8, 300, 70, 208, torch.uint8)  # (16-byte rows: read in place)
        want = ref.qgemm_acc_ref(x, zx, w, zw)
        wp = q.pack_weight(*cu(w, zw), 8)
        for checks in ("1", "0"):
            monkeypatch.setenv("DWQ_CUDA_CHECKS", checks)
            assert torch.equal(q.qgemm_acc(*cu(x, zx), xb, wp).cpu(), want), (xb, checks)
    for xb, dtype in [(8, torch.uint8), (4, torch.uint8), (8, torch.int32), (6, torch.int32)]:
        x = rand_codes(g, (2, 16, 8, 8), xb, dtype).contiguous(memory_format=torch.channels_last)
        w = rand_codes(g, (24, 16, 3, 3), 8)
        zx, zw = rand_zp(g, xb), rand_zp(g, 8, (24,))
        want = ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (1, 1))
        wp = q.pack_conv_weight(*cu(w, zw), 8)
        monkeypatch.delenv("DWQ_CUDA_CHECKS", raising=False)
        assert torch.equal(q.qconv2d_acc(*cu(x, zx), xb, wp, 3, 1, 1).cpu(), want), (xb, dtype)
        monkeypatch.setenv("DWQ_CUDA_CHECKS", "0")
        assert torch.equal(q.qconv2d_acc(*cu(x, zx), xb, wp, 3, 1, 1).cpu(), want), (xb, dtype)
    zx = torch.tensor([3], dtype=torch.int32)
    xf = torch.randn(3, 40, device=DEV)
    assert torch.equal(q.quantize_act(xf, *cu(torch.tensor([0.1]), zx), 8).cpu(),
                       ref.quantize_act_ref(xf.cpu(), torch.tensor([0.1]), zx, 8))


@pytest.mark.parametrize("xb, dtype", [(7, torch.uint8), (8, torch.int32)])
@engines
def test_conv_codes_out_of_range(xb, dtype, engine):
    """A code above qmax in a conv's receptive field is an error whichever way its rows are summed (the
    Hopper kernels sum them by MMA; the range is then checked by the pixel sums alone)."""
    g = torch.Generator().manual_seed(6)
    x = rand_codes(g, (1, 16, 6, 6), xb, dtype)
    x[0, 3, 2, 2] = 1 << xb
    w, zw = rand_codes(g, (8, 16, 3, 3), 8), rand_zp(g, 8, (8,))
    wp = q.pack_conv_weight(*cu(w, zw), 8)
    with pytest.raises(RuntimeError, match=f"outside 0..{(1 << xb) - 1}"):
        q.qconv2d_acc(x.to(DEV).contiguous(memory_format=torch.channels_last),
                      torch.tensor([1], dtype=torch.int32, device=DEV), xb, wp, 3, 1, 1)


@pytest.mark.parametrize("bits", [4, 12])
@engines
def test_opcheck_cuda(bits, engine):
    g = torch.Generator().manual_seed(5)
    x = rand_codes(g, (7, 33), bits, torch.uint8 if bits <= 8 else torch.int32).to(DEV)
    w = rand_codes(g, (9, 33), bits, torch.int32).to(DEV)
    zw = rand_zp(g, bits, (9,)).to(DEV)
    zx, sx = torch.tensor([1], dtype=torch.int32, device=DEV), torch.tensor([0.05], device=DEV)
    sw = torch.full((9,), 0.01, device=DEV)
    wp = q.pack_weight(w, zw, bits)
    torch.library.opcheck(torch.ops.dwq.pack_weight.default, (w, zw, bits))
    xf = torch.randn(2, 3, 4, 5, device=DEV)
    for xa in (xf, xf.contiguous(memory_format=torch.channels_last), xf[:, :, ::2, 1:]):
        torch.library.opcheck(torch.ops.dwq.quantize_act.default, (xa, sx, zx, bits))
    torch.library.opcheck(torch.ops.dwq.qgemm_acc.default, (x, zx, bits, wp))
    torch.library.opcheck(torch.ops.dwq.qlinear.default, (x, sx, zx, bits, wp, sw, None, torch.randn(9, device=DEV),
                                                          True, None, None, 8))
    xc = rand_codes(g, (2, 3, 6, 6), bits, torch.uint8 if bits <= 8 else torch.int32).to(DEV)
    wc = q.pack_conv_weight(rand_codes(g, (9, 3, 3, 3), bits).to(DEV), zw, bits)
    torch.library.opcheck(torch.ops.dwq.qconv2d_acc.default, (xc, zx, bits, wc, [3, 3], [1, 1], [1, 1]))
    torch.library.opcheck(torch.ops.dwq.qconv2d.default, (xc, sx, zx, bits, wc, sw, [3, 3], [2, 2], [1, 1], None,
                                                          None, False, torch.tensor([0.3], device=DEV),
                                                          torch.tensor([3], dtype=torch.int32, device=DEV), bits))


# ----------------------------------------------------------------------------- a converted model

@engines
def test_integer_model_runs_on_cuda(engine):
    """dwq.deploy converts once; .to("cuda") repacks on the device and the GPU forward agrees with the
    CPU one (within the tolerance of tests/test_deploy_convert.py for paths that share no float code)."""
    from deploy_models import calibrated

    import dwq
    from dwq.deploy import convert
    from dwq.models import QuantPolicy, small_cnn

    m = calibrated(small_cnn(precisions=[4, 8, 16, None], width=16,
                             policy=QuantPolicy(first_conv=True, shortcut=True, classifier=True)), (32, 1, 28, 28))
    im = convert(m)
    x = torch.rand(8, 1, 28, 28)
    want = {}
    for p in im.precisions:
        with dwq.precision(im, p):
            want[p] = im(x)
    im = im.to(DEV)
    for p in im.precisions:
        with dwq.precision(im, p):
            y = im(x.to(DEV))
        assert y.device.type == "cuda"
        # The float steps between integer layers (normalize, global average pool) may round differently
        # on the GPU; a value at a quantization midpoint then takes the neighbouring code (DESIGN.md).
        torch.testing.assert_close(y.cpu(), want[p], rtol=0, atol=5e-2 * (1 + want[p].abs().max().item()))


# ----------------------------------------------------------------------------- bad input

def _bad_cases():
    cases, t = bad_op_cases(DEV)
    x, zx, sx, wp, zw, w, lin, ops = t.x, t.zx, t.sx, t.wp, t.zw, t.w, t.lin, torch.ops.dwq
    return cases + [
        # device mismatches: the op runs on CUDA if any tensor is there, and names the odd one out
        ("w_packed on cpu", lambda: ops.qgemm_acc(x, zx, 8, wp.cpu()), "w_packed must be on cuda"),
        ("x on cpu", lambda: ops.qgemm_acc(x.cpu(), zx, 8, wp), "x_codes must be a CUDA tensor"),
        ("zx on cpu", lambda: ops.qgemm_acc(x, zx.cpu(), 8, wp), "x_zero_point must be on cuda"),
        ("x_scale on cpu", lin(sx=sx.cpu()), "x_scale must be on cuda"),
        ("bias on cpu", lin(bias=torch.zeros(9)), "affine_bias must be on cuda"),
        ("quantize x on cpu", lambda: ops.quantize_act(torch.ones(3), sx, zx, 8), "x must be a CUDA tensor"),
        ("pack zp on cpu", lambda: ops.pack_weight(w, zw.cpu(), 8), "zero_point must be on cuda"),
        # the kernels' int corner oh * stride - padding: every factor fit 32 bits, the product did not
        ("implicit conv corner past int32",
         lambda: ops.qconv2d_acc(t.xcl, zx, 8, t.wcl, [3, 3], [2**31 - 1, 1], [2**31 - 10, 1]),
         "conv geometry must fit 32-bit integers"),
    ]


def _bad_params():
    if HAS_EXT and torch.cuda.is_available() and has_kernel("qlinear", "cuda"):
        return [pytest.param(c, id=c[0]) for c in _bad_cases()]
    return [pytest.param(None, id="cases", marks=pytest.mark.skip(reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("case", _bad_params())
def test_bad_input(case):
    _, fn, match = case
    with pytest.raises(RuntimeError, match=match):
        fn()
    torch.cuda.synchronize()  # the error left no asynchronous fault behind


def test_engine_choice(monkeypatch):
    """DWQ_CUDA_GEMM: an unknown engine and wgmma where it cannot run are errors that say why; auto runs anywhere."""
    g = torch.Generator().manual_seed(9)
    x, w, zx, zw = gemm_case(g, 8, 8, 20, 6, 7)  # more rows than the dp4a kernel takes: a tensor-core engine
    wp = q.pack_weight(*cu(w, zw), 8)
    monkeypatch.setenv("DWQ_CUDA_GEMM", "tensorcore")
    with pytest.raises(RuntimeError, match="DWQ_CUDA_GEMM = 'tensorcore' is not an engine"):
        q.qgemm_acc(*cu(x, zx), 8, wp)
    monkeypatch.setenv("DWQ_CUDA_GEMM", "auto")
    assert torch.equal(q.qgemm_acc(*cu(x, zx), 8, wp).cpu(), ref.qgemm_acc_ref(x, zx, w, zw))
    if torch.cuda.get_device_capability() != (9, 0):
        for name in ("wgmma", "wgmma_tma", "wgmma_pp"):
            monkeypatch.setenv("DWQ_CUDA_GEMM", name)
            with pytest.raises(RuntimeError, match=f"DWQ_CUDA_GEMM = '{name}' needs a GPU of compute capability 9.0"):
                q.qgemm_acc(*cu(x, zx), 8, wp)

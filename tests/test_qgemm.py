"""True-integer GEMM ops (dwq.ops.qgemm): bit-exact against the int64 reference on every CPU ISA
path, the fused epilogue, the K = 65,536 16-bit overflow case, opcheck and bad input.
Convolution is in test_qconv.py."""

import os
from collections.abc import MutableMapping

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from conftest import needs_cuda_kernel  # noqa: E402
from kernel_data import bad_op_cases, rand_codes, rand_zp  # noqa: E402


def maybe_strided(g, x):
    """Half the time, the same values in a non-contiguous layout (transposed or sliced storage)."""
    r = torch.randint(0, 3, (1,), generator=g).item()
    if r == 1:
        return x.t().contiguous().t()
    if r == 2:
        big = torch.zeros(x.shape[0], 2 * x.shape[1], dtype=x.dtype)
        big[:, ::2] = x
        return big[:, ::2]
    return x


def rand_dim(g, hi):
    r = torch.randint(0, 5, (1,), generator=g).item()
    return 1 if r == 0 else int(torch.randint(1, hi + 1, (1,), generator=g))


def test_qgemm_acc_exact(isa):
    g = torch.Generator().manual_seed(11)
    cases = 350
    for i in range(cases):
        xb, wb = int(torch.randint(2, 17, (1,), generator=g)), int(torch.randint(2, 17, (1,), generator=g))
        M, N, K = rand_dim(g, 40), rand_dim(g, 140), rand_dim(g, 300)
        x = maybe_strided(g, rand_codes(g, (M, K), xb))
        w = maybe_strided(g, rand_codes(g, (N, K), wb))
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (N,))
        got = q.qgemm_acc(x, zx, xb, q.pack_weight(w, zw, wb))
        want = ref.qgemm_acc_ref(x, zx, w, zw)
        assert got.dtype == torch.int64 and got.shape == (M, N)
        assert torch.equal(got, want), f"case {i}: M={M} N={N} K={K} xb={xb} wb={wb} zx={zx.item()}"


def test_qlinear_epilogue(isa):
    g = torch.Generator().manual_seed(12)
    for i in range(120):
        xb, wb = int(torch.randint(2, 17, (1,), generator=g)), int(torch.randint(2, 17, (1,), generator=g))
        M, N, K = rand_dim(g, 30), rand_dim(g, 100), rand_dim(g, 200)
        x = rand_codes(g, (M, K), xb)
        w = rand_codes(g, (N, K), wb)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (N,))
        sx = torch.rand(1, generator=g) * 0.1 + 1e-3
        sw = torch.rand(N, generator=g) * 0.01 + 1e-4
        a = torch.randn(N, generator=g) if i % 2 else None
        b = torch.randn(N, generator=g) if i % 3 else None
        relu = bool(i % 4 >= 2)
        wp = q.pack_weight(w, zw, wb)
        y = q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu)
        y_ref = ref.qlinear_ref(x, sx, zx, w, sw, zw, a, b, relu)
        assert y.dtype == torch.float32
        assert torch.equal(y.view(torch.int32), y_ref.view(torch.int32)), \
            f"case {i}: the float epilogue differs from the reference's order (bit for bit, signed zeros too)"
        ob = int(torch.randint(2, 17, (1,), generator=g))
        so = (y_ref.abs().max() / (1 << (ob - 1)) + 1e-3).reshape(1)
        zo = rand_zp(g, ob)
        c = q.qlinear(x, sx, zx, xb, wp, sw, a, b, relu, so, zo, ob)
        c_ref = ref.qlinear_ref(x, sx, zx, w, sw, zw, a, b, relu, so, zo, ob)
        assert c.dtype == ref.codes_dtype(ob)
        assert torch.equal(c, c_ref), f"case {i}: requantized codes differ"


def test_relu_of_a_negative_zero_is_the_kernels_positive_zero(isa):
    # acc 0 times a negative affine scale is -0.0; the kernels' ReLU (y > 0 ? y : 0) gives +0.0, and the
    # reference's torch.relu kept -0.0: equal as floats, not bit for bit
    x, w = torch.zeros(3, 4, dtype=torch.uint8), torch.zeros(2, 4, dtype=torch.uint8)
    zw, a = torch.zeros(2, dtype=torch.int32), torch.full((2,), -1.0)
    args = (torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32))
    for relu in (True, False):
        y = q.qlinear(x, *args, 8, q.pack_weight(w, zw, 8), torch.ones(2), a, None, relu)
        want = ref.qlinear_ref(x, *args, w, torch.ones(2), zw, a, None, relu)
        assert torch.equal(y.view(torch.int32), want.view(torch.int32)), (relu, y, want)
        assert bool(torch.signbit(y).all()) != relu  # -0.0 without the ReLU, +0.0 with it


def test_qlinear_batched_shape():
    g = torch.Generator().manual_seed(3)
    x = rand_codes(g, (2, 3, 17), 8, torch.uint8)
    w = rand_codes(g, (5, 17), 8, torch.uint8)
    zx, zw = torch.tensor([7], dtype=torch.int32), torch.full((5,), 100, dtype=torch.int32)
    sx, sw = torch.tensor([0.1]), torch.full((5,), 0.02)
    y = q.qlinear(x, sx, zx, 8, q.pack_weight(w, zw, 8), sw)
    assert y.shape == (2, 3, 5)
    assert torch.equal(y.reshape(6, 5), ref.qlinear_ref(x.reshape(6, 17), sx, zx, w, sw, zw))


def test_empty_rows():
    w = torch.randint(0, 16, (5, 7), dtype=torch.uint8)
    wp = q.pack_weight(w, torch.zeros(5, dtype=torch.int32), 4)
    zx = torch.tensor([0], dtype=torch.int32)
    assert q.qgemm_acc(torch.zeros(0, 7, dtype=torch.uint8), zx, 4, wp).shape == (0, 5)
    y = q.qlinear(torch.zeros(0, 7, dtype=torch.uint8), torch.ones(1), zx, 4, wp, torch.ones(5))
    assert y.shape == (0, 5) and y.dtype == torch.float32


def test_quantize_act_exact(isa):
    g = torch.Generator().manual_seed(13)
    for i in range(60):
        bits = int(torch.randint(2, 17, (1,), generator=g))
        shape = (rand_dim(g, 9), rand_dim(g, 300))
        x = torch.randn(shape, generator=g) * 4
        x.view(-1)[:4] = torch.tensor([0.5, 1.5, 2.5, -0.5])[: x.numel()][: min(4, x.numel())]
        if i % 3 == 1:
            x = x.t()  # non-contiguous, still dense
        elif i % 3 == 2:
            x = x[:, ::2]
        s = torch.rand(1, generator=g) * 0.1 + 1e-3
        z = rand_zp(g, bits)
        c = q.quantize_act(x, s, z, bits)
        assert c.shape == x.shape and c.dtype == ref.codes_dtype(bits)
        assert torch.equal(c, ref.quantize_act_ref(x, s, z, bits)), f"case {i}, bits {bits}"
    ties = q.quantize_act(torch.tensor([0.5, 1.5, 2.5, -0.5, 1e30, -float("inf")]), torch.ones(1),
                          torch.tensor([4], dtype=torch.int32), 8)
    assert ties.tolist() == [4, 6, 6, 4, 255, 0]  # round half to even, saturation


def test_quantize_act_preserves_channels_last():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    c = q.quantize_act(x, torch.tensor([0.1]), torch.tensor([128], dtype=torch.int32), 8)
    assert c.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(c, ref.quantize_act_ref(x, torch.tensor([0.1]), torch.tensor([128], dtype=torch.int32), 8))


@pytest.mark.parametrize("x, scale, zero_point, message", [
    ([0.3, float("nan")], 0.1, 3, "quantize_act: x contains .*NaN"),
    ([0.3, 1.0], 0.0, 3, r"quantize_act: scale(\[0\])? must be finite and > 0, got 0"),
    ([0.3, 1.0], float("inf"), 3, r"quantize_act: scale(\[0\])? must be finite and > 0, got inf"),
    ([0.3, 1.0], 0.1, 256, r"quantize_act: zero_point(\[0\])? = 256 is not a code of 8 bits"),
])
def test_quantize_act_without_a_kernel_checks_like_the_op(monkeypatch, x, scale, zero_point, message):
    # A device without a quantize_act kernel runs the reference, which gave code 0 for NaN and
    # codes of inf for a zero scale, silently.
    from dwq.ops import _lib

    args = (torch.tensor(x), torch.tensor([scale]), torch.tensor([zero_point], dtype=torch.int32), 8)
    with pytest.raises(RuntimeError, match="dwq." + message):
        q.quantize_act(*args)
    monkeypatch.setitem(_lib._KERNELS, ("quantize_act", "cpu"), False)
    with pytest.raises(ValueError, match=message):
        q.quantize_act(*args)
    ok = (torch.tensor([0.3, -0.2]), torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32), 8)
    assert q.quantize_act(*ok).tolist() == [6, 1]


def test_no_overflow_k65536_16bit(isa):
    """K = 65,536 (+3) at 16 bits, every code at an extreme: |acc| = K * 65535^2 ~ 2.8e14 needs int64."""
    K = 65536 + 3
    x = torch.full((2, K), 65535, dtype=torch.int32)
    x[1] = 0
    w = torch.full((3, K), 65535, dtype=torch.int32)
    w[1] = 0
    zx = torch.tensor([0], dtype=torch.int32)
    zw = torch.tensor([0, 65535, 32768], dtype=torch.int32)
    acc = q.qgemm_acc(x, zx, 16, q.pack_weight(w, zw, 16))
    big = K * 65535 * 65535
    assert acc[0].tolist() == [big, -big, K * 65535 * 32767]
    assert acc[1].tolist() == [0, 0, 0]
    assert torch.equal(acc, ref.qgemm_acc_ref(x, zx, w, zw))
    # also with the zero point in the middle of the activation range
    zx = torch.tensor([40000], dtype=torch.int32)
    assert torch.equal(q.qgemm_acc(x, zx, 16, q.pack_weight(w, zw, 16)), ref.qgemm_acc_ref(x, zx, w, zw))


def test_8bit_int32_chunk_boundary(isa):
    """8-bit codes with K large enough that one int32 pass could overflow; the driver must switch
    to the int64 path (K * 255 * 255 > 2^31)."""
    K = 40000
    x = torch.full((3, K), 255, dtype=torch.uint8)
    w = torch.full((2, K), 255, dtype=torch.uint8)
    w[1] = 0
    zx, zw = torch.tensor([0], dtype=torch.int32), torch.tensor([0, 255], dtype=torch.int32)
    acc = q.qgemm_acc(x, zx, 8, q.pack_weight(w, zw, 8))
    assert acc[:, 0].tolist() == [K * 255 * 255] * 3 and acc[:, 1].tolist() == [-K * 255 * 255] * 3


def _sample(bits=8, xbits=8):
    g = torch.Generator().manual_seed(5)
    x = rand_codes(g, (7, 33), xbits, torch.uint8 if xbits <= 8 else torch.int32)
    w = rand_codes(g, (9, 33), bits, torch.int32)
    zw = rand_zp(g, bits, (9,))
    return x, w, zw


@pytest.mark.parametrize("bits", [4, 12])
def test_opcheck(bits):
    x, w, zw = _sample(bits, bits)
    zx, sx = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05])
    sw = torch.full((9,), 0.01)
    wp = q.pack_weight(w, zw, bits)
    for wl in (w, w.t().contiguous().t(), w[:, :]):  # row-major and column-major weight codes
        torch.library.opcheck(torch.ops.dwq.pack_weight.default, (wl, zw, bits))
    xf = torch.randn(2, 3, 4, 5)
    for xa in (torch.randn(3, 5), xf.contiguous(memory_format=torch.channels_last), xf.transpose(1, 3),
               xf[:, :, ::2, 1:]):
        torch.library.opcheck(torch.ops.dwq.quantize_act.default, (xa, sx, zx, bits))
    for xc in (x, x.t().contiguous().t(), x[:, :]):  # row-major and column-major codes
        torch.library.opcheck(torch.ops.dwq.qgemm_acc.default, (xc, zx, bits, wp))
        torch.library.opcheck(torch.ops.dwq.qlinear.default,
                              (xc, sx, zx, bits, wp, sw, None, torch.randn(9), True, None, None, 8))
        torch.library.opcheck(torch.ops.dwq.qlinear.default,
                              (xc, sx, zx, bits, wp, sw, torch.randn(9), None, False, torch.tensor([0.3]),
                               torch.tensor([3], dtype=torch.int32), bits))


@pytest.mark.parametrize("n, k", [(1, 1), (9, 33), (64, 64), (65, 3), (130, 1000)])
@pytest.mark.parametrize("bits", [2, 8, 9, 16])
def test_packed_weight_shape_is_cpps(n, k, bits):
    g = torch.Generator().manual_seed(n * 1000 + k)
    w = rand_codes(g, (n, k), bits, torch.int32)
    wp = q.pack_weight(w, rand_zp(g, bits, (n,)), bits)
    assert tuple(wp.shape) == q.packed_weight_shape(n, k, bits)
    with pytest.raises(ValueError, match="bits"):
        q.packed_weight_shape(n, k, 17)


def test_compile_fullgraph():
    """The ops trace into one graph (fullgraph=True: a graph break is an error), and the traced run
    equals the int64 reference bit for bit."""
    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    wp = q.pack_weight(w, zw, 8)

    def f(xf):
        codes = q.quantize_act(xf, sx, zx, 8)
        return q.qlinear(codes, sx, zx, 8, wp, sw, relu=True)

    xf = torch.randn(7, 33)
    want = ref.qlinear_ref(ref.quantize_act_ref(xf, sx, zx, 8), sx, zx, w, sw, zw, relu=True)
    assert torch.equal(torch.compile(f, fullgraph=True, backend="eager")(xf), want)


# ----------------------------------------------------------------------------- bad input

def _bad_cases():
    return bad_op_cases("cpu")[0]  # the cases every device raises alike (the CUDA tests add device mismatches)


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, fn, match = case
    with pytest.raises(RuntimeError, match=match):
        fn()


def test_bad_isa_env(monkeypatch):
    x, w, zw = _sample()
    wp = q.pack_weight(w, zw, 8)
    monkeypatch.setenv("DWQ_CPU_ISA", "neon")
    with pytest.raises(RuntimeError, match="DWQ_CPU_ISA=neon is not one of scalar, avx2, avx512_vnni, amx"):
        q.qgemm_acc(x, torch.tensor([0], dtype=torch.int32), 8, wp)


class _RecordingEnviron(MutableMapping):
    """os.environ that passes everything on and records each write."""

    def __init__(self, env):
        self.env, self.writes = env, []

    def __getitem__(self, k):
        return self.env[k]

    def __setitem__(self, k, v):
        self.writes.append((k, v))
        self.env[k] = v

    def __delitem__(self, k):
        self.writes.append((k, None))
        del self.env[k]

    def __iter__(self):
        return iter(self.env)

    def __len__(self):
        return len(self.env)


def test_supported_cpu_isas_never_writes_the_environment(monkeypatch):
    # The environment is process-wide: a probe that forced each ISA through DWQ_CPU_ISA switched the
    # kernels of ops running in other threads meanwhile (on a CPU without AVX-512 they raised "does
    # not support"), and two first calls racing left DWQ_CPU_ISA=scalar set for good.
    monkeypatch.setattr(q, "_ISAS", None, raising=False)  # (an answer cached by an earlier test must not hide the asking)
    env = _RecordingEnviron(os.environ)
    monkeypatch.setattr(os, "environ", env)
    isas = q.supported_cpu_isas()
    assert env.writes == []
    assert isas[0] == "scalar" and set(isas) <= {"scalar", "avx2", "avx512_vnni", "amx"}


def test_supported_cpu_isas_are_the_ones_that_run(monkeypatch):
    monkeypatch.setenv("DWQ_CPU_ISA", "neon")  # whatever is forced, the answer is the CPU's
    isas = q.supported_cpu_isas()
    assert os.environ["DWQ_CPU_ISA"] == "neon"
    x, s, z = torch.ones(3), torch.ones(1), torch.zeros(1, dtype=torch.int32)
    for isa in ("scalar", "avx2", "avx512_vnni", "amx"):
        monkeypatch.setenv("DWQ_CPU_ISA", isa)
        if isa in isas:
            assert q.quantize_act(x, s, z, 8).tolist() == [1, 1, 1]
        else:
            with pytest.raises(RuntimeError, match=f"this CPU does not support {isa}"):
                q.quantize_act(x, s, z, 8)


def test_a_packed_weight_too_large_for_int64_sizes_is_refused():
    """An expanded (stride-0) w_codes makes any K free: at K = 2^57 (16 bits) the blob's size wrapped to
    0 and pack_weight wrote past its tensor (a segfault); packed_weight_shape returned wrapped shapes."""
    from dwq._C import packed_weight_shape

    zp = torch.zeros(1, dtype=torch.int32)
    for K, bits in ((2**57, 16), (2**58, 8), (2**41, 8)):
        w = torch.zeros(1, 1, dtype=torch.uint8).expand(1, K)
        with pytest.raises(RuntimeError, match=rf"w_codes \[N, K\] = \[1, {K}\] at {bits} bits: N and K must be at "
                                               r"most 2\^40"):
            q.pack_weight(w, zp, bits)
        with pytest.raises(ValueError, match=rf"n=1, k={K} at {bits} bits: n and k must be at most 2\^40"):
            packed_weight_shape(1, K, bits)
    with pytest.raises(ValueError, match="the packed weight below 2\\^62 bytes"):
        packed_weight_shape(2**40, 2**40, 8)
    assert packed_weight_shape(3, 2**30, 16)[1] > 2**30  # large but representable: a shape, not an error


def test_python_wrapper_errors():
    with pytest.raises(ValueError, match="bits must be an int in 2..16"):
        q.quantize_act(torch.ones(2), torch.ones(1), torch.zeros(1, dtype=torch.int32), 17)
    with pytest.raises(ValueError, match="pack_conv_weight: w_codes must be"):
        q.pack_conv_weight(torch.zeros(3, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.int32), 8)
    with pytest.raises(ValueError, match=r"pack_conv_weight: w_codes must be non-empty \[O, C, kh, kw\], got shape "
                                         r"\(0, 3, 3, 3\)"):
        q.pack_conv_weight(torch.zeros(0, 3, 3, 3, dtype=torch.uint8), torch.zeros(0, dtype=torch.int32), 8)
    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    with pytest.raises(ValueError, match="qlinear: x_codes must be"):
        q.qlinear(x[0, 0], sx, zx, 8, q.pack_weight(w, zw, 8), sw)
    # [2, 3, 0]: reshape(-1, 0) failed in the wrapper ("cannot reshape tensor of 0 elements") before the op named K
    with pytest.raises(RuntimeError, match="x_codes has K = 0 columns but w_packed was packed with K = 33"):
        q.qlinear(torch.zeros(2, 3, 0, dtype=torch.uint8), sx, zx, 8, q.pack_weight(w, zw, 8), sw)
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    for arg in ("kernel_size", "stride", "padding"):
        pair = dict(kernel_size=1, stride=1, padding=0)
        pair[arg] = 1.0
        with pytest.raises(ValueError, match=f"{arg} must be an int or a pair of ints, got 1.0"):
            q.qconv2d_acc(x.reshape(7, 33, 1, 1), zx, 8, wc, **pair)


def test_integer_ops_refuse_arguments_that_require_grad():
    """torch's autograd fallback ran qlinear / qconv2d, marked the float output as requiring grad when a
    scale, affine or residual argument did, and backward() then left its .grad None with a warning."""
    from dwq.ops import qconv2d_residual

    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    wp = q.pack_weight(w, zw, 8)
    bias = torch.zeros(9, requires_grad=True)
    for name, call in (("qlinear", lambda b: torch.ops.dwq.qlinear(x, sx, zx, 8, wp, sw, None, b, False, None, None, 8)),
                       ("qlinear", lambda b: q.qlinear(x, sx, zx, 8, wp, sw, affine_bias=b))):
        with pytest.raises(RuntimeError, match=f"dwq.{name}: affine_bias requires grad, and this integer op has no "
                                               "gradient"):
            call(bias)
        with torch.no_grad():
            assert torch.equal(call(bias), call(bias.detach()))
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    xc = x.reshape(7, 33, 1, 1)
    with pytest.raises(RuntimeError, match="dwq.qconv2d: w_scale requires grad"):
        q.qconv2d(xc, sx, zx, 8, wc, sw.clone().requires_grad_(), 1)
    res = torch.zeros(7, 9, 1, 1).contiguous(memory_format=torch.channels_last)
    # (the fused kernel's refusal, or, on the paths where it composes (AVX2, scalar), qconv2d's)
    with pytest.raises(RuntimeError, match=r"dwq.qconv2d(_residual)?: x_scale requires grad"):
        qconv2d_residual(xc, sx.clone().requires_grad_(), zx, 8, wc, sw, 1, 1, 0, None, None, res, False,
                         torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32), 8)
    # act_qparams' x is not differentiated: no graph, where a grad_fn whose backward only warned was given
    from dwq.ops.quantizer_fused import act_qparams

    state = (torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.bool))
    scale, zp = act_qparams(torch.rand(4, requires_grad=True), *state, 0, 0, 8, 0.9, True)
    assert not scale.requires_grad and not zp.requires_grad


def test_relu_and_kernel_size_are_checked_on_every_path():
    """relu=1 ran on the kernels and was refused by the fallback of the same op; pack_weight(kernel_size=3)
    failed with "'int' object is not iterable"."""
    from dwq.ops import add_affine_quantize_, qconv2d_residual

    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    xc = x.reshape(7, 33, 1, 1)
    os_, oz = torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32)
    res = torch.zeros(7, 9, 1, 1).contiguous(memory_format=torch.channels_last)
    a = torch.randn(2, 3, 4, 4)
    for op, call in (("qlinear", lambda: q.qlinear(x, sx, zx, 8, q.pack_weight(w, zw, 8), sw, relu=1)),
                     ("qconv2d", lambda: q.qconv2d(xc, sx, zx, 8, wc, sw, 1, relu=1)),
                     ("qconv2d_residual", lambda: qconv2d_residual(xc, sx, zx, 8, wc, sw, 1, 1, 0, None, None, res, 1,
                                                                   os_, oz, 8)),
                     ("add_affine_quantize_", lambda: add_affine_quantize_(a.clone(), a, torch.ones(3), torch.zeros(3),
                                                                           1, os_, oz, 8)),
                     ("add_affine_quantize_", lambda: add_affine_quantize_(a.transpose(2, 3).clone(),
                                                                           a.transpose(2, 3), torch.ones(3),
                                                                           torch.zeros(3), 1, os_, oz, 8))):
        with pytest.raises(TypeError, match=f"{op}: relu must be a bool, got 1"):
            call()
    for bad in (3, "33", (3, True), (3.0, 3)):
        with pytest.raises(ValueError, match=r"pack_weight: kernel_size must be a sequence of ints"):
            q.pack_weight(w, zw, 8, bad)


def test_bools_and_floats_are_not_ints():
    """operator.index takes True / False as 1 / 0 and int() truncates: stride=True, padding=(True, False)
    and packed_weight_shape(2.7, ...) once ran, silently. numpy and tensor ints stay ints."""
    import numpy as np

    g = torch.Generator().manual_seed(27)
    w, zw = rand_codes(g, (4, 3, 3, 3), 4), rand_zp(g, 4, (4,))
    wp, x, zx = q.pack_conv_weight(w, zw, 4), rand_codes(g, (1, 3, 6, 6), 4, torch.uint8), rand_zp(g, 4)
    for arg, v in [("stride", True), ("padding", (True, False)), ("kernel_size", (3, torch.tensor(True)))]:
        with pytest.raises(ValueError, match=rf"{arg} must be an int or a pair of ints, got "):
            q.qconv2d_acc(x, zx, 4, wp, **dict(dict(kernel_size=3, stride=1, padding=0), **{arg: v}))
    with pytest.raises(ValueError, match=r"stride must be an int or a pair of ints, got True"):
        q.qconv2d(x, torch.tensor([1.0]), zx, 4, wp, torch.ones(4), 3, stride=True)
    assert torch.equal(q.qconv2d_acc(x, zx, 4, wp, np.int64(3), (np.int32(1), torch.tensor(2)), 1),
                       q.qconv2d_acc(x, zx, 4, wp, 3, (1, 2), 1))
    for args, name, v in [((2.7, 4, 4), "n", "2.7"), ((True, 4, 4), "n", "True"), ((2, False, 4), "k", "False")]:
        with pytest.raises(ValueError, match=rf"packed_weight_shape: {name} must be an int, got {v}$"):
            q.packed_weight_shape(*args)
    assert q.packed_weight_shape(np.int64(9), torch.tensor(33), 8) == q.packed_weight_shape(9, 33, 8)


def test_gemm_ops_refuse_a_conv_packed_weight():
    """A pack_conv_weight blob holds its K columns in (ky, kx, c) order, not the (c, ky, kx) of torch's
    unfold: qlinear / qgemm_acc on it once gave other numbers, silently. A 1 x 1 kernel has one tap
    (nothing to order) and stays a GEMM weight."""
    g = torch.Generator().manual_seed(26)
    w, zw = rand_codes(g, (5, 3, 3, 3), 4), rand_zp(g, 4, (5,))
    x, zx, sx = rand_codes(g, (2, 27), 4, torch.uint8), rand_zp(g, 4), torch.tensor([1.0])
    wp = q.pack_conv_weight(w, zw, 4)
    with pytest.raises(RuntimeError, match=r"dwq.qlinear: w_packed was packed by dwq.ops.pack_conv_weight for a 3x3 "
                                           r"kernel .* use dwq.ops.qconv2d"):
        q.qlinear(x, sx, zx, 4, wp, torch.ones(5))
    with pytest.raises(RuntimeError, match=r"dwq.qgemm_acc: w_packed was packed by dwq.ops.pack_conv_weight for a "
                                           r"3x3 kernel"):
        q.qgemm_acc(x, zx, 4, wp)
    w1 = w[:, :, :1, :1]
    assert torch.equal(q.qgemm_acc(x[:, :3], zx, 4, q.pack_conv_weight(w1, zw, 4)),
                       ref.qgemm_acc_ref(x[:, :3], zx, w1.reshape(5, 3), zw))


def _mixed_meta_calls():
    """One call per op with a single meta tensor among CPU ones: (id, call, the argument named)."""
    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    wp = q.pack_weight(w, zw, 8)
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    xc = x.reshape(7, 33, 1, 1)
    m = lambda t: t.to("meta")  # noqa: E731
    ops = torch.ops.dwq
    return [
        ("quantize_act scale", lambda: ops.quantize_act(torch.randn(3), m(sx), zx, 8), "scale"),
        ("pack_weight zero_point", lambda: ops.pack_weight(w, m(zw), 8), "zero_point"),
        ("qgemm_acc w_packed", lambda: ops.qgemm_acc(x, zx, 8, m(wp)), "w_packed"),
        ("qgemm_acc x_codes", lambda: ops.qgemm_acc(m(x), zx, 8, wp), "x_zero_point"),
        ("qlinear w_scale", lambda: ops.qlinear(x, sx, zx, 8, wp, m(sw), None, None, False, None, None, 8), "w_scale"),
        ("qlinear out_zero_point",
         lambda: ops.qlinear(x, sx, zx, 8, wp, sw, None, None, False, sx, m(zx), 8), "out_zero_point"),
        ("qconv2d_acc x_zero_point", lambda: ops.qconv2d_acc(xc, m(zx), 8, wc, [1, 1], [1, 1], [0, 0]), "x_zero_point"),
        ("qconv2d affine_bias", lambda: ops.qconv2d(xc, sx, zx, 8, wc, sw, [1, 1], [1, 1], [0, 0], None, m(sw), False,
                                                    None, None, 8), "affine_bias"),
        ("fake_quantize scale", lambda: ops.fake_quantize(sw, m(sw), zw, 8, 0, True), "scale"),
        ("act_qparams running_min", lambda: ops.act_qparams(sw, m(sw), sw.clone(), torch.zeros(9, dtype=torch.bool), 0,
                                                            1, 8, 0.9, True), "running_min"),
        ("act_qparams initialized", lambda: ops.act_qparams(sw, sw.clone(), sw.clone(),
                                                            m(torch.zeros(9, dtype=torch.bool)), 0, 1, 8, 0.9, False),
         "initialized"),
    ]


@pytest.mark.parametrize("case", _mixed_meta_calls(), ids=lambda c: c[0])
def test_meta_among_cpu_tensors_is_an_error(case):
    # Meta outranks CPU in dispatch, so such a call reaches the fake impl; it used to return an
    # uninitialized CPU tensor as if the op had run.
    _, fn, arg = case
    with pytest.raises(RuntimeError, match=f"{arg} must be on"):
        fn()


def test_all_meta_inputs_give_meta_outputs():
    x, w, zw = _sample()
    zx, sx, sw = torch.tensor([1], dtype=torch.int32), torch.tensor([0.05]), torch.full((9,), 0.01)
    wp = q.pack_weight(w, zw, 8)
    m = [t.to("meta") for t in (x, zx, sx, wp, sw)]
    y = torch.ops.dwq.qlinear(m[0], m[2], m[1], 8, m[3], m[4], None, None, False, None, None, 8)
    assert y.device.type == "meta" and y.shape == (7, 9) and y.dtype == torch.float32


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda_kernel("qgemm_acc"))])
@pytest.mark.parametrize("rows", [9, 0])
@pytest.mark.parametrize("bits, field, value", [(8, "zp", 2**31 - 1), (8, "zp", -1), (8, "colsum", 2**62),
                                                (8, "colsum", -5), (4, "zp", 16), (12, "colsum", 37 * 4095 + 1)])
def test_a_damaged_packed_weight_is_refused(bits, field, value, rows, device):
    """The blob's zero points and column sums were used unchecked: zp[0] = 2^31 - 1 and colsum[1] = 2^62
    (a bit flip in a saved model) ran, with wrong accumulators and int64 overflow in the zero-point terms;
    on CUDA until the device checks learnt them (the bound is the header's bits, not the limb class's)."""
    g = torch.Generator().manual_seed(3)
    w, zw = rand_codes(g, (70, 37), bits), rand_zp(g, bits, (70,))
    x, zx = rand_codes(g, (rows, 37), 8), rand_zp(g, 8)
    blob = q.pack_weight(w, zw, bits)
    flat = blob.view(-1)
    colsum_off, zp_off = (int(flat[o:o + 8].clone().view(torch.int64)) for o in (56, 64))  # (the header's)
    off, dtype = (zp_off, torch.int32) if field == "zp" else (colsum_off + 8, torch.int64)  # channel 0 / 1
    size = torch.tensor([], dtype=dtype).element_size()
    flat[off:off + size] = torch.tensor([value], dtype=dtype).view(torch.int8)
    x, zx, blob = x.to(device), zx.to(device), blob.to(device)
    with pytest.raises(RuntimeError, match=f"w_packed is damaged: channel {0 if field == 'zp' else 1} holds .*"
                                           f"make it again with dwq.ops.pack_weight"):
        q.qgemm_acc(x, zx, 8, blob)
        torch.cuda.synchronize() if device == "cuda" else None

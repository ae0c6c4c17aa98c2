"""dwq.ops.qconv2d_residual: a ResNet block's last conv, its residual add, the ReLU and the next layer's
input codes in one pass (the add, ReLU and quantization in the conv's epilogue). Its kernel equals
qconv2d then add_relu_quantize_ (and the int64 reference) on every CPU ISA, at widths that take the
int32 fast path and the 8-bit limb paths; NaN is an error; bad input is refused by name; the wrapper
composes where the kernel does not apply (autograd, other layouts, CUDA). An integer ResNet runs each
block's conv3 + add + relu as one step with the step-by-step program's logits."""

import pytest
import torch
from deploy_models import calibrated
from conftest import needs_cuda_kernel

import dwq
from dwq.deploy import convert
from dwq.deploy.integer_model import _ConvResidualInto
from dwq.ops import _lib
from dwq.ops import qconv2d, qconv2d_residual
from dwq.ops import residual as r
from dwq.ops._lib import HAS_EXT
from dwq.ops.qgemm import pack_conv_weight
from dwq.ops.qgemm_reference import qconv2d_ref, quantize_act_ref

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _case(g, bits, C, N, hw, ks, stride, affine, batch=2):
    """(conv args after x_codes up to affine_bias, x_codes, w_codes, w zero points, the next layer's qparams)."""
    qm = (1 << bits) - 1
    x = torch.randint(0, qm + 1, (batch, C, hw, hw), generator=g, dtype=torch.int32)
    x = (x.to(torch.uint8) if bits <= 8 else x).contiguous(memory_format=torch.channels_last)
    w = torch.randint(0, qm + 1, (N, C, ks, ks), generator=g, dtype=torch.int32)
    zw = torch.randint(0, qm + 1, (N,), generator=g, dtype=torch.int32)
    sx, zx = torch.tensor([0.02]), torch.tensor([qm // 3], dtype=torch.int32)
    sw = torch.rand(N, generator=g) * 1e-3 + 1e-5
    aff = (torch.randn(N, generator=g), torch.randn(N, generator=g)) if affine else (None, None)
    conv = (sx, zx, bits, pack_conv_weight(w, zw, bits), sw, ks, stride, ks // 2) + aff
    nxt = (torch.tensor([0.05]), torch.tensor([qm // 2], dtype=torch.int32), bits)
    return conv, x, w, zw, nxt


def _composed(x, conv, residual, relu, nxt):
    y = qconv2d(x, *conv)
    y = torch.relu(y + residual) if relu else y + residual
    return y, quantize_act_ref(y, *nxt)


@needs_ext
def test_kernel_equals_the_conv_then_the_residual_ops(isa):
    # 64 channels: AMX's in-place 3x3 tiles; 70 output channels: a partial column block; 9 and 16
    # bits: the limb paths (store_row); 2 and 8: the fused int32 tile.
    g = torch.Generator().manual_seed(0)
    for bits in (2, 8, 9, 16):
        for C, N, hw, ks, stride in ((64, 70, 9, 3, 1), (16, 64, 7, 1, 1), (64, 32, 9, 3, 2)):
            for relu, affine in ((True, True), (False, False), (True, False)):
                conv, x, *_, nxt = _case(g, bits, C, N, hw, ks, stride, affine)
                y0 = qconv2d(x, *conv)
                res = (torch.randn(y0.shape, generator=g) * 4).contiguous(memory_format=torch.channels_last)
                res[0, 0, 0, 0] = -y0[0, 0, 0, 0]  # an exact 0 sum
                y, q = torch.ops.dwq.qconv2d_residual.default(x, *conv[:5], [conv[5]] * 2, [conv[6]] * 2,
                                                              [conv[7]] * 2, *conv[8:], res, relu, *nxt)
                want_y, want_q = _composed(x, conv, res, relu, nxt)
                at = f"bits {bits} C {C} N {N} k {ks} s {stride} relu {relu} affine {affine} {isa}"
                assert torch.equal(y, want_y) and torch.equal(q, want_q), at
                assert y.stride() == want_y.stride() == q.stride(), at


@needs_ext
def test_kernel_equals_the_int64_reference():
    g = torch.Generator().manual_seed(1)
    for bits in (4, 12):
        conv, x, w, zw, nxt = _case(g, bits, 16, 24, 6, 3, 1, True)
        res = torch.randn(2, 24, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
        y, q = qconv2d_residual(x, *conv, res, True, *nxt)
        ref = qconv2d_ref(x, conv[0], conv[1], w, conv[4], zw, (1, 1), (1, 1), conv[8], conv[9])
        want = torch.relu(ref + res)
        assert torch.equal(y, want) and torch.equal(q, quantize_act_ref(want, *nxt)), bits


@needs_ext
def test_nan_in_the_sum_is_an_error_and_inf_a_code(monkeypatch):
    g = torch.Generator().manual_seed(2)
    conv, x, *_, nxt = _case(g, 8, 16, 16, 5, 1, 1, False)
    for fused, message in ((True, r"relu\(conv \+ residual\) has 1 NaN value"), (False, r"has 1 NaN value")):
        monkeypatch.setattr(r, "_fused_epilogue_pays", lambda device: fused)  # the kernel, then the composed ops
        res = torch.zeros(2, 16, 5, 5).contiguous(memory_format=torch.channels_last)
        res[0, 3, 1, 1] = float("nan")
        res[1, 2, 0, 0] = float("inf")
        with pytest.raises(RuntimeError, match=message):
            qconv2d_residual(x, *conv, res, True, *nxt)
        res[0, 3, 1, 1] = 0.0
        y, q = qconv2d_residual(x, *conv, res, False, *nxt)
        assert y[1, 2, 0, 0] == float("inf") and q[1, 2, 0, 0] == 255


@needs_ext
@pytest.mark.parametrize("name, change, message", [
    ("residual's shape", lambda a: a.__setitem__(11, torch.zeros(2, 16, 5, 4)),
     "residual must have the output's shape"),
    ("residual's dtype", lambda a: a.__setitem__(11, a[11].double()), "residual must be float32"),
    ("residual's layout", lambda a: a.__setitem__(11, a[11].contiguous()), "residual must be channels-last"),
    ("out_bits", lambda a: a.__setitem__(15, 1), "out_bits must be in 2..16"),
    ("out_scale", lambda a: a.__setitem__(13, torch.tensor([float("nan")])), "out_scale must be finite and > 0"),
])
def test_op_refuses_bad_input(name, change, message):
    g = torch.Generator().manual_seed(3)
    conv, x, *_, nxt = _case(g, 8, 16, 16, 5, 1, 1, False)
    res = torch.zeros(2, 16, 5, 5).contiguous(memory_format=torch.channels_last)
    args = [x, *conv[:5], [1, 1], [1, 1], [0, 0], *conv[8:], res, True, *nxt]
    change(args)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.dwq.qconv2d_residual.default(*args)


@needs_ext
def test_op_refuses_to_record_a_graph_and_the_wrapper_composes_one():
    g = torch.Generator().manual_seed(4)
    conv, x, *_, nxt = _case(g, 8, 16, 16, 5, 1, 1, True)
    res = torch.randn(2, 16, 5, 5, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    with pytest.raises(RuntimeError, match="residual requires grad, and this integer op has no gradient"):
        torch.ops.dwq.qconv2d_residual.default(x, *conv[:5], [1, 1], [1, 1], [0, 0], *conv[8:], res, True, *nxt)
    y, q = qconv2d_residual(x, *conv, res, True, *nxt)
    y.sum().backward()
    with torch.no_grad():
        want_y, want_q = qconv2d_residual(x, *conv, res, True, *nxt)
    assert torch.equal(y.detach(), want_y) and torch.equal(q, want_q)
    assert torch.equal(res.grad, (want_y > 0).float())


def test_wrapper_composes_where_the_kernel_does_not_apply(monkeypatch):
    if not HAS_EXT:
        pytest.skip("dwq._C (the compiled extension) is not importable")
    g = torch.Generator().manual_seed(5)
    conv, x, *_, nxt = _case(g, 6, 16, 8, 6, 3, 1, True)
    res = torch.randn(2, 8, 6, 6, generator=g)  # NCHW: not the kernel's layout
    want = _composed(x, conv, res, True, nxt)
    for kernel in (True, False):
        monkeypatch.setitem(_lib._KERNELS, ("qconv2d_residual", "cpu"), kernel)
        for rl in (res, res.contiguous(memory_format=torch.channels_last)):
            y, q = qconv2d_residual(x, *conv, rl, True, *nxt)
            assert torch.equal(y, want[0]) and torch.equal(q, want[1]), (kernel, rl.stride())
    with pytest.raises(ValueError, match="residual must have the output's shape"):
        qconv2d_residual(x, *conv, res[:, :, :1, :1], True, *nxt)  # no broadcast, composed or not


@needs_ext
def test_opcheck():
    g = torch.Generator().manual_seed(6)
    for bits, affine in ((4, True), (12, False)):
        conv, x, *_, nxt = _case(g, bits, 8, 8, 5, 3, 1, affine)
        res = torch.randn(2, 8, 5, 5, generator=g).contiguous(memory_format=torch.channels_last)
        torch.library.opcheck(torch.ops.dwq.qconv2d_residual.default,
                              (x, *conv[:5], [3, 3], [1, 1], [1, 1], *conv[8:], res, True, *nxt))


@needs_ext
@needs_cuda_kernel("qconv2d")
def test_cuda_composes_the_cpu_kernels_values():
    g = torch.Generator().manual_seed(7)
    conv, x, *_, nxt = _case(g, 8, 64, 32, 8, 3, 1, True)
    res = torch.randn(2, 32, 8, 8, generator=g).contiguous(memory_format=torch.channels_last)
    want = qconv2d_residual(x, *conv, res, True, *nxt)

    def cuda(args):
        return [t.cuda() if torch.is_tensor(t) else t for t in args]

    y, q = qconv2d_residual(x.cuda(), *cuda(conv), res.cuda(), True, *cuda(nxt))
    assert torch.equal(y.cpu(), want[0]) and torch.equal(q.cpu(), want[1])


def _small_resnet(precisions):
    from dwq.models.resnet import ResNet
    from dwq.models.common import QuantPolicy

    return ResNet([1, 1, 1, 1], 10, precisions, QuantPolicy(shortcut=True), True, None, None)


@needs_ext
def test_an_integer_resnet_runs_conv3_add_and_relu_as_one_step(monkeypatch):
    m = calibrated(_small_resnet([4, 8, None]), (2, 3, 32, 32))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    steps = [fn for fn, *_ in im._plan[0]]
    assert sum(isinstance(fn, _ConvResidualInto) for fn in steps) == 3  # the blocks a quantized conv follows
    calls = []
    op = torch.ops.dwq.qconv2d_residual.default
    monkeypatch.setattr(r.torch.ops.dwq.qconv2d_residual, "default", lambda *a: calls.append(1) or op(*a))
    monkeypatch.setattr(r, "_fused_epilogue_pays", lambda device: True)  # (the kernel, on any CPU path)
    x = torch.rand(2, 3, 32, 32)
    for p in (4, 8, None):
        calls.clear()
        with dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            assert torch.equal(im(x), unfused(x)), p
        assert len(calls) == (0 if p is None else 3), p
    assert im.program == unfused.program


@needs_ext
def test_a_conv_with_forward_hooks_runs_alone_and_its_hooks_see_it(monkeypatch):
    """The fused step skipped the conv's call, so hooks on it never ran (code_agreement lost those layers)."""
    m = calibrated(_small_resnet([4, None]), (2, 3, 32, 32))
    im = convert(m)
    conv = next(fn.conv for fn, *_ in im._plan[0] if isinstance(fn, _ConvResidualInto))
    calls = []
    op = torch.ops.dwq.qconv2d_residual.default
    monkeypatch.setattr(r.torch.ops.dwq.qconv2d_residual, "default", lambda *a: calls.append(1) or op(*a))
    monkeypatch.setattr(r, "_fused_epilogue_pays", lambda device: True)
    x, seen = torch.rand(2, 3, 32, 32), []
    with dwq.precision(im, 4), torch.no_grad():
        want = im(x)
        n = len(calls)
        # a pre-hook: the hooked conv ran as its own step, the others fused; a forward hook, which may keep
        # the conv's output: no step writes in place (the add would overwrite that output), none fuses
        for add, fused in ((conv.register_forward_pre_hook, n - 1), (conv.register_forward_hook, 0)):
            calls.clear()
            h = add(lambda mod, *io: seen.append(io[0][0].dtype))
            assert torch.equal(im(x), want)
            h.remove()
            assert len(calls) == fused
    assert seen == [torch.uint8, torch.uint8]


@needs_ext
def test_the_fused_epilogue_runs_only_on_the_paths_where_it_pays(monkeypatch):
    """On AVX2 qconv2d_residual's kernel took 2-2.5x qconv2d + add_relu_quantize_ on ResNet-50's block ends
    (the whole model 1.18x): the wrapper composes there, and on the scalar path; the values are the same."""
    g = torch.Generator().manual_seed(6)
    conv, x, *_, nxt = _case(g, 6, 16, 8, 6, 1, 1, True)
    res = torch.randn(2, 8, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
    calls = []
    op = torch.ops.dwq.qconv2d_residual.default
    monkeypatch.setattr(r.torch.ops.dwq.qconv2d_residual, "default", lambda *a: calls.append(1) or op(*a))
    want = _composed(x, conv, res, True, nxt)
    for isa, fused in (("avx2", False), ("scalar", False), ("avx512_vnni", True), ("amx", True)):
        monkeypatch.setenv("DWQ_CPU_ISA", isa)
        assert r._fused_epilogue_pays(torch.device("cpu")) == fused
        if isa in r._cpu_isas():
            calls.clear()
            y, q = qconv2d_residual(x, *conv, res, True, *nxt)
            assert len(calls) == int(fused) and torch.equal(y, want[0]) and torch.equal(q, want[1]), isa

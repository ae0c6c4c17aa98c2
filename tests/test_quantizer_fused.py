"""The fused quantizer kernels (dwq::act_qparams, dwq::weight_fake_quantize) against their
pure-PyTorch reference, dwq.quant's own path, bit for bit: on CPU here, on CUDA where a GPU is
present (the CUDA kernels have not run yet on this project's CPU-only machines)."""
import pytest
import torch

from dwq.ops import HAS_EXT, has_kernel
from dwq.ops import quantizer_fused as fused
from dwq.quant import ActQuantizer, WeightQuantizer, normalize_precision
from dwq.quant.quantizers import quantize_with

CUDA = torch.cuda.is_available() and HAS_EXT and has_kernel("act_qparams", "cuda")
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and dwq._C built with its CUDA kernels")
needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built")
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


@needs_ext
def test_fused_path_serves_float32_and_16_bit_floats_only():
    assert fused.available(torch.randn(8), "act_qparams") and fused.available(torch.randn(8), "weight_fake_quantize")
    assert fused.available(torch.randn(8).half(), "act_qparams")
    assert not fused.available(torch.randn(8, dtype=torch.float64), "act_qparams")
    assert not fused.available(torch.randn(8, device="meta"), "weight_fake_quantize")


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built")
def test_fake_impls_give_the_kernels_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 3, 4, 5)
        rmin, rmax, init = torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool)
        s, z = torch.ops.dwq.act_qparams(x, rmin, rmax, init, 1, 2, 4, 0.1, True)
        assert s.shape == (1,) and s.dtype == torch.float32 and z.shape == (1,) and z.dtype == torch.int32
        w = torch.empty(8, 3, 3, 3).contiguous(memory_format=torch.channels_last)
        out = torch.ops.dwq.weight_fake_quantize(w, 4)
        assert out.shape == w.shape and out.is_contiguous()


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_act_qparams_of_an_empty_x(device):
    """Train mode has no range to take from an empty batch (a clear error on every device, before any
    kernel: on CUDA the kernel's NaN range would be a device assert); eval mode with a tracked range
    does not need one."""
    rmin, rmax = torch.zeros(3, device=device), torch.zeros(3, device=device)
    init = torch.zeros(3, dtype=torch.bool, device=device)
    empty = torch.empty(0, 8, device=device)
    with pytest.raises(RuntimeError, match=r"x is empty, got shape \[0, 8\]"):
        torch.ops.dwq.act_qparams(empty, rmin, rmax, init, 1, 2, 4, 0.1, True)
    assert not init.any() and not rmax.any()  # nothing was updated
    rmax[1], init[1] = 3.0, True
    s, z = torch.ops.dwq.act_qparams(empty, rmin, rmax, init, 1, 2, 4, 0.1, False)
    assert s.item() == pytest.approx(3.0 / 15) and z.item() == 0


def _act_reference(q, x, bits, precision):
    """The pure-PyTorch path of ActQuantizer (what runs off CUDA), made to run on CUDA too."""
    avail = fused.available
    try:
        fused.available = lambda *a: False
        return q(x, bits, precision)
    finally:
        fused.available = avail


@needs_ext
@pytest.mark.parametrize("path", ["fused", "torch"])
def test_a_batch_without_a_finite_range_leaves_the_running_ranges(path):
    """Either path: a train-mode batch holding NaN or inf (or a range wider than float32) fails its
    forward and leaves every running range as it was (the EMA of NaN or inf would never recover); at
    full precision, where nothing is quantized, it is not tracked."""
    run = (lambda q, x, b, p: q(x, b, p)) if path == "fused" else _act_reference
    p4 = normalize_precision(4)
    for bad in ([0.0, float("nan")], [0.0, float("inf")], [-3e38, 3e38]):
        q = ActQuantizer([None, 4]).train()
        run(q, torch.tensor([-1.0, 2.0]), 4, p4)
        before = [t.clone() for t in (q.running_min, q.running_max, q.initialized)]
        with pytest.raises((ValueError, RuntimeError), match="NaN|finite"):
            run(q, torch.tensor(bad), 4, p4)
        run(q, torch.tensor(bad), None, None)
        assert all(torch.equal(a, b) for a, b in zip(before, (q.running_min, q.running_max, q.initialized))), bad
        q.eval()  # quantizes as one that never saw the bad batch (it compared q's output with itself)
        clean = ActQuantizer([None, 4]).train()
        run(clean, torch.tensor([-1.0, 2.0]), 4, p4)
        x = torch.linspace(-2.0, 3.0, 11)
        assert torch.equal(run(q, x, 4, p4), run(clean.eval(), x, 4, p4)), bad


@needs_ext
@pytest.mark.parametrize("path", ["fused", "torch"])
def test_running_buffers_are_updated_as_torch_in_place_ops_are(path):
    """Either path: a train-mode update bumps the buffers' version counters (autograd refuses a range it
    saved before the update instead of silently using the new one), inference-mode buffers are refused
    outside inference mode before any write, and model.half() keeps the float32 range unrounded."""
    run = (lambda q, x, b, p: q(x, b, p)) if path == "fused" else _act_reference
    p4 = normalize_precision(4)
    q = ActQuantizer([4]).train()
    run(q, torch.tensor([-1.0, 1.0]), 4, p4)
    a = torch.tensor(2.0, requires_grad=True)
    y = (a * q.running_min).sum()
    run(q, torch.tensor([-5.0, 1.0]), 4, p4)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    with torch.inference_mode():
        qi = ActQuantizer([4]).train()
    with pytest.raises(RuntimeError, match="[Ii]nference"):
        run(qi, torch.tensor([0.0, 1.0]), 4, p4)
    assert not qi.initialized.any()
    q = ActQuantizer([4]).train()
    run(q, torch.tensor([-1.0, 1.0 / 3]), 4, p4)
    want = q.running_max.clone()
    q.half()
    assert q.running_min.dtype == q.running_max.dtype == torch.float32 and torch.equal(q.running_max, want)
    ref_q = ActQuantizer([4]).train()
    ref_q.load_state_dict(q.state_dict())
    x = torch.randn(16, generator=torch.Generator().manual_seed(1)).half()
    got = run(q, x, 4, p4)
    assert got.dtype == torch.float16 and torch.equal(got, _act_reference(ref_q, x, 4, p4))
    assert torch.equal(q.running_max, ref_q.running_max)


@needs_ext
@pytest.mark.parametrize("path", ["fused", "torch"])
def test_act_quantizer_on_an_empty_batch_either_path(path):
    """ActQuantizer alike on both paths: an empty batch comes back as it is, tracked range or not, and
    train mode tracks nothing from it (the pure-PyTorch path used to fail inside aminmax; with no range
    tracked, eval failed as a NaN range, "the tensor has NaN values")."""
    run = (lambda q, x, b, p: q(x, b, p)) if path == "fused" else _act_reference
    p4, empty = normalize_precision(4), torch.empty(0, 8)
    q = ActQuantizer([4, 8]).train()
    assert run(q, empty, 4, p4).shape == (0, 8)
    assert not q.initialized.any()
    run(q, torch.linspace(-1, 2, 8), 4, p4)
    q.eval()
    y = run(q, empty, 4, p4)
    assert y.shape == (0, 8) and y.dtype == empty.dtype
    assert run(ActQuantizer([4]).eval(), empty, 4, p4).shape == (0, 8)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_act_qparams_matches_reference(device, dtype):
    g = torch.Generator().manual_seed(0)
    for bits in (2, 4, 8, 16):
        qa = ActQuantizer([4, 8, 16, 2]).to(device).train()
        qb = ActQuantizer([4, 8, 16, 2]).to(device).train()
        for step in range(4):
            x = (torch.randn(7, 33, 5, generator=g) * (step + 1) + step - 1).to(device, dtype)
            p = normalize_precision(bits)
            got = qa(x, bits, p)
            want = _act_reference(qb, x, bits, p)
            assert torch.equal(got, want), (bits, step)
            for name in ("running_min", "running_max", "initialized"):
                assert torch.equal(getattr(qa, name), getattr(qb, name)), (bits, step, name)
        qa.eval()
        qb.eval()
        x = torch.randn(3, 1000, generator=g).to(device, dtype)
        assert torch.equal(qa(x, bits, p), _act_reference(qb, x, bits, p))
        other = 4 if bits != 4 else 8  # never trained: eval falls back to the observed range
        po = normalize_precision(other)
        assert torch.equal(qa(x, other, po), _act_reference(qb, x, other, po))
        fresh_a, fresh_b = ActQuantizer([bits]).to(device).eval(), ActQuantizer([bits]).to(device).eval()
        assert torch.equal(fresh_a(x, bits, p), _act_reference(fresh_b, x, bits, p))  # never initialized


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_act_qparams_shared_range_matches_reference(device):
    g = torch.Generator().manual_seed(1)
    qa = ActQuantizer([4, 8], shared_range=True).to(device).train()
    qb = ActQuantizer([4, 8], shared_range=True).to(device).train()
    for step, bits in enumerate((4, 8, 4)):
        x = (torch.randn(5, 40, generator=g) * (step + 1)).to(device)
        p = normalize_precision(bits)
        assert torch.equal(qa(x, bits, p), _act_reference(qb, x, bits, p))
        assert torch.equal(qa.running_min, qb.running_min) and torch.equal(qa.running_max, qb.running_max)
    qa.eval()
    qb.eval()
    x = torch.randn(3, 50, generator=g).to(device)
    assert torch.equal(qa(x, 8, normalize_precision(8)), _act_reference(qb, x, 8, normalize_precision(8)))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_inf_errors_are_the_reference_ones(device):
    q = ActQuantizer([4]).to(device).train()
    bad = torch.tensor([1.0, float("nan")], device=device)
    if device == "cpu":
        with pytest.raises(ValueError, match="NaN"):
            q(bad, 4, normalize_precision(4))
        with pytest.raises(ValueError, match="NaN"):
            WeightQuantizer()(bad.reshape(1, 2), 4)
        # inf, or finite with max - min overflowing float32: no finite scale. The error is the reference
        # path's ValueError (a float64 weight takes that path); the kernel raised a RuntimeError.
        wide = torch.tensor([[-3e38, 3e38], [0.5, 1.0]])
        for w in (torch.tensor([[1.0, float("inf")]]), wide):
            for dtype in (torch.float32, torch.float64):
                with pytest.raises(ValueError, match="scale"):
                    WeightQuantizer()(w.to(dtype), 4)
        with pytest.raises(RuntimeError, match="scale"):
            s, z = WeightQuantizer().qparams(wide, 4)
            quantize_with(wide, s, z, 4, 0, "int")
        # eval mode with a tracked range skips the range pass; NaN is still an error, on both paths
        q = ActQuantizer([4]).train()
        q(torch.tensor([0.0, 2.0]), 4, normalize_precision(4))
        q.eval()
        with pytest.raises((ValueError, RuntimeError), match="NaN") as fused_err:
            q(bad, 4, normalize_precision(4))
        with pytest.raises((ValueError, RuntimeError), match="NaN") as ref_err:
            _act_reference(q, bad, 4, normalize_precision(4))
        assert not torch.isnan(q.running_min).any()  # eval never touches the range
        assert fused_err.type is ref_err.type


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_cpu_weight_op_raises_on_nan_channels_itself(dtype):
    """The CPU kernel counts NaN channels and raises (WeightQuantizer no longer scans its output for
    them: a NaN check was 6 us of host time per layer). With NaN and inf channels both, NaN is named
    first, as the pure-PyTorch path (a float64 weight) names it: inf came first, another error."""
    w = torch.randn(6, 40).to(dtype)
    w[1, 7] = w[4, 0] = float("nan")
    for bits in (2, 8, 16):
        with pytest.raises(ValueError, match=r"contains NaN.*2 output channel\(s\) hold NaN"):
            torch.ops.dwq.weight_fake_quantize(w, bits)
    w[2, 3] = float("inf")
    for ww in (w, w.double()):
        with pytest.raises(ValueError, match="the observed range contains NaN"):
            WeightQuantizer()(ww, 4)
    w[1, 7] = w[4, 0] = 0.0
    with pytest.raises(ValueError, match="1 output channel.*inf"):
        torch.ops.dwq.weight_fake_quantize(w, 4)
    w = torch.randn(6, 40).to(dtype)
    assert not torch.isnan(torch.ops.dwq.weight_fake_quantize(w, 4)).any()


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(64, 3, 3, 3), (10, 7), (1, 4096), (513, 1)])
def test_weight_fake_quantize_matches_reference_and_is_ste(device, dtype, shape):
    from dwq.quant import fake_quantize

    g = torch.Generator().manual_seed(1)
    wq = WeightQuantizer()
    for bits in (2, 4, 8, 12, 16):
        w = (torch.randn(shape, generator=g) * 0.1).to(device, dtype).requires_grad_()
        got = wq(w, bits)
        scale, zp = wq.qparams(w, bits)
        assert got.dtype == dtype
        assert torch.equal(got, fake_quantize(w.detach(), scale, zp, bits, 0)), (shape, bits)
        got.backward(torch.ones_like(got))
        assert torch.equal(w.grad, torch.ones_like(w))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out", [torch.float16, torch.bfloat16])
def test_weight_fake_quantize_writes_autocast_dtype_as_the_cast_rounds(device, out):
    """dtype=float16/bfloat16 of a float32 w (what autocast casts a conv's weight to): bit for bit the
    float32 result cast, in one pass, with the gradient in w's dtype: small, ordinary and large weights,
    and a channel reaching float16's largest values (where the rounding may overflow to inf)."""
    op = torch.ops.dwq.weight_fake_quantize
    g = torch.Generator().manual_seed(3)
    for shape in ((64, 3, 3, 3), (10, 7), (1, 4096), (513, 1)):
        for scale in (1e-3, 0.1, 30.0):
            w = (torch.randn(shape, generator=g) * scale).to(device)
            for bits in (2, 4, 8, 12, 16):
                got = op(w, bits, out)
                assert got.dtype == out and got.shape == w.shape and got.is_contiguous()
                assert torch.equal(got, op(w, bits).to(out)), (shape, scale, bits)
    ties = torch.tensor([[1.0, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 2.0 ** -8 * 3, 65519.0, 0.0]], device=device)
    for bits in (14, 16):  # (the codes step finer than float16's: the one rounding decides)
        assert torch.equal(op(ties, bits, out), op(ties, bits).to(out))
    w = torch.randn(8, 5, generator=g).to(device).requires_grad_()
    y = op(w, 4, out)
    y.backward(torch.full_like(y, 0.5))
    assert w.grad.dtype == torch.float32 and torch.equal(w.grad, torch.full_like(w, 0.5))
    assert op(w.detach().half(), 4, torch.float16).dtype == torch.float16  # (w's own dtype: allowed)
    for w_dtype, bad in ((torch.float16, torch.bfloat16), (torch.float32, torch.float64), (torch.bfloat16, torch.float32)):
        with pytest.raises(RuntimeError, match="dtype must be w's"):
            op(torch.randn(4, 4, device=device, dtype=w_dtype), 4, bad)
    with pytest.raises(RuntimeError, match="weight_fake_quantize: w must be float32, float16 or bfloat16, got Double"):
        op(torch.randn(4, 4, device=device, dtype=torch.float64), 4)  # (the op has no x: it named one)


@needs_cuda
def test_no_host_sync_in_a_quantized_forward_backward():
    from dwq.models import preact_resnet18
    import dwq

    m = preact_resnet18(num_classes=10, precisions=[4, 8]).cuda().train()
    dwq.set_precision(m, 4)
    x = torch.rand(8, 3, 32, 32, device="cuda")
    m(x).sum().backward()  # warm-up (cudnn, allocator)
    torch.cuda.set_sync_debug_mode("error")
    try:
        m(x).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for x in (torch.randn(2, 3, 4, 5, device=device),
              torch.randn(2, 3, 4, 5, device=device).contiguous(memory_format=torch.channels_last),
              torch.randn(2, 3, 4, 5, device=device).half()):
        state = (torch.zeros(3, device=device), torch.zeros(3, device=device),
                 torch.zeros(3, dtype=torch.bool, device=device))
        torch.library.opcheck(torch.ops.dwq.act_qparams.default, (x, *state, 1, 2, 4, 0.1, True))
        torch.library.opcheck(torch.ops.dwq.weight_fake_quantize.default, (x.detach().requires_grad_(), 4))
        if x.dtype == torch.float32:
            for out in (torch.float16, torch.bfloat16):
                torch.library.opcheck(torch.ops.dwq.weight_fake_quantize.default, (x.detach().requires_grad_(), 4, out))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_act_qparams_any_layout_same_range(device, dtype):
    """The range does not depend on the memory order: channels-last (read in place on CUDA), sliced
    (copied) and misaligned (element-wise loads) inputs give the contiguous input's scale, zero point
    and running range, for a size past one pass of the grid with a ragged tail."""
    g = torch.Generator().manual_seed(2)
    base = (torch.randn(8, 16, 45, 47, generator=g) * 3 + 0.5).to(device, dtype)
    views = {"channels_last": base.contiguous(memory_format=torch.channels_last), "sliced": base[:, :, 1:, ::2],
             "misaligned": base.reshape(-1)[1:].reshape(1, -1)}
    def state():
        return (torch.zeros(3, device=device), torch.zeros(3, device=device),
                torch.zeros(3, dtype=torch.bool, device=device))

    for name, x in views.items():
        want_state, got_state = state(), state()
        want = torch.ops.dwq.act_qparams(x.contiguous(), *want_state, 1, 2, 8, 0.1, True)
        got = torch.ops.dwq.act_qparams(x, *got_state, 1, 2, 8, 0.1, True)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), name
        assert all(torch.equal(a, b) for a, b in zip(got_state, want_state)), name
        assert bool(got_state[2][1]) and float(got_state[1][1]) == float(x.float().max()), name


NAN_ON_CUDA = r"""
import sys, torch
from dwq.quant import ActQuantizer, WeightQuantizer, normalize_precision
from dwq.quant.quantizers import quantize_with
bad = torch.tensor([1.0, float("nan"), 2.0], device="cuda")
if sys.argv[1] == "act":
    ActQuantizer([4]).cuda().train()(bad, 4, normalize_precision(4))
elif sys.argv[1] == "act_eval":  # a tracked range: no range pass, fake_quantize itself asserts
    q = ActQuantizer([4]).cuda().train()
    q(torch.tensor([0.0, 2.0], device="cuda"), 4, normalize_precision(4))
    q.eval()(bad, 4, normalize_precision(4))
else:
    WeightQuantizer()(bad.reshape(1, 3), 4)
torch.cuda.synchronize()
print("no error")
"""


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and dwq._C's CUDA kernels")
@pytest.mark.parametrize("which", ["act", "act_eval", "weight"])
def test_nan_on_cuda_is_a_device_assert(which):
    """On CUDA the fused kernels fail a device-side assert on a NaN range, and fake_quantize on NaN in x
    (eval mode with a tracked range reads no range): no host sync, never a silent NaN. The CUDA
    context cannot be used after it, hence a process of its own."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", NAN_ON_CUDA, which], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "no error" not in r.stdout
    assert "device-side assert" in r.stderr or "cannot quantize" in r.stderr, r.stderr[-2000:]


EMPTY_ON_CUDA = r"""
import torch
from dwq.ops import fake_quantize
x = torch.empty(0, 3, device="cuda")
fake_quantize(x, torch.tensor([-1.0], device="cuda"), torch.tensor([0], dtype=torch.int32, device="cuda"), 8)
torch.cuda.synchronize()
print("no error")
"""


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and dwq._C's CUDA kernels")
def test_bad_qparams_with_an_empty_x_on_cuda_are_a_device_assert():
    """The CPU op refuses a scale of -1 whatever x holds; the CUDA one returned for an empty x before any
    kernel checked it. (A device assert ends the CUDA context: a process of its own.)"""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", EMPTY_ON_CUDA], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "no error" not in r.stdout
    assert "device-side assert" in r.stderr, r.stderr[-2000:]


@needs_ext
def test_a_quantized_conv_forward_is_a_few_kernels():
    """The work of a quantized layer's forward, counted as dispatched ops (on a GPU each is a launch):
    the activation's range and qparams, its fake quantization, the weight's, the conv; in eval mode,
    once a range is tracked, the qparams only at the first forward; inside reuse_quantized_weights the
    weight's only once. Views and the CPU-only NaN and inf checks aside (on CUDA the fused kernels
    assert on the device instead)."""
    import collections

    import dwq
    from dwq.quant import reuse_quantized_weights
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    free = {"detach", "view", "slice", "isnan", "isinf", "any", "_local_scalar_dense"}
    conv = dwq.QConv2d(8, 8, 3, padding=1, precisions=[4, None])
    dwq.set_precision(conv, 4)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    for mode in ("train", "eval"):
        getattr(conv, mode)()
        with Count() as c:
            conv(x)
        work = {k: v for k, v in c.ops.items() if k not in free}
        assert work == {"act_qparams": 1, "fake_quantize": 1, "weight_fake_quantize": 1, "convolution": 1}, (mode, work)
    with Count() as c:
        conv(x)
    work = {k: v for k, v in c.ops.items() if k not in free}
    assert work == {"fake_quantize": 1, "weight_fake_quantize": 1, "convolution": 1}, work
    with reuse_quantized_weights(conv), Count() as c:
        conv(x)
        conv(x)
    assert c.ops["weight_fake_quantize"] == 1 and c.ops["convolution"] == 2 and c.ops["act_qparams"] == 0


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_every_cpu_isa_is_bit_exact(isa, dtype):
    """The range and weight kernels are built once per ISA (csrc/cpu/float_kernels_*.cpp): each gives
    the pure-PyTorch path's values, for sizes around their vector steps, with and without NaN."""
    g = torch.Generator().manual_seed(12)
    for n in (1, 15, 63, 64, 65, 1000, 4099):
        x = (torch.randn(n, generator=g) * 5 - 1).to(dtype)
        qa, qb = ActQuantizer([4]).train(), ActQuantizer([4]).train()
        p = normalize_precision(4)
        assert torch.equal(qa(x, 4, p), _act_reference(qb, x, 4, p)), (isa, n)
        assert torch.equal(qa.running_min, qb.running_min) and torch.equal(qa.running_max, qb.running_max)
        w = x.reshape(1, -1).repeat(3, 1)
        w[1] *= 2
        ref_out = None
        avail = fused.available
        try:
            fused.available = lambda *a: False
            ref_out = WeightQuantizer()(w, 4)
        finally:
            fused.available = avail
        assert torch.equal(WeightQuantizer()(w, 4), ref_out), (isa, n)
        if dtype == torch.float32:  # (float16 / bfloat16 written from float32: the cast's values)
            for out in (torch.float16, torch.bfloat16):
                assert torch.equal(torch.ops.dwq.weight_fake_quantize(w, 4, out), ref_out.to(out)), (isa, n, out)
        bad = x.clone()
        bad[n // 2] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            ActQuantizer([4]).train()(bad, 4, p)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("call", ["torch.ops", "wrapper"])
def test_act_qparams_bumps_versions_however_called(device, call):
    """The op's own ADInplaceOrView kernel (csrc/ops/inplace_versions.cpp) does what torch's in-place
    ops do, so torch.ops.dwq.act_qparams called directly is as safe as dwq's wrapper: a train-mode call
    bumps the three buffers' version counters (under no_grad too), so autograd refuses a range saved
    before it; eval mode writes and bumps nothing; inference-mode buffers (no version counter) are
    updated inside inference mode and refused outside it before any write, whatever x is."""
    op = torch.ops.dwq.act_qparams if call == "torch.ops" else fused.act_qparams

    def state():
        return (torch.zeros(3, device=device), torch.zeros(3, device=device),
                torch.zeros(3, dtype=torch.bool, device=device))

    x = torch.tensor([-5.0, 1.0], device=device)
    for saved in (0, 1):  # running_min, running_max
        buffers = state()
        a = torch.tensor(2.0, device=device, requires_grad=True)
        y = a * buffers[saved]
        op(x, *buffers, 1, 2, 4, 0.1, True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
    buffers = state()
    with torch.no_grad():
        op(x, *buffers, 1, 2, 4, 0.1, True)
    assert [t._version for t in buffers] == [1, 1, 1]
    a = torch.tensor(2.0, device=device, requires_grad=True)
    y = a * buffers[0]
    op(x, *buffers, 1, 2, 4, 0.1, False)
    assert [t._version for t in buffers] == [1, 1, 1]
    y.sum().backward()
    assert a.grad.item() == -10.0  # slots 1 and 2 (observed) hold -5

    with torch.inference_mode():
        op(x, *buffers, 1, 2, 4, 0.1, True)  # normal buffers inside inference mode: bumped
        inf_buffers = state()
        op(x, *inf_buffers, 1, 2, 4, 0.1, True)  # inference buffers: updated, nothing to bump
        inf_x = x * 2
    assert [t._version for t in buffers] == [2, 2, 2]
    assert bool(inf_buffers[2][1]) and float(inf_buffers[0][1]) == -5.0
    before = [t.clone() for t in inf_buffers]
    for xx in (x * 2, inf_x):  # a normal x, an inference x
        assert xx.is_inference() == (xx is inf_x)
        with pytest.raises(RuntimeError, match="running_min is an inference tensor"):
            op(xx, *inf_buffers, 1, 2, 4, 0.1, True)
        assert all(torch.equal(t, b) for t, b in zip(inf_buffers, before))
    s, z = op(x, *inf_buffers, 1, 2, 4, 0.1, False)  # eval mode only reads them
    assert s.item() == pytest.approx(6.0 / 15)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_act_qparams_compiles_with_its_buffer_updates(device):
    """torch.compile(fullgraph=True) of a direct train-mode call gives eager's qparams and running buffers."""
    def f(x, rmin, rmax, init):
        s, z = torch.ops.dwq.act_qparams(x, rmin, rmax, init, 1, 2, 4, 0.1, True)
        return x / s + z

    def state():
        return (torch.zeros(3, device=device), torch.zeros(3, device=device),
                torch.zeros(3, dtype=torch.bool, device=device))

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    want_state, got_state = state(), state()
    for step in range(2):
        x = torch.randn(4, 5, generator=torch.Generator().manual_seed(step)).to(device)
        assert torch.equal(compiled(x, *got_state), f(x, *want_state)), step
        assert all(torch.equal(a, b) for a, b in zip(got_state, want_state)), step
    assert got_state[0]._version > 0


def _bits(t):
    return t.view(torch.int32)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_zero_bound_is_tracked_as_positive_zero_on_both_paths(device, dtype):
    """-0.0 and +0.0 compare equal but are different bits, and a min/max reduction may return either
    when both occur, depending on how the elements were split among threads. The running buffers are
    promised bit for bit (checkpoints, resume): a batch bound of zero is kept as +0.0 on the fused and
    the pure-PyTorch path alike, on every run with two threads (x spans several parallel chunks)."""
    n = 1 << 18
    idx = torch.arange(n)
    g = torch.Generator().manual_seed(3)
    cases = {
        "-0.0 and positives (min is zero)": torch.where(idx % 3 == 0, -0.0, torch.rand(n, generator=g) + 0.5),
        "all -0.0": torch.full((n,), -0.0),
        "-0.0 and +0.0": torch.where(idx % 2 == 0, -0.0, 0.0),
        "+0.0 then -0.0": torch.cat([torch.zeros(n // 2), torch.full((n // 2,), -0.0)]),
        "negatives and -0.0 (max is zero)": torch.where(idx % 5 == 0, -0.0, -torch.rand(n, generator=g) - 0.5),
    }
    p = normalize_precision(4)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for name, x in cases.items():
            x = x.to(device, dtype)
            runs = []
            for run in range(3):
                qa = ActQuantizer([4, 8]).to(device).train()
                qb = ActQuantizer([4, 8]).to(device).train()
                for step in range(2):  # the first batch initializes, the second is an EMA step
                    assert torch.equal(qa(x, 4, p), _act_reference(qb, x, 4, p)), (name, run, step)
                for buf in ("running_min", "running_max"):
                    got, want = getattr(qa, buf), getattr(qb, buf)
                    assert torch.equal(_bits(got), _bits(want)), (name, run, buf, got, want)
                    assert not torch.signbit(got[got == 0]).any(), (name, run, buf, got)
                runs.append(torch.cat([_bits(qa.running_min), _bits(qa.running_max)]))
                # the op called directly, with slot == observed
                state = (torch.zeros(1, device=device), torch.zeros(1, device=device),
                         torch.zeros(1, dtype=torch.bool, device=device))
                torch.ops.dwq.act_qparams(x, *state, 0, 0, 4, 0.1, True)
                assert not any(torch.signbit(t[t == 0]).any() for t in state[:2]), (name, run, state)
            assert all(torch.equal(r, runs[0]) for r in runs), name
    finally:
        torch.set_num_threads(threads)


@needs_ext
def test_act_qparams_names_the_slot_argument_out_of_range():
    # observed out of range was reported as "slot 7 is outside running_min [3]", with slot = 1
    x, rmin, rmax, init = torch.randn(5), torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    with pytest.raises(RuntimeError, match=r"dwq.act_qparams: observed 7 is outside running_min \[3\]"):
        torch.ops.dwq.act_qparams(x, rmin, rmax, init, 1, 7, 4, 0.9, True)
    with pytest.raises(RuntimeError, match=r"dwq.act_qparams: slot -1 is outside running_min \[3\]"):
        torch.ops.dwq.act_qparams(x, rmin, rmax, init, -1, 2, 4, 0.9, True)

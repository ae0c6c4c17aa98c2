"""reuse_quantized_weights: inside the block each weight is fake-quantized once per width and reused
while unchanged; values, gradients and a whole training step are those of fresh quantization."""
import contextlib
import copy

import pytest
import torch

import dwq
from dwq.attacks import pgd
from dwq.models import small_cnn
from dwq.quant import WeightQuantizer, reuse_quantized_weights
from dwq.train import TrainConfig, Trainer


def _count_quantizations(monkeypatch):
    calls = []
    original = WeightQuantizer._quantize

    def counted(self, w, bits, *rest):
        calls.append(bits)
        return original(self, w, bits, *rest)

    monkeypatch.setattr(WeightQuantizer, "_quantize", counted)
    return calls


def _model():
    torch.manual_seed(0)
    m = small_cnn(precisions=[2, 4, 8], width=8).train()
    with torch.no_grad():
        m(torch.rand(16, 1, 28, 28))  # activation ranges
    return m.eval()


def test_pgd_quantizes_each_weight_once_inside_the_block(monkeypatch):
    m = _model()
    layers = sum(isinstance(q, WeightQuantizer) for q in m.modules())
    calls = _count_quantizations(monkeypatch)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(10, (8,))
    with dwq.precision(m, 4):
        pgd(m, x, y, 0.1, 0.025, 5)
        assert len(calls) == 5 * layers  # outside: one quantization per forward
        calls.clear()
        with reuse_quantized_weights(m):
            adv = pgd(m, x, y, 0.1, 0.025, 5, generator=torch.Generator().manual_seed(1))
        assert len(calls) == layers
        fresh = pgd(m, x, y, 0.1, 0.025, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(adv, fresh)  # the same attack as without reuse
    assert all(q._kept == {} and not q._reuse for q in m.modules() if isinstance(q, WeightQuantizer))


def test_eot_over_the_set_quantizes_each_weight_once_per_width(monkeypatch):
    # An EOT step runs every width in turn: a single kept copy per layer would requantize at each forward
    from dwq.attacks import eot_pgd
    from dwq.eval.protocols import run_at

    m = _model()
    layers = sum(isinstance(q, WeightQuantizer) for q in m.modules())
    x, y = torch.rand(8, 1, 28, 28), torch.randint(10, (8,))
    fns = [run_at(m, p) for p in (2, 4, 8)]
    fresh = eot_pgd(fns, x, y, 0.1, 0.025, 4, generator=torch.Generator().manual_seed(1))
    calls = _count_quantizations(monkeypatch)
    with reuse_quantized_weights(m):
        adv = eot_pgd(fns, x, y, 0.1, 0.025, 4, generator=torch.Generator().manual_seed(1))
    assert sorted(calls) == sorted([2, 4, 8] * layers)
    assert torch.equal(adv, fresh)


def test_values_and_gradients_equal_fresh_quantization():
    m = _model()
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    for p in (2, 8):
        with dwq.precision(m, p):
            out = m(x)
            g_fresh, = torch.autograd.grad(out.square().sum(), x)
            w_grads = [torch.autograd.grad(m(x).sum(), mod.weight)[0] for mod in (m.conv1,) if mod.weight.requires_grad]
            with reuse_quantized_weights(m):
                for _ in range(2):  # the second forward reuses
                    out2 = m(x)
                    g_kept, = torch.autograd.grad(out2.square().sum(), x)
                    assert torch.equal(out2, out) and torch.equal(g_kept, g_fresh)
                w_grads2 = [torch.autograd.grad(m(x).sum(), mod.weight)[0] for mod in (m.conv1,)
                            if mod.weight.requires_grad]
            assert all(torch.equal(a, b) for a, b in zip(w_grads, w_grads2))


def test_an_inplace_weight_change_inside_the_block_is_seen():
    m = _model()
    x = torch.rand(4, 1, 28, 28)
    with dwq.precision(m, 4), torch.no_grad(), reuse_quantized_weights(m):
        before = m(x)
        for p in m.parameters():
            p.mul_(1.5)  # bumps the version counter
        after = m(x)
    with dwq.precision(m, 4), torch.no_grad():
        fresh = m(x)
    assert torch.equal(after, fresh) and not torch.equal(before, after)


@pytest.mark.parametrize("opt", ["sgd", "sgd-fused", "adam-fused"])
def test_an_optimizer_step_inside_the_block_is_seen(opt):
    # fused optimizers write the weights without bumping their version counters: the forward after the
    # step reused the quantization of the old weights
    m = _model()
    cls, kw = {"sgd": (torch.optim.SGD, {}), "sgd-fused": (torch.optim.SGD, {"fused": True}),
               "adam-fused": (torch.optim.Adam, {"fused": True})}[opt]
    optimizer = cls(m.parameters(), lr=0.1, **kw)
    x = torch.rand(4, 1, 28, 28)
    with dwq.precision(m, 4), reuse_quantized_weights(m):
        before = m(x)
        before.square().sum().backward()
        optimizer.step()
        with torch.no_grad():
            after = m(x)
    with dwq.precision(m, 4), torch.no_grad():
        fresh = m(x)
    assert torch.equal(after, fresh) and not torch.equal(before.detach(), after)


def test_a_cast_or_move_of_the_model_inside_the_block_is_seen():
    """model.to(bfloat16).to(float32) swaps each weight in with `param.data = ...`: same Parameter, same
    version, and often the freed address again, so the rounded weight got the old one's quantization
    (4 of 20 round trips). Here the swap keeps the address for certain: values changed behind the
    version counter, as such a swap does."""
    m = _model()
    x = torch.rand(4, 1, 28, 28)

    def swap(t):  # (the same tensor: a Parameter keeps its address and version; new values)
        if isinstance(t, torch.nn.Parameter):
            t.data.mul_(1.5)
        return t

    with dwq.precision(m, 4), torch.no_grad(), reuse_quantized_weights(m):
        before = m(x)
        m._apply(swap)
        after = m(x)
    with dwq.precision(m, 4), torch.no_grad():
        fresh = m(x)
    assert torch.equal(after, fresh) and not torch.equal(before, after)
    with dwq.precision(m, 4), torch.no_grad(), reuse_quantized_weights(m):  # the round trip itself
        for _ in range(10):
            m(x)
            m.to(torch.bfloat16).to(torch.float32)
            assert torch.equal(m(x), copy.deepcopy(m)(x))


def test_a_new_weight_at_a_freed_address_is_not_taken_for_the_old_one():
    """A weight computed afresh each forward (weight noise, masks) may land where the last one was freed,
    with the same version (0): the kept quantization belongs to the old tensor and must not be reused."""
    wq, m = WeightQuantizer(), torch.nn.Module()
    m.wq = wq
    base = torch.randn(32, 32)
    with reuse_quantized_weights(m):
        for _ in range(50):
            w = base + torch.randn_like(base)
            assert torch.equal(wq(w, 4), WeightQuantizer()(w, 4))
            del w


def test_inference_mode_inside_the_block():
    """A forward under torch.inference_mode() kept an inference tensor that the next forward with grad
    reused, which autograd refused ("Inference tensors cannot be saved for backward"); a model whose
    weights are inference tensors (built under inference mode) failed on their missing version counter."""
    m = _model()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    with dwq.precision(m, 4):
        fresh = m(x)
        g_fresh, = torch.autograd.grad(fresh.sum(), x)
        with reuse_quantized_weights(m):
            with torch.inference_mode():
                assert torch.equal(m(x.detach()), fresh.detach())
            out = m(x)  # an attack's step after a clean inference-mode forward
            g, = torch.autograd.grad(out.sum(), x)
            with torch.inference_mode():  # the ordinary copy made since serves inference mode too
                assert torch.equal(m(x.detach()), fresh.detach())
        assert torch.equal(out, fresh) and torch.equal(g, g_fresh)
    with torch.inference_mode():
        built = small_cnn(precisions=[4], width=8)
        dwq.set_precision(built, 4)
        x = torch.rand(2, 1, 28, 28)
        built.train()(x)  # ranges and BN statistics, as a trained model has
        built.eval()
        with reuse_quantized_weights(built):
            kept = built(x)
            for p in built.parameters():
                p.mul_(2)  # inference tensors: no version bump, so nothing may be reused
            assert not torch.equal(built(x), kept)


def test_a_copy_or_pickle_made_inside_the_block_is_outside_it():
    """torch.save(model) inside the block failed ("cannot pickle 'weakref.ReferenceType' object"), and a
    deep copy kept reusing its kept results after the block, past a ``.data`` edit (no version bump)."""
    import copy
    import io

    m = _model()
    x = torch.rand(2, 1, 28, 28)
    with dwq.precision(m, 4), torch.no_grad(), reuse_quantized_weights(m):
        m(x)
        buf = io.BytesIO()
        torch.save(m, buf)
        c = copy.deepcopy(m)
        assert m.conv2.weight_quant._reuse and m.conv2.weight_quant._kept  # the original is in
    buf.seek(0)
    for other in (c, torch.load(buf, weights_only=False)):
        assert all(not q._reuse and q._kept == {} for q in other.modules() if isinstance(q, WeightQuantizer))
        with dwq.precision(other, 4), torch.no_grad():
            other(x)
            other.conv2.weight.data.mul_(3)
            edited = other(x)
        fresh = _model()
        fresh.load_state_dict(other.state_dict())
        with dwq.precision(fresh, 4), torch.no_grad():
            assert torch.equal(edited, fresh(x))


@pytest.mark.parametrize("attack", ["pgd", "fgsm-rs"])
def test_training_step_equals_one_without_reuse(tmp_path, monkeypatch, attack):
    from dwq.data import load_mnist5k

    x, y = load_mnist5k("train").tensors
    data = torch.utils.data.TensorDataset(x[:64].clone(), y[:64].clone())
    cfg = dict(attack=attack, epsilon=0.1, alpha=0.05, attack_iters=3, epochs=1, batch_size=32, lr=0.05,
               lr_schedule="constant", precisions=[2, 4, 8], random_precision=True, seed=0, progress=False)

    def run(out):
        torch.manual_seed(0)
        m = small_cnn(precisions=[2, 4, 8], width=8)
        Trainer(m, data, TrainConfig(**cfg), str(out)).fit()
        return m.state_dict()

    calls = _count_quantizations(monkeypatch)
    kept = run(tmp_path / "a")
    with_reuse = len(calls)
    import dwq.train.loop as loop
    monkeypatch.setattr(loop, "reuse_quantized_weights", lambda model: contextlib.nullcontext())
    calls.clear()
    fresh = run(tmp_path / "b")
    # the trainer did reuse (else this compared two runs without it): fewer quantizations than when every
    # forward of the attack (3 PGD steps, FGSM-RS's one) and of the update quantizes again
    assert 0 < with_reuse < len(calls), (with_reuse, len(calls))
    assert kept.keys() == fresh.keys()
    for k in kept:
        assert torch.equal(kept[k], fresh[k]), k


def _weight_casts(fn):
    """fn() and the number of casts of a tensor shaped like one of the model's weights (aten._to_copy)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.shapes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._to_copy.default:
                self.shapes.append(tuple(args[0].shape))
            return func(*args, **(kwargs or {}))

    with Count() as c:
        out = fn()
    return out, c.shapes


_AUTOCAST = [pytest.param("cpu", torch.bfloat16, id="cpu-bf16"), pytest.param("cpu", torch.float16, id="cpu-fp16"),
             pytest.param("cuda", torch.float16, id="cuda-fp16",
                          marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("device,dtype", _AUTOCAST)
@pytest.mark.parametrize("grad", [False, True])
def test_under_autocast_the_weight_comes_in_autocast_dtype_and_nothing_casts_it(grad, device, dtype, monkeypatch):
    """Issue 10: under autocast a conv casts its (non-leaf) quantized weight at every forward, a launch per
    layer on GPUs; a float layer's weight, a leaf, is cast once per autocast block. The layers ask for
    autocast's dtype: the fused op writes it (one rounding, the cast's), fresh or kept inside the block,
    so no weight is cast; values and gradients (x's and the weights') are those of a float32
    quantization that autocast casts, as before."""
    import dwq.nn.qlayers as qlayers
    from dwq.nn import QConv2d, QLinear

    m = _model().to(device)
    layers = [q for q in m.modules() if isinstance(q, (QConv2d, QLinear))]
    weights = {tuple(q.weight.shape) for q in layers}  # (not the float layers': leaves, cast once per block)
    assert weights
    x = torch.rand(4, 1, 28, 28, device=device, requires_grad=grad)

    def forward():
        with torch.autocast(device, dtype=dtype):
            return m(x)

    def grads(out):
        return torch.autograd.grad(out.float().square().sum(), [x, *(q.weight for q in layers)]) if grad else ()

    with dwq.precision(m, 4), torch.set_grad_enabled(grad):
        with monkeypatch.context() as mp:  # as before: float32 weights, which autocast casts
            mp.setattr(qlayers, "autocast_dtype", lambda w: None)
            want, casts = _weight_casts(forward)
            assert weights <= set(casts)  # (the count can fail)
            g_want = grads(want)
        fresh, casts = _weight_casts(forward)
        assert not weights & set(casts), casts
        g_fresh = grads(fresh)
        with reuse_quantized_weights(m):
            forward()
            kept, casts = _weight_casts(forward)
            assert not weights & set(casts), casts
            assert all(v[2].dtype == dtype for q in m.modules() if isinstance(q, WeightQuantizer)
                       for v in q._kept.values())
            g_kept = grads(kept)
            plain = m(x)  # outside autocast, the float32 copy: a width may be kept in two dtypes
            assert plain.dtype == torch.float32
        assert torch.equal(plain, m(x))
    for out, g in ((fresh, g_fresh), (kept, g_kept)):
        assert out.dtype == want.dtype == dtype and torch.equal(out, want)
        assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(g, g_want))


@pytest.mark.parametrize("any_query", [True, False], ids=["torch-any-query", "per-device"])
def test_autocast_dtype_names_what_autocast_casts(any_query, monkeypatch):
    import dwq.quant.quantizers as qz
    from dwq.quant.quantizers import autocast_dtype

    if not any_query:  # (a torch without torch._C._is_any_autocast_enabled)
        monkeypatch.setattr(qz, "_ANY_AUTOCAST", None)

    w = torch.randn(4, 4)
    assert autocast_dtype(w) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_dtype(w) == torch.bfloat16
        assert autocast_dtype(w.bfloat16()) is None and autocast_dtype(w.double()) is None
        assert autocast_dtype(w.half()) == torch.bfloat16
        assert autocast_dtype(w.int()) is None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert autocast_dtype(w) is None


@pytest.mark.parametrize("reuse", [False, True])
def test_a_compiled_layer_under_autocast_traces_whole(reuse):
    """The layers ask for autocast's dtype, and the weight op takes it (dwq train --compile --amp runs
    its step inside the block): torch.compile traces it without a graph break and gives eager's result."""
    from dwq.nn import QConv2d

    conv = QConv2d(8, 8, 3, padding=1, precisions=[None, 4, 8])
    dwq.set_precision(conv, 4)
    with torch.no_grad():
        conv.train()(torch.rand(4, 8, 4, 4))
    conv.eval()
    x = torch.rand(2, 8, 4, 4)
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    block = reuse_quantized_weights(conv) if reuse else contextlib.nullcontext()
    with torch.no_grad(), block, torch.autocast("cpu", dtype=torch.bfloat16):
        out, want = compiled(x), conv(x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, want)

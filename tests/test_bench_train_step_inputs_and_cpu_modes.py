"""benchmarks/bench_train.py's measured work on the CPU, with tiny batches and a two-precision RPT set
(the attack and the CUDA attack graphs stubbed where only their inputs matter): the train step attacks
and computes its loss inside dwq.quant.reuse_quantized_weights, clears the gradients before its
backward and trains on the adversarial batch; the attack-graphs step (as dwq train --cuda-graphs runs
it) gives the graphs the attack's settings, captures every precision before the timing, scales by
1/batch under amp and trains on the crafted batch; the eval forward's statistics come from a train-mode
batch of at least 8 images; on a CPU main measures only the eager train-step modes (no graph mode,
not even a failed one, by default; amp alone is a selection); fake_quantize quantizes the whole tensor
with torch's baseline's qparams and the copy reads it."""
import json

import pytest
import torch

import dwq
from dwq.models.common import QuantPolicy
from dwq.models.preact_resnet import PreActResNet
from dwq.quant.quantizers import WeightQuantizer
from test_bench_train_records_and_ratios import _stubbed
from test_benchmarks_cli import _script

CPU = torch.device("cpu")


def _reusing(model):
    """Whether every weight quantizer of ``model`` is inside reuse_quantized_weights now."""
    qs = [m for m in model.modules() if isinstance(m, WeightQuantizer)]
    assert qs, "the model has no weight quantizer"
    return all(q._reuse for q in qs)


def _small_models(bt, monkeypatch):
    """bench_train.make_model on a PreActResNet with one block per stage, RPT at precisions 4 and 8 (a
    step per precision stays fast); the models it built."""
    monkeypatch.setattr(bt, "preact_resnet18", lambda num_classes, precisions: PreActResNet(
        [1, 1, 1, 1], num_classes, precisions, QuantPolicy(), True, None, None, "cifar10"))
    real, models = bt.make_model, []

    def make_model(impl, device, precisions=None):
        models.append(real(impl, device, precisions=precisions if impl == "float" else [4, 8]))
        return models[-1]

    monkeypatch.setattr(bt, "make_model", make_model)
    return models


def _loss_inputs(model, seen):
    """Records (input, reuse on) of each forward of ``model`` that is not the (stubbed) attack's."""
    model.register_forward_pre_hook(lambda mod, inp: seen.append((inp[0], _reusing(mod))))


def test_train_step_clears_the_gradients_and_trains_on_the_attack_under_weight_reuse(monkeypatch):
    """One train step: the attack and the loss's forward run with the weights' quantization reused,
    the loss is taken on the attack's output (not the clean batch), gradients left from before the
    step are cleared (not accumulated into), and the reuse ends with the step."""
    bt = _script("bench_train")
    models = _small_models(bt, monkeypatch)
    attacks = []

    def pgd(model, x, y, eps, alpha, steps):
        attacks.append((torch.rand(x.shape, generator=torch.Generator().manual_seed(1)), _reusing(model)))
        return attacks[-1][0]

    monkeypatch.setattr(bt, "pgd", pgd)
    step = bt.train_step_fn("rpt", CPU, 2, 1, amp=False)
    model, seen = models[-1], []
    _loss_inputs(model, seen)
    stale = 1e6
    for p in model.parameters():
        p.grad = torch.full_like(p, stale)
    step()
    assert len(attacks) == 1 and attacks[0][1], "the attack ran without reuse_quantized_weights"
    assert len(seen) == 1 and seen[0][1], "the loss's forward ran without reuse_quantized_weights"
    assert torch.equal(seen[0][0], attacks[0][0]), "the loss was not taken on the attack's output"
    worst = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    assert worst < stale / 2, f"the gradients from before the step were accumulated into (max |grad| {worst})"
    assert not _reusing(model), "the weights' reuse outlived the step"


class _Graphs:
    """Stands in for dwq.train.graphs.AttackGraphs: records its settings and each craft."""
    made = []

    def __init__(self, model, eps, alpha, steps, generator, autocast):
        self.settings = (eps, alpha, steps, isinstance(generator, torch.Generator), autocast)
        self.crafts, self.adv = [], None
        _Graphs.made.append(self)

    def craft(self, x, y, p, scale):
        self.crafts.append((p, None if scale is None else scale.item()))
        self.adv = torch.rand(x.shape, generator=torch.Generator().manual_seed(len(self.crafts)))
        return self.adv


# (amp on a CPU: GradScaler("cuda") and autocast("cuda") disable themselves with a warning, so the step runs)
@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
@pytest.mark.parametrize("impl, amp", [("float", False), ("rpt", False), ("rpt", True)])
def test_attack_graphs_step_captures_every_precision_and_trains_on_the_crafted_batch(impl, amp, monkeypatch):
    """attack_graphs_train_step_fn: the graphs get eps 8/255, alpha 2/255, the steps, a CPU generator and
    float16 autocast only under amp; every precision of the set is crafted once, in order, before the
    function returns (its graph captured before the timing); under amp the loss scale handed to the
    craft is 1/batch (the scaler's scale of it); a timed step trains on the crafted batch."""
    bt = _script("bench_train")
    models = _small_models(bt, monkeypatch)
    monkeypatch.setattr(_Graphs, "made", [])
    monkeypatch.setattr(bt, "AttackGraphs", _Graphs)
    step = bt.attack_graphs_train_step_fn(impl, CPU, 2, 3, amp)
    (graphs,) = _Graphs.made
    model = models[-1]
    eps, alpha, steps, cpu_generator, autocast = graphs.settings
    assert (eps, alpha, steps) == (pytest.approx(8 / 255), pytest.approx(2 / 255), 3), \
        f"the graphs' eps, alpha, steps: {graphs.settings[:3]}"
    assert cpu_generator and autocast == ("cuda" if amp else None), graphs.settings
    want = dwq.precision_set(model) if impl == "rpt" else [None]
    assert [p for p, _ in graphs.crafts] == want, "not every precision was captured before the timing"
    scale = 1 / 2 if amp else None
    assert all(s == scale for _, s in graphs.crafts), f"loss scales {graphs.crafts}, want 1/batch under amp"
    seen = []
    _loss_inputs(model, seen)
    step()
    assert graphs.crafts[-1][0] in want and len(seen) == 1
    assert torch.equal(seen[0][0], graphs.adv), "the loss was not taken on the crafted batch"


def test_eval_forward_tracks_its_statistics_on_at_least_8_images(monkeypatch):
    """The train-mode forward that tracks the BN statistics and the ranges before the timing sees at
    least 8 images (a batch-1 measurement would track them on one); the timed forward sees the batch."""
    bt = _script("bench_train")
    _small_models(bt, monkeypatch)
    seen = []
    small = bt.make_model

    def make_model(*a, **k):
        m = small(*a, **k)
        m.register_forward_pre_hook(lambda mod, inp: seen.append((mod.training, inp[0].shape[0])))
        return m

    monkeypatch.setattr(bt, "make_model", make_model)
    bt.eval_fn("rpt", CPU, 1, False)()
    assert seen == [(True, 8), (False, 1)], seen


@pytest.mark.parametrize("modes, measured", [
    (None, ["fp32", "amp"]),  # the default modes name graphs and attack_graphs too: CUDA only
    (["amp"], ["amp"]),
    (["graphs", "attack_graphs", "fp32"], ["fp32"]),
])
def test_train_step_on_a_cpu_measures_only_the_eager_modes(modes, measured, tmp_path, monkeypatch):
    """On a CPU neither CUDA-graph train step is built (not even as a failed measurement with an
    "error" record), and amp alone is a selection that measures."""
    bt, calls = _stubbed(monkeypatch)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # (main sets it)

    def cuda_only(*a, **k):
        raise AssertionError("a CUDA-graph train step was built on a CPU")

    monkeypatch.setattr(bt, "attack_graphs_train_step_fn", cuda_only)
    monkeypatch.setattr(bt, "graphed_train_step_fn", cuda_only)
    path = tmp_path / "t.json"
    bt.main(["--device", "cpu", "--only", "train_step", "--json", str(path)] + (["--modes", *modes] if modes else []))
    recs = json.loads(path.read_text())
    assert [(r["mode"], r["impl"]) for r in recs] == [(m, i) for m in measured for i in ("float", "rpt")], recs
    assert not any("error" in r for r in recs), recs


def test_fake_quantize_quantizes_the_whole_tensor_with_torchs_qparams_and_copies_it(monkeypatch):
    """Every fake_quantize impl reads the one float32 tensor of the records' element count; dwq's per-tensor
    quantizer runs with torch's baseline's scale and zero point (0.05, 128), the per-channel one with a
    scale and a zero point per row on axis 0; the copy returns a new tensor equal to it."""
    bt = _script("bench_train")
    seen, outs = {}, {}

    def time_pair(fns, device, reps, warmup):
        outs.update({k: f() for k, f in fns.items()})
        return {k: (1.0, 1.0) for k in fns}

    def dwq_fq(x, s, z, bits, axis=None):
        seen["dwq_per_channel" if axis is not None else "dwq_per_tensor"] = (x, s.tolist(), z.tolist(), bits, axis)
        return x

    def torch_fq(x, s, z, lo, hi):
        seen["torch"] = (x, s, z, lo, hi)
        return x

    monkeypatch.setattr(bt, "time_pair", time_pair)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # (main sets it)
    monkeypatch.setattr(bt, "fake_quantize", dwq_fq)
    monkeypatch.setattr(torch, "fake_quantize_per_tensor_affine", torch_fq)
    bt.main(["--device", "cpu", "--only", "fake_quantize"])
    n = 16 << 20
    x = seen["torch"][0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (n // 1024, 1024), (x.dtype, x.shape)
    assert all(seen[k][0] is x for k in ("dwq_per_tensor", "dwq_per_channel")), "the quantizers read other tensors"
    assert seen["torch"][1:] == (0.05, 128, 0, 255)
    _, s, z, bits, axis = seen["dwq_per_tensor"]
    assert (s, z, bits, axis) == (pytest.approx([0.05]), [128], 8, None), "dwq's per-tensor qparams are not torch's"
    _, s, z, bits, axis = seen["dwq_per_channel"]
    assert (len(s), len(z), bits, axis) == (n // 1024, n // 1024, 8, 0)
    copy = outs["copy"]
    assert copy.data_ptr() != x.data_ptr() and torch.equal(copy, x), "the copy baseline does not copy the tensor"

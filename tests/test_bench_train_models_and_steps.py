"""benchmarks/bench_train.py's measured callables on the CPU (tiny batches, the attack stubbed where
only its arguments matter): which model each impl builds (float: precisions [None]; rpt: 4..16 with
switchable BN), what one train step does (PGD eps 8/255, alpha 2/255, the steps asked for, a precision
drawn per step, autocast bfloat16 under amp on a CPU, SGD with momentum, the weights updated, the
model in train mode), and what the eval forward measures (eval mode, rpt at 4 bits, statistics tracked
first, weight reuse only for rpt_reuse, bfloat16 autocast for half, torch.compile only where asked)."""
import pytest
import torch

import dwq
from dwq.nn.sbn import SwitchableBatchNorm2d
from test_benchmarks_cli import _script

CPU = torch.device("cpu")


def _capture_models(bt, monkeypatch):
    models = []
    real = bt.make_model

    def make_model(*a, **k):
        models.append(real(*a, **k))
        return models[-1]

    monkeypatch.setattr(bt, "make_model", make_model)
    return models


def test_make_model_float_and_rpt():
    bt = _script("bench_train")
    f, r = bt.make_model("float", CPU), bt.make_model("rpt", CPU)
    assert dwq.precision_set(f) == [None]
    assert dwq.precision_set(r) == list(range(4, 17))
    assert any(isinstance(m, SwitchableBatchNorm2d) for m in r.modules())  # one BN per precision


def test_train_step_attack_settings_precision_draw_and_update(monkeypatch):
    bt = _script("bench_train")
    models = _capture_models(bt, monkeypatch)
    sgds, seen = [], []
    real_sgd = torch.optim.SGD

    def sgd(*a, **k):
        sgds.append(real_sgd(*a, **k))
        return sgds[-1]

    def pgd(model, x, y, eps, alpha, steps):
        seen.append(dict(eps=eps, alpha=alpha, steps=steps, training=model.training, p=dwq.get_precision(model),
                         autocast=torch.is_autocast_enabled("cpu"), dtype=torch.get_autocast_dtype("cpu")))
        return x.clone()

    monkeypatch.setattr(torch.optim, "SGD", sgd)
    monkeypatch.setattr(bt, "pgd", pgd)
    step = bt.train_step_fn("float", CPU, 1, 7, amp=False)
    assert (step.bits, step.precisions) == (32, ["fp"])
    assert sgds[-1].defaults["momentum"] == 0.9
    before = [p.detach().clone() for p in models[-1].parameters()]
    step()
    s = seen[-1]
    assert (s["eps"], s["alpha"], s["steps"]) == (pytest.approx(8 / 255), pytest.approx(2 / 255), 7)
    assert s["training"] and not s["autocast"] and s["p"] is None
    assert any(not torch.equal(a, b) for a, b in zip(before, models[-1].parameters()))  # the SGD step ran

    seen.clear()
    step = bt.train_step_fn("rpt", CPU, 1, 3, amp=True)
    assert (step.bits, step.precisions) == (None, [str(b) for b in range(4, 17)])
    for _ in range(2):
        step()
    assert all(s["autocast"] and s["dtype"] == torch.bfloat16 and s["steps"] == 3 for s in seen)
    assert len({s["p"] for s in seen}) > 1  # a precision drawn per step


def test_eval_fn_measures_a_tracked_eval_model_at_4_bits(monkeypatch):
    bt = _script("bench_train")
    models = _capture_models(bt, monkeypatch)
    for impl in ("float", "rpt", "rpt_reuse"):
        bt.eval_fn(impl, CPU, 1, False)
        m = models[-1]
        assert not m.training
        assert dwq.get_precision(m) == (None if impl == "float" else 4)
        assert hasattr(m, "_bench_reuse") == (impl == "rpt_reuse")  # the reuse only where it is measured
        means = [b for n, b in m.named_buffers() if n.endswith("running_mean")]
        assert means and any(b.abs().sum() > 0 for b in means)  # statistics tracked before the timing


def test_eval_fn_half_autocasts_to_bfloat16_and_compiles_only_when_asked(monkeypatch):
    bt = _script("bench_train")
    models = _capture_models(bt, monkeypatch)
    compiled, exact = [], []
    monkeypatch.setattr(bt.torch, "compile", lambda m: compiled.append(m) or m)  # (never compiled here)
    monkeypatch.setattr(bt, "inductor_exact_division", lambda: exact.append(1))
    seen = []
    for half in (False, True):
        fwd = bt.eval_fn("rpt", CPU, 1, half)
        models[-1].register_forward_pre_hook(
            lambda mod, inp: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))))
        fwd()
    assert seen[0][0] is False and seen[1] == (True, torch.bfloat16)
    assert compiled == [] and exact == []
    bt.eval_fn("float", CPU, 1, False, compiled=True)
    assert compiled == [models[-1]] and exact == [1]

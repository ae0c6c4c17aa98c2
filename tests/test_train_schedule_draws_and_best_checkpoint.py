"""The Trainer's step: the attack crafted, the schedule stepped (free training: once per replay, over
the replays' length), a precision drawn per update, free training's noise kept within ε; and the
checkpoints chosen: best.pt on strict improvement, the last epoch validated, the reference's rule at
the lowest precision, and both bests carried over a resume."""
import json

import pytest

import dwq
import dwq.train.loop as loop
from dwq.models import small_cnn
from dwq.train import Trainer, load_checkpoint
from test_train import SET, cfg, tiny_data


def _lines(out):
    return [json.loads(line) for line in open(out / "metrics.jsonl")]


def test_train_batch_crafts_the_configured_attack(tmp_path, monkeypatch):
    calls = []
    real = loop.pgd

    def recording(model, x, y, eps, alpha, steps, **kw):
        calls.append((eps, alpha, steps))
        return real(model, x, y, eps, alpha, steps, **kw)

    monkeypatch.setattr(loop, "pgd", recording)
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path))
    tr.train_batch(*tiny_data(16).tensors)
    assert calls == [(0.1, 0.05, 2)]


def test_multistep_schedule_steps_once_per_update(tmp_path):
    # 4 updates, milestones at steps 2 and 3: the updates train at 1, 1, 0.1 and 0.01 x lr
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(128), cfg(epochs=2, attack="none",
                                                                          lr_schedule="multistep"), str(tmp_path)).fit()
    assert tr.step == 4 and [r["lr"] for r in _lines(tmp_path)] == [0.05, pytest.approx(0.0005)]
    assert tr.opt.param_groups[0]["lr"] == pytest.approx(0.0005)


def test_free_training_schedules_and_draws_every_replay_and_keeps_its_noise_within_eps(tmp_path):
    # 2 batches x 2 replays = 4 updates; cyclic over 4: factors 0, 0.5, 1, 0.5 (over 2 the last was 0)
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(128),
                 cfg(epochs=1, attack="free", free_replays=2, alpha=None, lr_schedule="cyclic"), str(tmp_path)).fit()
    assert tr.total_steps == tr.step == 4 and _lines(tmp_path)[0]["lr"] == pytest.approx(0.025)
    assert sum(tr.precision_counts.values()) == 4  # a precision per replay
    assert 0 < tr.free_delta.abs().max() <= 0.1 + 1e-7


def test_best_checkpoints_keep_the_first_of_equal_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: (0.5, 0.3))
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2, attack="none", test_select=True),
            str(tmp_path), val_set=tiny_data(8), test_set=tiny_data(8)).fit()
    lines = _lines(tmp_path)
    assert [r.get("best", False) for r in lines] == [True, False]
    assert [r.get("best_test_reference", False) for r in lines] == [True, False]
    assert load_checkpoint(str(tmp_path / "best.pt"))["epoch"] == 1
    assert load_checkpoint(str(tmp_path / "best_test_reference.pt"))["epoch"] == 1


def test_the_last_epoch_is_validated_whatever_val_every(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: (0.5, 0.3))
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=3, attack="none", val_every=2),
            str(tmp_path), val_set=tiny_data(8)).fit()
    assert ["val_pgd" in r for r in _lines(tmp_path)] == [False, True, True]


def test_the_reference_rule_evaluates_the_lowest_precision_with_its_own_pgd(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda model, ds, precs, eps, alpha, steps, *a, **k:
                        calls.append((list(precs), eps, alpha, steps, k.get("early_stop"))) or (0.5, 0.3))
    Trainer(small_cnn(precisions=[8, 2, 4], width=8), tiny_data(64),
            cfg(epochs=1, attack="none", precisions=[8, 2, 4], test_select=True, test_select_steps=3),
            str(tmp_path), test_set=tiny_data(8)).fit()
    assert calls == [([2], 0.1, 2 / 255, 3, True)]
    assert (tmp_path / "best_test_reference.pt").is_file()


def test_a_resume_keeps_the_best_scores_so_a_worse_epoch_writes_no_best_checkpoint(tmp_path, monkeypatch):
    scores = iter([0.4, 0.4, 0.1, 0.1])  # epoch 1: validation, test set; epoch 2: both lower
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: (0.5, next(scores)))

    def trainer(epochs):
        return Trainer(small_cnn(precisions=SET, width=8), tiny_data(64),
                       cfg(epochs=epochs, attack="none", test_select=True), str(tmp_path), val_set=tiny_data(8),
                       test_set=tiny_data(8))

    trainer(1).fit()
    res = trainer(2)
    assert res.resume() and res.best == 0.4 and res.best_test == 0.4
    res.fit()
    assert [r.get("best", False) for r in _lines(tmp_path)] == [True, False]
    assert load_checkpoint(str(tmp_path / "best.pt"))["epoch"] == 1
    assert load_checkpoint(str(tmp_path / "best_test_reference.pt"))["epoch"] == 1


def test_each_update_trains_at_its_drawn_precision_and_every_precision_is_drawn(tmp_path):
    model = small_cnn(precisions=[2, 8], width=8)
    sbn = next(m for m in model.modules() if isinstance(m, dwq.SwitchableBatchNorm2d))
    seen = []
    sbn.register_forward_pre_hook(lambda m, inp: seen.append(dwq.quant.precision_name(m.precision)))
    assert dwq.quant.precision_name(sbn.precision) == "8"  # the model starts at its highest precision
    fixed = Trainer(model, tiny_data(64), cfg(epochs=1, precisions=[2], random_precision=False), str(tmp_path))
    seen.clear()  # (the Trainer's label check: one eval forward)
    fixed.train_batch(*tiny_data(16).tensors)  # 2 attack steps and the update, all at 2
    assert seen == ["2"] * 3 and sbn.untrained_precisions() == ["8"]
    rpt = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path / "rpt"))
    for _ in range(100):
        rpt._draw()
    assert sorted(rpt.precision_counts) == sorted(str(p) for p in SET) and all(rpt.precision_counts.values())

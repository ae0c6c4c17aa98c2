"""evaluate_clean_pgd (validation, best.pt's choice): every precision evaluated at itself, in eval mode
without touching the model's state, with the PGD it was given; the Trainer validates every training
precision."""
import pytest
import torch

import dwq
import dwq.train.loop as loop
import dwq.train.validation as validation
from dwq.models import small_cnn
from dwq.train import Trainer
from dwq.train.validation import evaluate_clean_pgd
from test_train import SET, cfg, tiny_data


def _seen(model):
    """(precision, training) of every forward of the model's first switchable BN."""
    sbn = next(m for m in model.modules() if isinstance(m, dwq.SwitchableBatchNorm2d))
    seen = []
    sbn.register_forward_pre_hook(lambda m, inp: seen.append((dwq.quant.precision_name(m.precision), m.training)))
    return seen


def _trained_model():
    model = small_cnn(precisions=[2, 8], width=4)
    with torch.no_grad():  # a training forward at each precision: every branch has statistics
        for p in (2, 8):
            with dwq.precision(model, p):
                model(tiny_data(16).tensors[0])
    return model


def test_each_precision_is_evaluated_at_itself_in_eval_mode_and_the_model_is_left_as_it_was():
    model = _trained_model()
    seen = _seen(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clean, rob = evaluate_clean_pgd(model, tiny_data(8), [2, 8], 0.1, 0.05, 1, "cpu", batch_size=8)
    assert {p for p, _ in seen} == {"2", "8"} and not any(t for _, t in seen)
    after = model.state_dict()  # BN statistics and activation ranges untouched (eval mode)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and 0 <= rob <= clean <= 1


def test_the_accuracy_averages_the_precisions():
    model = _trained_model()
    data = tiny_data(32)
    one = [evaluate_clean_pgd(model, data, [p], 0.1, 0.05, 0, "cpu")[0] for p in (2, 8)]
    both, rob = evaluate_clean_pgd(model, data, [2, 8], 0.1, 0.05, 0, "cpu")
    assert both == pytest.approx(sum(one) / 2) and rob is None


def test_validation_pgd_takes_the_radius_step_steps_and_early_stop_given(monkeypatch):
    calls = []
    real = validation.pgd

    def recording(model, x, y, eps, alpha, steps, **kw):
        calls.append((eps, alpha, steps, kw.get("early_stop")))
        return real(model, x, y, eps, alpha, steps, **kw)

    monkeypatch.setattr(validation, "pgd", recording)
    model = _trained_model()
    evaluate_clean_pgd(model, tiny_data(8), [2], 0.2, 0.03, 2, "cpu", early_stop=True)
    evaluate_clean_pgd(model, tiny_data(8), [8], 0.2, 0.03, 2, "cpu")
    assert calls == [(0.2, 0.03, 2, True), (0.2, 0.03, 2, False)]


def test_no_precisions_is_refused():
    with pytest.raises(ValueError, match=r"needs images and precisions, got 8 images and precisions \[\]"):
        evaluate_clean_pgd(small_cnn(precisions=[4], width=4), tiny_data(8), [], 0.1, 0.05, 1, "cpu")


def test_the_trainer_validates_every_training_precision(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(loop, "evaluate_clean_pgd",
                        lambda model, ds, precs, eps, alpha, steps, *a, **k: calls.append((list(precs), eps, alpha,
                                                                                           steps)) or (0.5, 0.25))
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1, val_pgd_steps=3), str(tmp_path),
                 val_set=tiny_data(8))
    tr.fit()
    assert calls == [(tr.precs, 0.1, 0.1 / 4, 3)] and tr.precs == SET

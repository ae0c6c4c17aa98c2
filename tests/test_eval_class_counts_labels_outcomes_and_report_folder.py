"""dwq.eval, found by driving its API: AutoAttack's need of 4 classes (standard) or 3 (rand) was found at
its stage, after every other attack had run; clean_accuracy scored labels beyond the model's outputs
as 0% without a word; paper_protocol averaged probabilities as if they were outcomes; write_report
failed on a folder that did not exist yet."""
import json

import pytest
import torch
from deploy_models import calibrated

import dwq.eval as E
from dwq.models import small_cnn

SET = [2, 4]


def _model(classes):
    torch.manual_seed(0)
    return calibrated(small_cnn(precisions=SET, width=4, num_classes=classes), (8, 1, 28, 28))


@pytest.mark.parametrize("classes, kw, what, need", [
    (3, dict(protocols=["paper", "autoattack-standard"]), "the autoattack-standard protocol", 4),
    (3, dict(protocols=["paper"], attack="autoattack"), "attack='autoattack'", 4),
    (2, dict(protocols=["paper", "adaptive", "autoattack-rand"]), "the autoattack-rand protocol", 3)])
def test_autoattacks_class_count_is_checked_before_the_first_stage(classes, kw, what, need):
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1])
    stages = []
    with pytest.raises(ValueError, match=rf"{what} needs a model with at least {need} classes \(AutoAttack's DLR "
                                         rf"loss\), got {classes} outputs"):
        E.evaluate(_model(classes), x, y, SET, epsilon=0.1, alpha=0.025, steps=1, progress=lambda *a: stages.append(a),
                   **kw)
    assert stages == []


def test_clean_accuracy_refuses_labels_that_are_no_class_of_the_model():
    m = _model(10)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 9\] \(the model has 10 outputs\)"):
        E.clean_accuracy(m, x, torch.full((4,), 10), SET)
    with pytest.raises(ValueError, match=r"y must be int64 class labels \[N\]"):
        E.clean_accuracy(m, x, torch.zeros(4, dtype=torch.int32), SET)
    acc = E.clean_accuracy(m, x, torch.full((4,), 9), SET)
    assert set(acc) == {"2", "4"}


@pytest.mark.parametrize("tm, clean, what", [
    (torch.rand(3, 3, 8), None, r"tm_correct must be per-image outcomes, bool \(or 0/1\) \[A, P, N\], got "
                                r"\(torch.float32, \(3, 3, 8\)\)"),
    (torch.ones(3, 8, dtype=torch.bool), None, r"tm_correct .*\[A, P, N\], got \(torch.bool, \(3, 8\)\)"),
    (torch.ones(3, 3, 8, dtype=torch.bool), torch.full((3, 8), 2), r"clean_correct must be per-image outcomes")])
def test_paper_protocol_takes_outcomes_only(tm, clean, what):
    with pytest.raises(ValueError, match=rf"paper_protocol: {what}"):
        E.paper_protocol(tm, clean)
    ok = torch.zeros(2, 2, 4)
    ok[0, 0] = 1  # 0/1 floats are outcomes: a quarter of the pairs is right on every image
    assert E.paper_protocol(ok)["robust"]["acc"] == pytest.approx(0.25)


def test_write_report_makes_its_folder(tmp_path):
    out = tmp_path / "a" / "b"
    E.write_report({"attack": "pgd", "rpi": {}}, str(out))
    assert json.load(open(out / "report.json")) == {"attack": "pgd", "rpi": {}}

"""``--cw-steps``: the CW attacks' Adam steps, fixed at 100 before; at 100 CW-L2's pixels at 0 or 1 barely
move, so an MNIST evaluation with ``--attack cw-l2`` had no way to strengthen it."""
import json

import pytest
import torch

import dwq.attacks as A
import dwq.eval as E
from dwq.eval.stages import StageDirError
from dwq.models import small_cnn

SET = [2, 8]
pytestmark = pytest.mark.filterwarnings("ignore:SwitchableBatchNorm2d")


@pytest.mark.parametrize("name", ["cw-l2", "cw-linf"])
def test_the_steps_reach_the_attack(monkeypatch, name):
    seen = []

    def fake(f, x, y, **kw):
        seen.append(kw["steps"])
        return x

    monkeypatch.setattr(A, name.replace("-", "_"), fake)
    x, y = torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    E.make_attack(name, epsilon=0.1)(None, x, y)
    E.make_attack(name, epsilon=0.1, cw_steps=7)(None, x, y)
    assert seen == [100, 7]


def _evaluation(tmp_path, attack):
    """A small untrained model, its images and the keyword arguments of an evaluation with stages."""
    torch.manual_seed(0)
    m = small_cnn(precisions=SET, width=4).eval()
    x, y = torch.rand(4, 1, 28, 28), torch.randint(10, (4,))
    st = tmp_path / "st"
    return m, x, y, st, dict(epsilon=0.1, attack=attack, protocols=["paper"], batch_size=4, stage_dir=str(st))


def test_the_steps_are_recorded_and_a_resume_with_others_is_refused(tmp_path):
    m, x, y, st, kw = _evaluation(tmp_path, "cw-l2")
    rep = E.evaluate(m, x, y, SET, cw_steps=2, **kw)
    assert rep["cw_steps"] == 2
    assert json.loads((st / "evaluation.json").read_text())["settings"]["cw_steps"] == 2
    with pytest.raises(StageDirError, match=r"cw_steps 2 there, 3 here \(dwq eval --cw-steps\)"):
        E.evaluate(m, x, y, SET, cw_steps=3, **kw)
    # a folder of dwq before the setting: its CW attacks ran the fixed 100 steps
    ident = json.loads((st / "evaluation.json").read_text())
    del ident["settings"]["cw_steps"]
    (st / "evaluation.json").write_text(json.dumps(ident))
    with pytest.raises(StageDirError, match=r"cw_steps 100 there, 2 here"):
        E.evaluate(m, x, y, SET, cw_steps=2, **kw)
    # (the stages it read back are the 2-step ones this test saved: only the identity check is exercised)
    assert E.evaluate(m, x, y, SET, cw_steps=100, **kw)["resumed"]


def test_other_attacks_neither_record_nor_compare_them(tmp_path):
    m, x, y, st, kw = _evaluation(tmp_path, "fgsm")
    rep = E.evaluate(m, x, y, SET, **kw)
    assert "cw_steps" not in rep
    ident = json.loads((st / "evaluation.json").read_text())
    assert ident["settings"]["cw_steps"] is None
    del ident["settings"]["cw_steps"]  # an earlier dwq's fgsm folder
    (st / "evaluation.json").write_text(json.dumps(ident))
    assert E.evaluate(m, x, y, SET, **kw)["resumed"]

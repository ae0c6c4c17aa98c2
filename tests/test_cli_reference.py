"""``dwq train --reference`` and ``dwq eval --reference`` (issue 12): the reference code's semantics,
recorded in the run, restored on --resume, and refused where a flag contradicts them."""
import json

import pytest

from dwq.cli.main import main
from dwq.eval import REFERENCE_PGD
from dwq.quant import ActQuantizer, WeightQuantizer
from dwq.train import REFERENCE_CIFAR_TRAIN, load_trained_model

RUN = ["train", "--reference", "--epochs", "1", "--train-subset", "64", "--width", "8", "--precisions", "2", "4",
       "--random-precision-training", "--switchable-bn", "--no-progress"]


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(RUN + ["--out", str(out)]) == 0
    return out


def test_reference_run_records_its_semantics_and_defaults(ref_run, capsys):
    cfg = json.load(open(ref_run / "config.json"))
    flags = cfg["extra"]["flags"]
    assert flags["reference"] is True and cfg["extra"]["reference"] is True
    # the reference's defaults for every flag not given, the given ones kept
    assert flags["attack"] == "fgsm-rs" and flags["alpha"] == pytest.approx(10 / 255)
    assert flags["val_size"] == REFERENCE_CIFAR_TRAIN["val_size"] == 0 and flags["amp"] is False
    assert flags["epochs"] == 1 and flags["epochs"] != REFERENCE_CIFAR_TRAIN["epochs"]
    # TrainConfig's reference semantics: zeroed gradients, the test-set rule as an extra checkpoint only
    assert cfg["reference"] is True and cfg["zero_grad"] == "zero" and cfg["test_select"] is True
    assert (ref_run / "best_test_reference.pt").is_file() and not (ref_run / "best.pt").exists()
    # the reference's quantizer, rebuilt from the checkpoint alone
    model, _ = load_trained_model(str(ref_run / "last.pt"))
    acts = [m for m in model.modules() if isinstance(m, ActQuantizer)]
    weights = [m for m in model.modules() if isinstance(m, WeightQuantizer)]
    assert acts and weights
    assert all(q.zero_point == "float" and q.shared_range for q in acts)
    assert all(q.zero_point == "float" for q in weights)


def test_reference_run_resumes_with_its_own_flags(ref_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ref_run, run)
    before = json.load(open(run / "config.json"))["extra"]["flags"]
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    after = json.load(open(run / "config.json"))["extra"]["flags"]
    assert after["reference"] is True and after["epochs"] == 2
    assert {k: v for k, v in after.items() if k != "epochs"} == {k: v for k, v in before.items() if k != "epochs"}


@pytest.mark.parametrize("extra,msg", [
    (["--amp"], "--reference trains in float32"),
    (["--attack", "pgd", "--alpha", "0.01"], "always steps 2/255"),
])
def test_flags_that_contradict_reference_exit_2(tmp_path, capsys, extra, msg):
    out = tmp_path / "run"
    assert main(RUN + ["--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_reference_pgd_step_is_the_references_when_not_given(tmp_path):
    out = tmp_path / "run"
    assert main(RUN[:-1] + ["--attack", "pgd", "--attack-iters", "1", "--out", str(out), "--no-progress"]) == 0
    flags = json.load(open(out / "config.json"))["extra"]["flags"]
    assert flags["alpha"] == pytest.approx(2 / 255) and flags["attack_iters"] == 1


def test_eval_reference_uses_the_references_pgd(ref_run, tmp_path, capsys):
    ev = tmp_path / "ev"
    assert main(["eval", "--checkpoint", str(ref_run / "last.pt"), "--out", str(ev), "--reference", "--n-test", "20",
                 "--steps", "2", "--protocols", "paper", "--no-progress"]) == 0
    rep = json.load(open(ev / "report.json"))
    assert rep["pgd_options"] == REFERENCE_PGD
    assert rep["settings"]["attack"]["from"] == "given: --reference"
    assert main(["eval", "--checkpoint", str(ref_run / "last.pt"), "--out", str(tmp_path / "e2"), "--reference",
                 "--attack", "fgsm", "--protocols", "paper"]) == 2
    assert "is not PGD" in capsys.readouterr().err and not (tmp_path / "e2").exists()


def test_reference_model_does_not_convert_to_integers(ref_run, tmp_path, capsys):
    """The reference's float zero point has no integer equivalent: dwq eval --integer says so in one line."""
    ev = tmp_path / "ev"
    assert main(["eval", "--checkpoint", str(ref_run / "last.pt"), "--out", str(ev), "--integer"]) == 2
    err = capsys.readouterr().err
    assert "--integer:" in err and "no exact integer equivalent" in err and len(err.strip().splitlines()) == 1
    assert not ev.exists()

"""dwq eval's glue (dwq.cli.main._eval) with the checkpoint loader, the test set and dwq.eval.evaluate
replaced by ones made in the test: what it hands the evaluation (which images, the integer twin and its
precisions, the input size), the edges of --n-test and --autoattack-n, and ImageNet's --n-test."""
import pytest
import torch
from deploy_models import calibrated
from torch.utils.data import TensorDataset

import dwq.data
import dwq.eval
import dwq.train
from dwq.cli.main import main
from dwq.data import DatasetInfo
from dwq.models.build import build_model

N = 10


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A tiny calibrated small_cnn as the checkpoint's model; a 10-image test set; evaluate records its call."""
    model, _ = build_model("small_cnn", "mnist5k", [2, 4, 8], switchable_bn=True, width=4)
    calibrated(model, (8, 1, 28, 28))  # sets the activation ranges and BN statistics at every precision
    state = {"dataset": "mnist5k", "calls": [], "reports": []}

    def load(path, device="cpu"):
        ck = {"epoch": 1, "config": {"epsilon": 0.1, "attack": "pgd", "alpha": 0.05, "extra": {
            "network": "small_cnn", "dataset": state["dataset"], "flags": {"data_dir": str(tmp_path)}}}}
        return model, ck

    x = torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1).expand(N, 1, 28, 28).contiguous() / N
    test = TensorDataset(x, torch.arange(N) % 10)
    info = DatasetInfo("mnist5k", 10, (1, 28, 28), (0.1307,), (0.3081,), "")

    def evaluate(target, x, y, ps, **kw):
        state["calls"].append(dict(target=target, x=x, y=y, ps=ps, **kw))
        return {"clean_acc": {}, f"{kw['attack']}_acc": {}, "rpi": {}, "seconds": 0.0}

    monkeypatch.setattr(dwq.train, "load_trained_model", load)
    monkeypatch.setattr(dwq.data, "get_datasets", lambda *a, **k: (None, test, info))
    monkeypatch.setattr(dwq.eval, "evaluate", evaluate)
    monkeypatch.setattr(dwq.eval, "write_report", lambda rep, *a, **k: state["reports"].append(rep))
    (tmp_path / "c.pt").write_bytes(b"")
    state["argv"] = ["eval", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "e"), "--no-progress"]
    state["model"] = model
    return state


def test_n_test_the_whole_set_and_autoattack_n_all_images_evaluated_are_taken(fake):
    assert main(fake["argv"] + ["--n-test", str(N), "--protocols", "autoattack-rand", "--autoattack-n", str(N)]) == 0
    call = fake["calls"][0]
    assert len(call["x"]) == N and call["autoattack_n"] == N


def test_the_first_n_test_images_are_evaluated_with_the_model_s_input_size(fake):
    assert main(fake["argv"] + ["--n-test", "4", "--protocols", "paper"]) == 0
    call = fake["calls"][0]
    assert call["target"] is fake["model"] and call["input_size"] == (1, 28, 28)
    assert call["y"].tolist() == [0, 1, 2, 3] and torch.equal(call["x"][:, 0, 0, 0], torch.tensor([0, .1, .2, .3]))
    assert call["ps"] == [2, 4, 8]
    rep = fake["reports"][0]
    assert rep["integer"] is False
    # the header's order: the test images before the batch size, the seed and the device
    assert list(rep["settings"])[-4:] == ["test images", "batch size", "seed", "device"]
    assert rep["settings"]["test images"] == {"value": f"4 of {N}", "from": "given"}


def test_integer_evaluates_the_straight_through_twin_at_the_precisions_given(fake, monkeypatch):
    import dwq.quant.cost
    from dwq.deploy import StraightThrough
    from dwq.nn import precision_set

    monkeypatch.setattr(dwq.quant.cost, "bitops_summary", lambda *a, **k: {})
    assert main(fake["argv"] + ["--integer", "--precisions", "2", "8", "--protocols", "paper"]) == 0
    call = fake["calls"][0]
    assert isinstance(call["target"], StraightThrough) and call["ps"] == [2, 8]
    assert precision_set(call["target"]) == [2, 8]  # the integer model holds the precisions evaluated alone


def test_imagenet_without_n_test_is_refused_before_anything_is_written(fake, tmp_path, capsys):
    fake["dataset"] = "imagenet"
    assert main(fake["argv"]) == 2
    assert "give --n-test" in capsys.readouterr().err
    assert not fake["calls"] and not (tmp_path / "e").exists()

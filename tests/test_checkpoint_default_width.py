"""load_trained_model rebuilds a small_cnn whose config's extra does not record its width (a Trainer of
the Python API writes what TrainConfig.extra holds) at the width small_cnn is built with by default."""
from dwq.models import build_model
from dwq.train import load_trained_model, save_checkpoint


def test_a_config_without_width_rebuilds_small_cnns_default_width(tmp_path):
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True)  # (the default width)
    extra = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["2", "4"], "switchable_bn": True}
    save_checkpoint(str(tmp_path / "best.pt"), {"model": model.state_dict(), "config": {"extra": extra}, "epoch": 1})
    loaded, _ = load_trained_model(str(tmp_path / "best.pt"))
    want = model.state_dict()
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in want.items()}

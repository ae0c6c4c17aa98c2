"""load_trained_model rebuilds what the config describes: a ``--reference`` run's model with the
reference's quantizer (its outputs equal the saved model's), and mixed precisions stored as the [w, a]
lists of older checkpoints or as "4w8a" names."""
import pytest
import torch

import dwq
from dwq.models import build_model
from dwq.train import load_trained_model, save_checkpoint


def _save(path, model, extra):
    save_checkpoint(str(path), {"model": model.state_dict(), "config": {"extra": extra}, "epoch": 1})
    return str(path)


def test_a_reference_runs_model_computes_what_it_computed_when_saved(tmp_path):
    """extra.reference builds the reference's quantizer (float zero point, one shared activation range), and
    the loaded model's logits are the saved model's, bit for bit (the default quantizer's activation-range
    tensors are not the reference's: its weights would not even load)."""
    torch.manual_seed(0)
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4, reference=True)
    x = torch.rand(8, 1, 28, 28)
    model.train()
    for p in (2, 4):
        with torch.no_grad(), dwq.precision(model, p):
            model(x)  # (sets the activation ranges)
    model.eval()
    extra = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["2", "4"], "switchable_bn": True,
             "width": 4, "reference": True}
    loaded, _ = load_trained_model(_save(tmp_path / "ref.pt", model, extra))
    with torch.no_grad(), dwq.precision(model, 2), dwq.precision(loaded, 2):
        want, got = model(x), loaded(x)
    diff = (got - want).abs().max()
    assert torch.equal(got, want), f"the reference run's model was rebuilt otherwise: max diff {diff}"


@pytest.mark.parametrize("stored", [[[2, 4], [4, 8]], ["2w4a", "4w8a"]])
def test_older_checkpoints_w_a_lists_rebuild_mixed_precisions(tmp_path, stored):
    model, _ = build_model("small_cnn", "mnist5k", [(2, 4), (4, 8)], True, width=4)
    extra = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": stored, "switchable_bn": True,
             "width": 4}
    loaded, _ = load_trained_model(_save(tmp_path / "mixed.pt", model, extra))
    assert dwq.precision_set(loaded) == [(2, 4), (4, 8)], dwq.precision_set(loaded)

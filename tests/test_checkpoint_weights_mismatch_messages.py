"""load_trained_model's one-line refusal of weights that do not fit the architecture the config names:
the config's description (switchable BN, precision names), and the keys and shapes that differ: extra
keys, the "... (N in all)" of more than four keys, the "(and N more)" counts, a shape that differs at
an equal element count; a 'model' that is no dict; a config's switchable_bn taken as given."""
import pytest
import torch

from dwq.models import build_model
from dwq.train import CheckpointError, load_trained_model, save_checkpoint

EXTRA = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["2", "4"], "switchable_bn": True,
         "width": 4}


def _refusal(tmp_path, model, extra=EXTRA):
    path = str(tmp_path / "w.pt")
    save_checkpoint(path, {"model": model, "config": {"extra": dict(extra)}, "epoch": 1})
    with pytest.raises(CheckpointError) as e:
        load_trained_model(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(path), msg
    return msg


def _sd(precisions=(2, 4), sbn=True):
    return build_model("small_cnn", "mnist5k", list(precisions), sbn, width=4)[0].state_dict()


def test_unexpected_keys_are_named(tmp_path):
    sd = {**_sd(), "extra.weight": torch.ones(2)}
    msg = _refusal(tmp_path, sd)
    assert msg.endswith("unexpected extra.weight"), f"the extra key is not named: {msg}"


@pytest.mark.parametrize("n, tail", [(4, "missing bn1.bn.0.bias, bn1.bn.0.num_batches_tracked, bn1.bn.0.running_mean, "
                                        "bn1.bn.0.running_var"),
                                     (5, "missing bn1.bn.0.bias, bn1.bn.0.num_batches_tracked, bn1.bn.0.running_mean, "
                                        "bn1.bn.0.running_var ... (5 in all)")])
def test_more_than_four_keys_end_with_their_count(tmp_path, n, tail):
    sd = _sd()
    for k in sorted(k for k in sd if k.startswith("bn1.bn.0."))[:n]:
        del sd[k]
    msg = _refusal(tmp_path, sd)
    assert msg.endswith(tail), f"expected the message to end with {tail!r}: {msg}"


def test_several_entries_that_are_no_tensor_are_counted(tmp_path):
    sd = {**_sd(), "conv1.weight": "x", "fc.bias": 3}
    msg = _refusal(tmp_path, sd)
    assert "conv1.weight is a str, not a tensor (and 1 more)" in msg, msg


def test_several_shapes_that_differ_are_counted_and_an_equal_count_of_elements_is_no_fit(tmp_path):
    """A transposed fc.weight (the same 160 elements) does not fit: shapes are compared, not sizes."""
    sd = _sd()
    sd["fc.weight"] = sd["fc.weight"].t().contiguous()
    msg = _refusal(tmp_path, sd)
    assert msg.endswith("fc.weight has shape [16, 10] in the checkpoint, [10, 16] in the model"), msg
    sd["conv1.weight"] = torch.zeros(4, 1, 5, 5)
    msg = _refusal(tmp_path, sd)
    assert msg.endswith("conv1.weight has shape [4, 1, 5, 5] in the checkpoint, [4, 1, 3, 3] in the model "
                        "(and 1 more)"), msg


def test_the_description_names_switchable_bn_and_the_precisions(tmp_path):
    """A config that says switchable BN is built so, whatever the weights hold: plain-BN weights under
    it are refused, and the message describes the config (mixed precisions by their names)."""
    extra = {**EXTRA, "model_precisions": ["2", "4w8a"]}
    msg = _refusal(tmp_path, _sd(precisions=(2, (4, 8)), sbn=False), extra)
    assert "(mnist5k width 4, precisions 2 4w8a, switchable BN): missing bn1.bn.0.bias" in msg, msg


def test_a_model_entry_that_is_no_dict_is_named(tmp_path):
    msg = _refusal(tmp_path, [torch.ones(2)])
    assert msg.endswith("'model' holds a list, expected a state_dict"), msg

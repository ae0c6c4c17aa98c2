"""Reference-checkpoint import, details the whole-model round trips do not reach: an activation range whose
zero point is exactly 0 (the input of a conv after a ReLU: every batch minimum is 0) is a trained range,
and a state_dict holding one entry both with and without DataParallel's "module." prefix is refused."""
import pytest
import torch

from dwq.models import load_reference_state_dict
from dwq.models.reference_import import reference_to_dwq_state_dict
from dwq.nn import QConv2d


def _conv_sd(zp, rng):
    return {"weight": torch.randn(4, 3, 3, 3), "bias": torch.zeros(4),
            "quantize_input.running_zero_point": torch.full((1, 1, 1, 1), zp),
            "quantize_input.running_range": torch.full((1, 1, 1, 1), rng)}


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_a_range_starting_at_zero_is_a_trained_range(zero_point):
    conv = QConv2d(3, 4, 3, precisions=[4, 8], zero_point=zero_point, shared_act_range=zero_point == "float")
    sd = reference_to_dwq_state_dict(conv, _conv_sd(0.0, 2.5))
    assert sd["input_quant.initialized"].all()
    assert sd["input_quant.running_min"].eq(0.0).all()
    upper = "running_range" if zero_point == "float" else "running_max"
    assert sd[f"input_quant.{upper}"].eq(2.5).all()
    # a range that never saw data (zero point and range both 0) stays uninitialized
    assert not reference_to_dwq_state_dict(conv, _conv_sd(0.0, 0.0))["input_quant.initialized"].any()


def test_an_entry_with_and_without_the_module_prefix_is_refused():
    conv = QConv2d(3, 4, 3, precisions=[4, 8], zero_point="float", shared_act_range=True)
    sd = _conv_sd(-1.0, 2.0)
    twice = dict(sd, **{"module.weight": torch.zeros(4, 3, 3, 3)})
    with pytest.raises(RuntimeError,
                       match=r"the state_dict has 'weight' twice \(with and without the 'module.' prefix\)"):
        load_reference_state_dict(conv, twice)
    # (either copy alone loads)
    load_reference_state_dict(conv, sd)
    assert torch.equal(conv.weight, sd["weight"])

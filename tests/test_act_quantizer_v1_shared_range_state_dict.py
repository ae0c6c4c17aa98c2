"""A version-1 state_dict of a shared-range quantizer (one slot, already the observed one) loads as it
is: only a per-precision one gains the observed slot, even when the set has a single precision."""
from collections import OrderedDict

import pytest
import torch

from dwq.quant import ActQuantizer


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_a_single_precision_shared_range_v1_state_dict_keeps_its_one_slot(zero_point):
    q = ActQuantizer([4], zero_point=zero_point, shared_range=True)
    sd = OrderedDict(running_min=torch.tensor([-1.0]), running_max=torch.tensor([3.0]),
                     initialized=torch.tensor([True]))
    sd._metadata = {"": {"version": 1}}
    q.load_state_dict(sd)
    assert q.initialized.tolist() == [True] and q.running_min.tolist() == [-1.0]
    upper = q.running_range if zero_point == "float" else q.running_max
    assert upper.tolist() == ([4.0] if zero_point == "float" else [3.0])
    y = q.eval()(torch.linspace(-4.0, 6.0, 21), 4)
    assert -1.1 < y.min() and y.max() < 3.1  # the loaded range (on its grid), not the batch's -4..6


def test_a_single_precision_per_precision_v1_state_dict_gains_an_unseen_observed_slot():
    q = ActQuantizer([4])
    sd = OrderedDict(running_min=torch.tensor([-1.0]), running_max=torch.tensor([3.0]),
                     initialized=torch.tensor([True]))
    sd._metadata = {"": {"version": 1}}
    q.load_state_dict(sd)
    assert q.initialized.tolist() == [True, False] and q.running_max.tolist() == [3.0, 0.0]

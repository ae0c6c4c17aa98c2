"""dwq.eval.checks' shape check of x asks for a batch dimension, not for images: inputs [N, D] of a model
of linear layers (feature vectors) pass check_evaluation and evaluate as images do; [N] alone is refused
(pinned in test_evaluation_input_checks.py)."""
import pytest
import torch
from deploy_models import calibrated
from test_evaluation_input_checks import SET, _checks
from torch import nn

from dwq import eval as E
from dwq.nn import QLinear


@pytest.fixture(scope="module")
def linear_data():
    m = calibrated(nn.Sequential(QLinear(12, 5, precisions=SET)), (8, 12))
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(0))
    return m, x, torch.tensor([0, 1, 2, 4])


def test_feature_vectors_pass_the_checks(linear_data):
    """[4, 12] inputs to a 12-in, 5-out model: the checks return its 5 outputs."""
    m, x, y = linear_data
    assert _checks(m, x, y) == 5


def test_feature_vectors_are_evaluated(linear_data):
    """evaluate runs the paper protocol on them and reports every image."""
    m, x, y = linear_data
    r = E.evaluate(m, x, y, SET, epsilon=0.1, alpha=0.02, steps=1, protocols=["paper"], per_image=False)
    assert r["n"] == 4, r

"""dwq.deploy.StraightThrough: when the twin runs, and the check of its first argument (found by mutation)."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import StraightThrough, convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_the_twin_runs_only_where_a_gradient_is_needed():
    """Under torch.no_grad() an input that requires grad needs no gradient either: only the integer
    model runs (the twin's forward is the cost of an attack step, not of its evaluation)."""
    m = calibrated(small_cnn(precisions=[4], width=4), (8, 1, 28, 28))
    st = StraightThrough(convert(m), m)
    calls = []
    m.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    with dwq.precision(st, 4):
        with torch.no_grad():
            y = st(x)
        assert calls == [] and not y.requires_grad
        st(x.detach())
        assert calls == []
        assert st(x).requires_grad and calls == [1]


def test_an_int_model_that_is_not_an_integer_model_is_a_type_error():
    m = calibrated(small_cnn(precisions=[4], width=4), (8, 1, 28, 28))
    with pytest.raises(TypeError, match="StraightThrough: int_model must be a dwq.deploy.IntegerModel, got SmallCNN"):
        StraightThrough(m, m)

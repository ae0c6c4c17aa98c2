"""dwq.deploy.IntegerModel checks an average pooling step's JSON flags and divisor when the model is built
(a loaded description), naming the step and the argument, not at the first forward (found by mutation:
no test gave avg_pool2d a bad count_include_pad or divisor_override)."""
import pytest
import torch
from torch.nn import functional as F

from dwq.deploy import IntegerModel


def _pool_model(**kwargs):
    step = {"out": "y", "fn": "avg_pool2d", "args": ["input"], "kwargs": dict(kernel_size=2, **kwargs)}
    return IntegerModel({}, [step], "y", {})


@pytest.mark.parametrize("kwargs, msg", [
    (dict(count_include_pad="no"), "count_include_pad"),
    (dict(count_include_pad=1), "count_include_pad"),
    (dict(divisor_override=0), "divisor_override must be an int >= 1"),
    (dict(divisor_override=2.5), "divisor_override must be an int >= 1"),
    (dict(divisor_override=True), "divisor_override must be an int >= 1"),
])
def test_a_bad_average_pooling_argument_is_refused_when_the_model_is_built(kwargs, msg):
    with pytest.raises(ValueError, match=rf"program step 0 \(avg_pool2d\): .*{msg}"):
        _pool_model(**kwargs)


def test_good_average_pooling_arguments_run_as_torch_runs_them():
    x = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)
    m = _pool_model(padding=1, count_include_pad=False, divisor_override=3)
    torch.testing.assert_close(m(x), F.avg_pool2d(x, 2, padding=1, count_include_pad=False, divisor_override=3))

"""dwq.deploy.IntegerModel checks a max / average pooling step's stride and an adaptive average pooling
step's output size when the model is built (a loaded description), naming the step and the argument: a
stride or output size of 0 is refused there, not at the first forward (valid output sizes run as torch
runs them)."""
import pytest
import torch
from torch.nn import functional as F

from dwq.deploy import IntegerModel


def _step_model(fn, **kwargs):
    return IntegerModel({}, [{"out": "y", "fn": fn, "args": ["input"], "kwargs": kwargs}], "y", {})


@pytest.mark.parametrize("fn, kwargs, msg", [
    ("max_pool2d", dict(kernel_size=2, stride=0), "stride must be an int or a pair of ints >= 1, got 0"),
    ("max_pool2d", dict(kernel_size=2, stride=[1, 0]), "stride must be an int or a pair of ints >= 1"),
    ("avg_pool2d", dict(kernel_size=2, stride=0), "stride must be an int or a pair of ints >= 1, got 0"),
    ("adaptive_avg_pool2d", dict(output_size=0), "output_size must be an int or a pair of ints >= 1"),
    ("adaptive_avg_pool2d", dict(output_size=[2, 0]), "output_size must be an int or a pair of ints >= 1"),
], ids=["max_stride_0", "max_stride_pair_0", "avg_stride_0", "adaptive_0", "adaptive_pair_0"])
def test_a_bad_pooling_argument_is_refused_when_the_model_is_built(fn, kwargs, msg):
    """Each is a step torch refuses (or divides by zero) only at the first forward."""
    with pytest.raises(ValueError, match=rf"program step 0 \({fn}\): .*{msg}"):
        _step_model(fn, **kwargs)


@pytest.mark.parametrize("output_size", [[2, None], 3, [1, 2]])
def test_good_adaptive_pooling_arguments_run_as_torch_runs_them(output_size):
    x = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    m = _step_model("adaptive_avg_pool2d", output_size=output_size)
    torch.testing.assert_close(m(x), F.adaptive_avg_pool2d(x, output_size))

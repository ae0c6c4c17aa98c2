"""dwq.deploy.IntegerModel: a program step that calls a layer takes exactly one argument; none or two are
refused when the model is built, naming the step (found by mutation: only the two-argument case was
refused, and a call without arguments failed at every forward with a TypeError)."""
import pytest
import torch

from dwq.deploy import IntegerModel
from dwq.deploy.layers import FloatNormalize


def _norm():
    return FloatNormalize({"kind": "normalize", "source": "n", "channels": 1},
                          {"mean": torch.tensor([0.5]), "std": torch.tensor([2.0])})


@pytest.mark.parametrize("args", [[], ["input", "input"]])
def test_a_layer_call_with_other_than_one_argument_is_refused(args):
    with pytest.raises(ValueError, match=rf"program step 0 calls layer 'n' with {len(args)} arguments"):
        IntegerModel({"n": _norm()}, [{"out": "y", "call": "n", "args": args}], "y", {})


def test_a_layer_call_with_one_argument_runs():
    m = IntegerModel({"n": _norm()}, [{"out": "y", "call": "n", "args": ["input"]}], "y", {})
    x = torch.rand(2, 1, 3, 3)
    torch.testing.assert_close(m(x), (x - 0.5) / 2.0)

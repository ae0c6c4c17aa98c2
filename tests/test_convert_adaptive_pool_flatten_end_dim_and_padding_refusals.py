"""dwq.deploy.convert carries the arguments of the pooling / flatten modules it turns into program steps and
refuses the padding it cannot run: an nn.AdaptiveAvgPool2d's output size and an nn.Flatten's end_dim go into
the step's kwargs (dropped, the integer model computed another shape), as do the stride and padding
given positionally to F.max_pool2d / F.avg_pool2d, and a quantized conv with a string
padding or a float conv with a padding mode other than zeros is a ConversionError naming the layer, not a
model that fails or computes something else later."""
import pytest
import torch
from deploy_models import calibrated
from test_convert_layer_arguments import PRECISIONS, _assert_same, _Between
from torch import nn
from torch.nn import functional as F

from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.mark.parametrize("tail, fn, kwargs, shape", [
    (nn.AdaptiveAvgPool2d((2, 3)), "adaptive_avg_pool2d", {"output_size": [2, 3]}, (4, 4, 2, 3)),
    (nn.Flatten(1, 2), "flatten", {"start_dim": 1, "end_dim": 2}, (4, 24, 6)),
], ids=["adaptive_output_size", "flatten_end_dim"])
def test_a_pooling_or_flatten_module_keeps_its_arguments(tail, fn, kwargs, shape):
    """The module's own output size / end_dim in the program step, and the integer model's output of the
    source model's shape and values at every precision (a default in their place gave another shape)."""
    torch.manual_seed(0)
    m = calibrated(_Between(nn.Identity(), tail=tail), (8, 3, 6, 6))
    im = _assert_same(m, torch.rand(4, 3, 6, 6))
    step = next(s for s in im.program if s.get("fn") == fn)
    assert step["kwargs"] == kwargs, f"the {fn} step lost the module's arguments: {step['kwargs']}"
    with torch.no_grad():
        assert tuple(im(torch.rand(4, 3, 6, 6)).shape) == shape


class _FnBetween(_Between):
    """_Between with the torch function ``fn`` (called in forward, so traced as a function call) as ``mid``."""

    def __init__(self, fn):
        super().__init__(nn.Identity())
        self.fn = fn

    def forward(self, x):
        return self.tail(self.c2(self.fn(torch.relu(self.b1(self.c1(x))))))


@pytest.mark.parametrize("fn, name, kwargs", [
    (lambda x: F.max_pool2d(x, 3, 1, 1), "max_pool2d", {"kernel_size": 3, "stride": 1, "padding": 1}),
    (lambda x: F.avg_pool2d(x, 3, 1, 1, False, False), "avg_pool2d",
     {"kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": False, "count_include_pad": False}),
], ids=["max_pool2d", "avg_pool2d"])
def test_positional_pooling_arguments_of_a_function_call_are_kept(fn, name, kwargs):
    """F.max_pool2d(x, 3, 1, 1) between two quantized layers: its stride and padding given positionally go
    into the step (read only up to the kernel size, the pooling ran with stride 3 and no padding)."""
    torch.manual_seed(0)
    m = calibrated(_FnBetween(fn), (8, 3, 6, 6))
    im = _assert_same(m, torch.rand(4, 3, 6, 6))
    got = next(s for s in im.program if s.get("fn") == name)["kwargs"]
    assert {k: got.get(k) for k in kwargs} == kwargs, f"the {name} step lost positional arguments: {got}"


def test_a_quantized_conv_with_string_padding_is_refused():
    """QConv2d(padding='same') has no numeric padding for the integer conv: refused by name at conversion."""
    m = _Between(nn.Identity())
    m.c2 = QConv2d(4, 4, 3, padding="same", precisions=PRECISIONS)
    m = calibrated(m, (4, 3, 6, 6))
    with pytest.raises(ConversionError, match=r"layer 'c2': the integer conv supports .*padding='same'"):
        convert(m)


class _PaddedStem(nn.Module):
    """A float stem conv (kept in float) with a padding mode, before a quantized conv."""

    def __init__(self, mode):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode)
        self.c = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c(self.stem(x)).flatten(1)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_a_float_conv_with_a_padding_mode_other_than_zeros_is_refused(mode):
    """The float conv pads with zeros only: a reflect/replicate/circular stem converted as a zero-padded one
    changed every border output; it is refused by name instead."""
    m = calibrated(_PaddedStem(mode), (4, 3, 6, 6))
    msg = rf"layer 'stem': padding=\(1, 1\), padding_mode='{mode}' is not supported"
    with pytest.raises(ConversionError, match=msg):
        convert(m)


def test_a_float_conv_with_zero_padding_converts():
    """The same stem with padding_mode='zeros' converts and agrees with the source model."""
    torch.manual_seed(0)
    m = calibrated(_PaddedStem("zeros"), (8, 3, 6, 6))
    _assert_same(m, torch.rand(4, 3, 6, 6))

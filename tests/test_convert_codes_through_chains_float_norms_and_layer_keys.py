"""dwq.deploy.convert hands integer codes on wherever the next quantized layer is the only reader: through a
chain of several code-safe steps (max pooling, then flatten), and from a float batch norm without a ReLU,
whose output codes keep the next layer's zero point (its range holds negative values, so the zero point is
not 0). A layer whose key (a name nn.ModuleDict refuses, with "_" added) meets another node's name gets a key
of its own, so that no layer replaces another."""
import pytest
import torch
from deploy_models import calibrated
from test_convert_layer_arguments import PRECISIONS, _assert_same
from torch import nn

import dwq
from dwq.deploy.layers import FloatAffine
from dwq.deploy.operands import act_qparams
from dwq.nn import QConv2d, QLinear, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _PoolFlattenLinear(nn.Module):
    """QConv2d -> SBN -> ReLU -> MaxPool2d -> Flatten -> QLinear: two code-safe steps between the layers."""

    def __init__(self):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.b = SwitchableBatchNorm2d(4, PRECISIONS)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = QLinear(4 * 3 * 3, 5, precisions=PRECISIONS)

    def forward(self, x):
        return self.fc(self.flat(self.pool(torch.relu(self.b(self.c(x))))))


def _input_dtypes(im, name, x):
    """The dtype of layer ``name``'s input at each precision of ``im``."""
    seen = {}
    hook = im.layers[name].register_forward_pre_hook(lambda mod, inp: seen.update({str(mod.precision): inp[0].dtype}))
    with torch.no_grad():
        for p in im.precisions:
            with dwq.precision(im, p):
                im(x)
    hook.remove()
    return seen


def test_codes_pass_through_max_pooling_and_flatten_to_the_next_layer():
    """The conv's epilogue requantizes to the linear's input (uint8 codes at 4 bits) although a max pooling
    and a flatten stand between them; the logits agree with the source model."""
    torch.manual_seed(0)
    m = calibrated(_PoolFlattenLinear(), (8, 3, 6, 6))
    x = torch.rand(4, 3, 6, 6)
    im = _assert_same(m, x)
    assert im.layers["c"].plans[0].out_bits == 4, "the conv does not emit the linear's input codes"
    assert _input_dtypes(im, "fc", x) == {"(4, 4)": torch.uint8, "None": torch.float32}


class _FloatStemNorm(nn.Module):
    """A float stem conv -> SBN (left in float: a quantized layer does not feed it) -> QConv2d, no ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b = SwitchableBatchNorm2d(4, PRECISIONS)
        self.c = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c(self.b(self.stem(x))).flatten(1)


def test_a_float_norm_without_relu_emits_codes_with_the_next_layers_zero_point():
    """The batch norm's output spans negative values: its codes carry the conv's non-zero input zero point
    (dropped, every code was shifted and the logits were off at the quantized precision)."""
    torch.manual_seed(0)
    m = calibrated(_FloatStemNorm(), (8, 3, 6, 6))
    x = torch.rand(4, 3, 6, 6) * 2 - 1
    im = _assert_same(m, x)
    bn = im.layers["b"]
    assert isinstance(bn, FloatAffine) and bn.out_bits[0] == 4, "the float norm does not emit the conv's codes"
    want = int(act_qparams(m.c, 4)[1])
    assert want != 0, "the conv's input range should span negative values"
    assert int(bn.out_zero_point[0]) == want, f"out zero point {int(bn.out_zero_point[0])}, the conv reads {want}"
    assert _input_dtypes(im, "c", x) == {"(4, 4)": torch.uint8, "None": torch.float32}


class _KeysMeetNames(nn.Module):
    """Layers called ``update`` (a ModuleDict method: its key becomes ``update_``) and ``update_``."""

    def __init__(self):
        super().__init__()
        self.update = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.update_ = QConv2d(4, 6, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.update_(self.update(x)).flatten(1)


def test_a_layer_key_never_takes_another_nodes_name():
    """``update``'s key is neither a ModuleDict attribute nor ``update_`` (the other layer's name): sharing
    a key, one layer replaced the other and the model ran the wrong conv twice."""
    torch.manual_seed(0)
    m = calibrated(_KeysMeetNames(), (8, 3, 6, 6))
    im = _assert_same(m, torch.rand(4, 3, 6, 6))
    sources = sorted(lay.source for lay in im.layers.values())
    assert sources == ["update", "update_"], f"a layer was lost to a key clash: {dict(im.layers)}"
    assert im.layers["update_"].source == "update_"

"""dwq.deploy.layers: a conv kept in float writes its own padding, dilation and stride into the model's
description, a linear kept in float whether it has a bias, and a saved model reloads to the same layers
(found by mutation: every float conv of the suite had padding 1 = dilation 1, where writing one for the
other computed the same, and every float linear had a bias)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert, load, save
from dwq.deploy.layers import FloatConv2d, FloatLinear
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, None]


class _DilatedStem(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=1, padding=3, dilation=2, groups=1)
        self.body = QConv2d(4, 6, 3, padding=1, precisions=SET)
        self.head = nn.Linear(24, 3, bias=False)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(torch.relu(self.stem(x))), 2), 1))


def test_float_layers_keep_their_geometry_and_bias_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    m = calibrated(_DilatedStem(), (4, 3, 9, 7))
    im = convert(m)
    stem = im.layers["stem"]
    assert isinstance(stem, FloatConv2d)
    cfg = stem.config()
    assert cfg["padding"] == [3, 3] and cfg["dilation"] == [2, 2] and cfg["stride"] == [1, 1], cfg
    head = im.layers["head"]
    assert isinstance(head, FloatLinear) and head.bias is None and head.config()["bias"] is False
    path = str(tmp_path / "m.safetensors")
    save(im, path)
    loaded = load(path)
    assert loaded.layers["stem"].padding == (3, 3) and loaded.layers["stem"].dilation == (2, 2)
    assert loaded.layers["head"].bias is None
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in SET:
            with dwq.precision(im, p), dwq.precision(loaded, p):
                assert torch.equal(im(x), loaded(x)), p

"""dwq.deploy: a converted conv keeps its stride and padding at every precision of its set (the
integer plans and the full-precision plan's float conv alike), on odd image sizes and at batch 1
(found by mutation: every converted model of the suite had stride 1 and padding 1, where a swap of the
two, or the padding read from the stride, computed the same)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import compare, convert
from dwq.nn import QConv2d, QLinear
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 4, None]


class _Strided(nn.Module):
    def __init__(self, precisions):
        super().__init__()
        self.c1 = QConv2d(3, 5, 3, stride=2, padding=0, precisions=precisions)
        self.c2 = QConv2d(5, 6, (3, 2), stride=(1, 2), padding=(2, 1), precisions=precisions)
        self.fc = QLinear(6, 4, precisions=precisions)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("batch", [1, 3])
def test_strided_unpadded_convs_agree_with_the_fake_quant_model_at_every_precision(batch):
    torch.manual_seed(0)
    m = calibrated(_Strided(SET), (8, 3, 11, 9))
    im = convert(m)
    assert im.layers["c1"].stride == (2, 2) and im.layers["c1"].padding == (0, 0)
    x = torch.rand(batch, 3, 11, 9, generator=torch.Generator().manual_seed(batch))
    r = compare(m, im, x)
    assert list(r) == ["2", "4", "fp"]
    for name, v in r.items():  # (widths <= 4: the two paths see the same codes)
        assert v["rel_max_diff"] <= 1e-5, (name, v)

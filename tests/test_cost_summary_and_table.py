"""bitops_summary (the report's cost entry) uses the default accounting of CostReport, BN excluded,
and CostReport.table's total line counts every listed layer (batch norms too)."""
import pytest
from torch import nn

from dwq.nn import QConv2d, QLinear
from dwq.quant.cost import bitops_summary, profile


def _model():
    # a float conv and BN, then a quantized conv and classifier: the accountings all differ here
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), QConv2d(4, 4, 3, precisions=[2, 4, None]),
                         nn.Flatten(), QLinear(4 * 4 * 4, 3, precisions=[2, 4, None]))


def test_bitops_summary_is_the_default_accounting_worked_out_by_hand():
    fp = 4 * 6 * 6 * 3 * 9  # the float conv; the BN (2 * 144 ops) is not counted
    q = 4 * 4 * 4 * 4 * 9 + 64 * 3
    s = bitops_summary(_model(), (3, 8, 8), [2, 4, None])
    want = {"2": q * 4 + fp * 1024, "4": q * 16 + fp * 1024, "fp": (q + fp) * 1024}
    assert s["per_precision"] == want
    assert s["rpi_mean"] == pytest.approx(sum(want.values()) / 3)
    assert s["input_size"] == [3, 8, 8]


def test_table_total_counts_every_listed_layer():
    r = profile(_model(), (1, 3, 8, 8))
    lines = r.table().splitlines()
    assert len(lines) == 2 + len(r.layers)  # header, one line per layer, total
    total = lines[-1].split()
    assert total[0] == "total" and int(total[-1].replace(",", "")) == sum(l.macs for l in r.layers)
    assert int(total[-1].replace(",", "")) == r.macs(include_bn=True) > r.macs()

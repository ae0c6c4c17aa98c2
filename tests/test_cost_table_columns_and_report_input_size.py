"""CostReport as profile returns it: the table's columns line up under the header whatever the length of the
layer names (the name column is at least as wide as "layer"), each row says yes/no for a quantized or a
float layer, and the report keeps the input shape it was profiled with."""
import torch
from torch import nn

from dwq.nn import QConv2d
from dwq.quant.cost import profile


def _model():
    # names "0" and "1", shorter than the header's "layer": a quantized conv, then a float one
    return nn.Sequential(QConv2d(3, 4, 3, precisions=[4, 8]), nn.Conv2d(4, 2, 3))


def test_table_columns_line_up_under_the_header_with_short_layer_names():
    """With a name column 5 wide (the header's "layer"): name 0-5, two spaces, kind 7-13, MACs right-aligned
    in 15-29, quantized from 31; a name column as wide as the names only (1) moved every column of the rows
    4 places left of the header's."""
    lines = profile(_model(), (1, 3, 8, 8)).table().splitlines()
    macs = [4 * 6 * 6 * 3 * 9, 2 * 4 * 4 * 4 * 9]  # 3888 and 1152 per sample
    rows = [(line[:5].rstrip(), line[7:13].rstrip(), line[15:29], line[31:]) for line in lines]
    assert rows[0] == ("layer", "kind", f"{'MACs':>14}", "quantized"), f"header columns moved: {lines[0]!r}"
    assert rows[1] == ("0", "conv", f"{'3,888':>14}", "yes"), f"row of the quantized conv: {lines[1]!r}"
    assert rows[2] == ("1", "conv", f"{'1,152':>14}", "no"), f"row of the float conv: {lines[2]!r}"
    assert rows[3][0] == "total" and rows[3][2] == f"{sum(macs):>14,d}", f"total line: {lines[3]!r}"


def test_table_marks_quantized_and_float_layers():
    """The last column is "yes" for a layer with a quantized precision in its set, "no" for a float layer."""
    report = profile(_model(), (1, 3, 8, 8))
    marks = [line.split()[-1] for line in report.table().splitlines()[1:-1]]
    assert marks == ["yes" if layer.quantized else "no" for layer in report.layers] == ["yes", "no"], marks


def test_the_report_keeps_the_profiled_input_shape():
    """``CostReport.input_size`` is the batch shape that was profiled (a given shape, or an example's)."""
    assert profile(_model(), (2, 3, 8, 8)).input_size == (2, 3, 8, 8)
    assert profile(_model(), torch.rand(1, 3, 9, 7)).input_size == (1, 3, 9, 7)

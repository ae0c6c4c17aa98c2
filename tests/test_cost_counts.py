"""dwq.quant.cost counts on small models worked out by hand: a linear layer over extra leading dims,
batch norm at 2 ops per output element, and batch norm priced as a full-precision layer (switchable
BN, and a BN that carries a precision set of its own)."""
from torch import nn

from dwq.models import small_cnn
from dwq.quant.cost import profile


def test_linear_macs_count_every_leading_dim():
    """nn.Linear applies to the last dim of any shape: an input [2, 5, 8] is 5 rows of 8 per sample, so
    8 -> 4 costs 5 * 8 * 4 = 160 MACs per sample (counted as one row, 32, it ignored the leading dims)."""
    r = profile(nn.Sequential(nn.Linear(8, 4)), (2, 5, 8))
    assert [(l.kind, l.macs) for l in r.layers] == [("linear", 160)]
    r = profile(nn.Sequential(nn.Linear(8, 4)), (3, 8))  # and one row per sample: out * in
    assert r.layers[0].macs == 32


def test_batch_norm_counts_two_ops_per_output_element():
    """BN is a scale and a shift per output element (thop's and the paper's convention): for a conv with
    4 x 6 x 6 outputs, include_bn adds 2 * 144 ops (it added 144)."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    r = profile(m, (1, 3, 8, 8))
    assert r.macs() == 4 * 6 * 6 * 3 * 3 * 3
    assert r.macs(include_bn=True) - r.macs() == 2 * 4 * 6 * 6
    assert [l.kind for l in r.layers] == ["conv", "bn"]


def test_switchable_batch_norm_is_priced_at_full_precision():
    """A switchable BN has a precision set but computes in float: it is not a quantized layer, so with
    include_bn its ops cost 32 x 32 bits at every precision (marked quantized, they cost 4 x 4 at 4 bits)."""
    r = profile(small_cnn(precisions=[4, 8], width=4), (1, 1, 28, 28))
    bns = [l for l in r.layers if l.kind == "bn"]
    assert bns and not any(l.quantized for l in bns)
    assert any(l.quantized for l in r.layers if l.kind != "bn")  # (the quantized convs are)
    bn_macs = sum(l.macs for l in bns)
    assert r.bitops(4, include_bn=True) - r.bitops(4) == bn_macs * 1024
    assert r.bitops(4, include_bn=True, uniform=True) - r.bitops(4, uniform=True) == bn_macs * 16


class _PrecisionAwareBN(nn.BatchNorm2d):
    """A batch norm that carries a precision set (as a user's own switchable BN might): still float."""

    precisions = [4, 8]


def test_a_batch_norm_with_a_precision_set_is_still_full_precision():
    """What marks a layer quantized is its precision set, except for batch norm, which computes in float
    whatever set it carries: a BN with a ``precisions`` attribute was priced at 4 x 4 bits at 4 bits."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3), _PrecisionAwareBN(4))
    r = profile(m, (1, 3, 8, 8))
    assert [(l.kind, l.quantized) for l in r.layers] == [("conv", False), ("bn", False)]
    assert r.bitops(4, include_bn=True) == r.macs(include_bn=True) * 1024

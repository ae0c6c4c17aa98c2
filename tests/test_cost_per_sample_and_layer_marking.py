"""dwq.quant.cost edge rules worked out by hand: counts are per sample for every layer kind (batch norm
too), a layer is quantized when its set holds any quantized precision (and not when it holds only full
precision), the profiling forward runs in eval mode, and an integer example input keeps its dtype."""
import torch
from torch import nn

from dwq.nn import QConv2d
from dwq.quant.cost import profile


def test_every_count_is_per_sample_whatever_the_batch():
    """A conv with 4 x 6 x 6 outputs and its BN: 2 * 144 BN ops per sample at any batch size (the BN's
    count must be divided by the batch like the conv's and the linear's)."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 5))
    want = [("conv", 4 * 6 * 6 * 3 * 3 * 3), ("bn", 2 * 4 * 6 * 6), ("linear", 144 * 5)]
    for batch in (1, 3):
        r = profile(m, (batch, 3, 8, 8))
        assert [(l.kind, l.macs) for l in r.layers] == want, batch
        assert r.macs(include_bn=True) == sum(macs for _, macs in want)


def test_a_set_with_full_precision_among_quantized_ones_is_a_quantized_layer():
    """precisions [4, None]: priced at 4 x 4 bits at precision 4 and at 32 x 32 at full precision; a set of
    full precision only ([None]) is a float layer, 32 x 32 bits at any precision."""
    m = nn.Sequential(QConv2d(3, 4, 3, precisions=[None]), QConv2d(4, 4, 3, precisions=[4, None]))
    r = profile(m, (1, 3, 8, 8))
    fp_macs, q_macs = 4 * 6 * 6 * 3 * 9, 4 * 4 * 4 * 4 * 9
    assert [(l.macs, l.quantized) for l in r.layers] == [(fp_macs, False), (q_macs, True)]
    assert r.bitops(4) == fp_macs * 1024 + q_macs * 16
    assert r.bitops(None) == (fp_macs + q_macs) * 1024


def test_a_model_in_train_mode_is_profiled_in_eval_mode():
    """A fresh model is in train mode; a BatchNorm1d over a batch of one sample only runs in eval mode
    (train mode raises "Expected more than 1 value per channel"). The model's own mode is kept."""
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    m.train()
    r = profile(m, (1, 4))
    assert [(l.kind, l.macs) for l in r.layers] == [("linear", 12), ("bn", 6)]
    assert m.training


def test_an_integer_example_input_keeps_its_dtype():
    """Token ids for an embedding: only a floating example is cast to the model's dtype (a float
    example of ids fails in nn.Embedding)."""
    m = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    r = profile(m, torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert [(l.kind, l.macs) for l in r.layers] == [("linear", 24)]

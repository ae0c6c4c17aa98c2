"""dwq.deploy.compare where test_deploy_agreement_fields.py leaves it open: each disagreement's
"max_abs_diff" is that image's own largest logit difference (there every image differed by the same
+100 bias, so the batch's largest passed for it), a model whose logits are all 0 has a logit scale
of 0 and a relative difference of 0, not a ZeroDivisionError; and code_agreement's error names the first
three layers missing on the integer model, with "..." only when there are more; a layer whose input is a
single code still reports its largest step."""
import re

import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import code_agreement, compare, convert
from dwq.models import small_cnn
from dwq.nn import QLinear
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _model():
    return calibrated(small_cnn(precisions=[4], width=4), (8, 1, 28, 28))


def _images():
    return torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_each_disagreement_reports_its_own_largest_logit_difference():
    """An integer model biased by +100 towards a class no fake-quant top-1 is (every image disagrees) and with
    conv2's output zero point moved by one (conv3's input codes one step off: a difference that varies by
    image): each entry's max_abs_diff is max_j |fq - int| of its image, and the entries differ."""
    m, x = _model(), _images()
    im = convert(m)
    with torch.no_grad(), dwq.precision(m, 4):
        a = m(x)
    k = int(a.mean(0).argmin())
    assert not (a.argmax(1) == k).any()
    with torch.no_grad():
        im.layers["fc"].bias[k] += 100.0
        im.layers["conv2"].plans[0].out_zero_point.add_(1)
    with torch.no_grad(), dwq.precision(im, 4):
        b = im(x)
    per_image = (a - b).abs().max(1).values
    r = compare(m, im, x, [4])["4"]
    assert [e["index"] for e in r["disagreements"]] == list(range(6))
    got = [e["max_abs_diff"] for e in r["disagreements"]]
    assert got == pytest.approx(per_image.tolist(), rel=1e-6), f"per-image max |diff| {got}, expected {per_image}"
    assert per_image.max() - per_image.min() > 1e-3  # (the images do differ: the batch's largest is not each one's)


def test_all_zero_logits_have_a_relative_difference_of_zero():
    """A classifier of zero weights and bias: both models give logits of 0, logit_scale is 0 and rel_max_diff 0."""
    m = _model()
    with torch.no_grad():
        m.fc.weight.zero_()
        m.fc.bias.zero_()
    r = compare(m, convert(m), _images(), [4])["4"]
    assert r["logit_scale"] == 0.0 and r["max_abs_diff"] == 0.0
    assert r["rel_max_diff"] == 0.0 and r["top1_agreement"] == 1.0 and r["disagreements"] == []


@pytest.mark.parametrize("missing,names", [(3, "0.0, 1.0, 2.0"), (4, "0.0, 1.0, 2.0, ...")])
def test_code_agreement_names_up_to_three_missing_layers(missing, names):
    """Five quantized linear layers; the first 3 (or 4) renamed on the integer model: the error gives their
    count and the fake-quant names of the first three (then "...", only when there are more)."""
    m = calibrated(nn.Sequential(*[nn.Sequential(QLinear(6, 6, precisions=[4]), nn.ReLU()) for _ in range(4)],
                                 QLinear(6, 3, precisions=[4])), (8, 6))
    im = convert(m)
    for layer in list(im.layers.values())[:missing]:
        layer.source = "renamed-" + layer.source
    with pytest.raises(RuntimeError, match=rf"code_agreement: {missing} layer\(s\) quantized on the fake-quant "
                                           rf"model gave no input codes on the integer model \({re.escape(names)}\)$"):
        code_agreement(m, im, torch.rand(3, 6, generator=torch.Generator().manual_seed(0)), 4)


def test_code_agreement_of_a_layer_with_one_input_code():
    """One image into a 2-in, 1-out layer: the next layer sees a single input code, which the first layer's output
    zero point moved by one moves by one step: 1 code, 1 differs, max_step 1."""
    m = calibrated(nn.Sequential(QLinear(2, 1, precisions=[4]), nn.ReLU(), QLinear(1, 3, precisions=[4])), (8, 2))
    im = convert(m)
    with torch.no_grad():
        im.layers["_0"].plans[0].out_zero_point.add_(1)
    agree = code_agreement(m, im, torch.rand(1, 2, generator=torch.Generator().manual_seed(0)), 4)
    assert agree == {"0": {"codes": 2, "differ": 0, "max_step": 0}, "2": {"codes": 1, "differ": 1, "max_step": 1}}

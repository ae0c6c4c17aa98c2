"""dwq.deploy.agreement: the figures of compare / code_agreement / format_comparison that the model tests
(which only see agreeing models) never check. An integer model edited to disagree on purpose makes each
field observable (found by mutation)."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import code_agreement, compare, convert
from dwq.deploy.agreement import format_comparison
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.fixture(scope="module")
def pair():
    m = calibrated(small_cnn(precisions=[4], width=4), (8, 1, 28, 28))
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return m, x


def test_compare_reports_each_field_of_a_disagreeing_integer_model(pair):
    """The integer model's classifier is biased towards a class the fake-quant model does not predict:
    every image disagrees, and each figure is the stated function of the two models' logits (mean, not
    max, |diff|; the median top-2 margin; fq_margin = fake-quant top-1 minus its logit of the integer
    top-1, so > 0; each model's own accuracy)."""
    m, x = pair
    im = convert(m)
    with torch.no_grad(), dwq.precision(m, 4):
        a = m(x)
    ta = a.argmax(1)
    k = int(a.mean(0).argmin())  # a class no image's top-1 is
    assert not (ta == k).any()
    with torch.no_grad():
        im.layers["fc"].bias[k] += 100.0
    with torch.no_grad(), dwq.precision(im, 4):
        b = im(x)
    assert (b.argmax(1) == k).all()
    y = ta.clone()
    y[:2] = k  # two labels the integer model gets, four the fake-quant one does
    r = compare(m, im, x, [4], batch_size=4, y=y)["4"]
    d = (a - b).abs()
    top2 = a.topk(2, dim=1).values
    assert r["n"] == 6 and r["top1_agreement"] == 0.0
    assert r["max_abs_diff"] == pytest.approx(d.max().item(), rel=1e-6)
    assert r["mean_abs_diff"] == pytest.approx(d.mean().item(), rel=1e-5) and r["mean_abs_diff"] < r["max_abs_diff"] / 2
    assert r["logit_scale"] == pytest.approx(a.abs().max().item(), rel=1e-6)
    assert r["median_fq_margin"] == pytest.approx((top2[:, 0] - top2[:, 1]).median().item(), rel=1e-5)
    assert [e["index"] for e in r["disagreements"]] == list(range(6))
    for e in r["disagreements"]:
        i = e["index"]
        assert e["fq_margin"] == pytest.approx((a[i, ta[i]] - a[i, k]).item(), rel=1e-5) and e["fq_margin"] > 0
        assert e["max_abs_diff"] == pytest.approx(d[i].max().item(), rel=1e-6)
    assert r["fq_accuracy"] == pytest.approx(4 / 6) and r["int_accuracy"] == pytest.approx(2 / 6)


def test_code_agreement_counts_codes_one_step_apart(pair):
    """conv2's epilogue makes conv3's input codes; its output zero point moved by one moves every such code
    by one step: conv3 differs everywhere (a difference of one code counts), conv2 nowhere."""
    m, x = pair
    im = convert(m)
    with torch.no_grad():
        im.layers["conv2"].plans[0].out_zero_point.add_(1)
    agree = code_agreement(m, im, x, 4)
    assert agree["conv2"] == {"codes": 4704, "differ": 0, "max_step": 0}
    assert agree["conv3"]["differ"] == agree["conv3"]["codes"] == 2352 and agree["conv3"]["max_step"] == 1


def test_code_agreement_names_a_layer_the_integer_model_gave_no_codes_for(pair):
    """A quantized layer of the fake-quant model with no counterpart among the integer model's layers is a
    RuntimeError naming it (not a KeyError)."""
    m, x = pair
    im = convert(m)
    im.layers["conv3"].source = "renamed"
    with pytest.raises(RuntimeError, match=r"code_agreement: 1 layer\(s\) quantized on the fake-quant model gave no "
                                           r"input codes on the integer model \(conv3\)"):
        code_agreement(m, im, x, 4)


def test_format_comparison_shows_agreement_in_percent():
    cmp = {"4": {"n": 10, "top1_agreement": 0.9, "max_abs_diff": 0.5, "rel_max_diff": 0.25, "mean_abs_diff": 0.125,
                 "median_fq_margin": 2.0, "disagreements": [{"index": 3, "fq_margin": 0.01, "max_abs_diff": 0.5}]}}
    lines = format_comparison(cmp).splitlines()
    assert lines[0].split()[:2] == ["precision", "n"]
    assert lines[1].split() == ["4", "10", "90.00%", "5.00e-01", "2.50e-01", "1.25e-01"]
    assert lines[2].strip() == ("image 3: fake-quant margin 0.01 between the two classes (median top-2 margin 2), "
                                "largest logit difference 0.5")

"""dwq.deploy.compare / code_agreement beyond the fields test_deploy_agreement_fields.py pins: rel_max_diff as
max |diff| over the logit scale, a model in train mode measured as in eval mode with its state left alone, full
precision giving no codes, one-class logits, and a batch_size or labels of the wrong kind refused."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import code_agreement, compare, convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.fixture(scope="module")
def models():
    """A calibrated 4/8-bit small CNN, 5 images, and an integer twin biased towards a class no image's fake-quant
    top-1 is, so that every image disagrees (max and mean |diff| far apart)."""
    m = calibrated(small_cnn(precisions=[4, 8], width=4), (8, 1, 28, 28))
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    top = set()
    for p in (4, 8):
        with torch.no_grad(), dwq.precision(m, p):
            top |= set(m(x).argmax(1).tolist())
    k = min(set(range(10)) - top)
    biased = convert(m)
    with torch.no_grad():
        biased.layers["fc"].bias[k] += 100.0
    return m, x, biased


def test_rel_max_diff_is_the_max_abs_diff_over_the_logit_scale(models):
    """rel_max_diff is max |diff| / max |fake-quant logit| (not the mean |diff|, which is far smaller here)."""
    m, x, biased = models
    for p, v in compare(m, biased, x, [4, 8]).items():
        assert v["mean_abs_diff"] < v["max_abs_diff"]
        assert v["rel_max_diff"] == v["max_abs_diff"] / v["logit_scale"], (p, v)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(before, model):
    after = model.state_dict()
    return [k for k, v in before.items() if not torch.equal(v, after[k])]


def test_a_model_in_train_mode_is_measured_in_eval_mode_and_keeps_its_state(models):
    """compare and code_agreement of a model left in train mode give the eval-mode figures (a train-mode forward
    normalizes by the batch's statistics and quantizes with the batch's own range) and move none of its BN
    statistics or activation ranges."""
    m, x, _ = models
    im = convert(m)
    want_cmp = compare(m, im, x, [4])["4"]
    want_codes = code_agreement(m, im, x, 4)
    assert all(v["differ"] == 0 for v in want_codes.values()), want_codes
    before = _state(m)
    try:
        m.train()
        got_cmp = compare(m, im, x, [4])["4"]
        assert _unchanged(before, m) == [], "compare moved the state of a model in train mode"
        got_codes = code_agreement(m, im, x, 4)
        assert _unchanged(before, m) == [], "code_agreement moved the state of a model in train mode"
        assert m.training
    finally:
        m.eval()
    assert got_cmp["max_abs_diff"] == want_cmp["max_abs_diff"], (got_cmp, want_cmp)
    assert got_codes == want_codes, f"train-mode codes {got_codes} differ from the eval-mode ones {want_codes}"


def test_code_agreement_at_full_precision_is_empty():
    """Full precision has no input codes: {} for None and "fp", whatever the layers' quantizers hold."""
    m = calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28))
    im, x = convert(m), torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert code_agreement(m, im, x, None) == {} and code_agreement(m, im, x, "fp") == {}
    assert code_agreement(m, im, x, 4)  # (the quantized precision does give codes)
    # full precision outside the integer model's set is refused as any other precision is (it gave {})
    for p in ("fp", 16):
        with pytest.raises(ValueError, match=r"precision .* is not in"):
            code_agreement(m, convert(m, [4]), x, p)


def test_compare_of_one_class_logits():
    """A one-class model has no second logit: the top-2 margin is 0 (topk(2) of one column failed)."""
    m = calibrated(small_cnn(num_classes=1, precisions=[4], width=4), (8, 1, 28, 28))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    r = compare(m, convert(m), x)["4"]
    assert r["median_fq_margin"] == 0.0 and r["top1_agreement"] == 1.0 and r["disagreements"] == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=True), "compare: batch_size must be an int >= 1, got True"),
    (dict(batch_size=2.0), "compare: batch_size must be an int >= 1, got 2.0"),
    (dict(y=torch.zeros(5, 1, dtype=torch.long)), r"compare: y must be labels \[5\] \(one per image of x\), got "
                                                   r"shape \(5, 1\)"),
    (dict(y=torch.zeros(1, 5, dtype=torch.long)), r"compare: y must be labels \[5\]"),
], ids=["bool-batch", "float-batch", "labels-5x1", "labels-1x5"])
def test_compare_refuses_batch_sizes_and_labels_of_the_wrong_kind(models, kwargs, message):
    """batch_size=True ran as 1; labels [N, 1] broadcast against the predictions into an [N, N] comparison and
    reported an accuracy of the wrong images."""
    m, x, biased = models
    with pytest.raises(ValueError, match=message):
        compare(m, biased, x, [4], **kwargs)

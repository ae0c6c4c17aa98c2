"""MACs/BitOPs accounting: the paper's PreActResNet18 cost column and the per-layer rules."""
import pytest
import torch
from torch import nn

import dwq
from dwq.models import QuantPolicy, preact_resnet18, small_cnn
from dwq.nn import QConv2d, QLinear
from dwq.quant.cost import bitops, bitops_summary, count_macs, mean_bitops, profile


def _conv_macs(cin, cout, k, hw_out):
    return cin * cout * k * k * hw_out * hw_out


@pytest.fixture(scope="module")
def preact_report():
    return profile(preact_resnet18(precisions=list(range(4, 17))), (1, 3, 32, 32))


def test_preact_resnet18_macs_by_hand(preact_report):
    # Block 3x3 convs: stage 1 at 32x32, stages 2-4 halve the map and double the width.
    body = 4 * _conv_macs(64, 64, 3, 32)
    for c, hw in ((128, 16), (256, 8), (512, 4)):
        body += _conv_macs(c // 2, c, 3, hw) + 3 * _conv_macs(c, c, 3, hw)
    stem = _conv_macs(3, 64, 3, 32)
    shortcuts = sum(_conv_macs(c // 2, c, 1, hw) for c, hw in ((128, 16), (256, 8), (512, 4)))
    classifier = 512 * 10
    quantized = sum(l.macs for l in preact_report.layers if l.quantized)
    assert quantized == body
    assert preact_report.macs() == body + stem + shortcuts + classifier
    assert sum(l.kind == "conv" and l.quantized for l in preact_report.layers) == 16


@pytest.mark.parametrize("precisions,paper_gbitops", [([None], 569.9), (range(4, 9), 21.2), (range(4, 17), 63.5)])
def test_paper_bitops_figures_within_one_percent(preact_report, precisions, paper_gbitops):
    # The paper charges every layer (and the BNs, 2 ops per element) at the drawn bit width.
    got = preact_report.mean_bitops(precisions, uniform=True, include_bn=True) / 1e9
    assert got == pytest.approx(paper_gbitops, rel=0.01)
    # It is total MACs x mean(b^2) (32^2 at full precision).
    b2 = [32 * 32 if p is None else p * p for p in precisions]
    assert got * 1e9 == pytest.approx(preact_report.macs(include_bn=True) * sum(b2) / len(b2))


def test_default_accounting_charges_full_precision_layers_at_32_bits(preact_report):
    q = sum(l.macs for l in preact_report.layers if l.quantized and l.kind != "bn")
    fp = sum(l.macs for l in preact_report.layers if not l.quantized and l.kind != "bn")
    assert fp > 0 and q > 0
    assert preact_report.bitops(4) == q * 16 + fp * 1024
    assert preact_report.bitops((4, 8)) == q * 32 + fp * 1024
    assert preact_report.bitops(None) == (q + fp) * 1024
    expected = sum(q * b * b + fp * 1024 for b in range(4, 9)) / 5
    assert preact_report.mean_bitops(range(4, 9)) == pytest.approx(expected)
    # Honest cost of the reference's RPI 4-8: the float stem/shortcuts/classifier dominate the gap.
    assert preact_report.mean_bitops(range(4, 9)) > 1.3 * preact_report.mean_bitops(range(4, 9), uniform=True)


def test_policy_moves_layers_between_quantized_and_full_precision():
    x = (1, 1, 28, 28)
    base = profile(small_cnn(precisions=[4]), x)
    full = profile(small_cnn(precisions=[4], policy=QuantPolicy(first_conv=True, classifier=True)), x)
    assert base.macs() == full.macs()
    assert base.bitops(4) > full.bitops(4) == full.macs() * 16
    assert {l.name for l in base.layers if l.quantized} == {"conv2", "conv3"}


def test_conv_and_linear_macs_on_a_tiny_model():
    model = nn.Sequential(
        QConv2d(3, 8, 3, stride=2, padding=1, groups=1, precisions=[4, 8]),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.Flatten(),
        QLinear(8 * 5 * 5, 7, precisions=[4, 8]),
    )
    report = profile(model, (3, 3, 10, 10))  # per-sample counts, whatever the batch
    assert [l.macs for l in report.layers] == [3 * 9 * 8 * 25, 2 * 9 * 8 * 25, 200 * 7]
    assert [l.quantized for l in report.layers] == [True, False, True]
    assert count_macs(model, (1, 3, 10, 10)) == report.macs()
    assert bitops(model, 8, (1, 3, 10, 10)) == 64 * (3 * 9 * 8 * 25 + 1400) + 1024 * 2 * 9 * 8 * 25
    # Default set for mean_bitops: the model's own.
    assert mean_bitops(model, input_size=(1, 3, 10, 10)) == pytest.approx(
        (report.bitops(4) + report.bitops(8)) / 2)


def test_profile_leaves_the_model_untouched_and_rejects_bad_input():
    model = small_cnn(precisions=[4, 8])
    model.train()
    dwq.set_precision(model, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = profile(model, torch.rand(2, 1, 28, 28))
    assert model.training and dwq.get_precision(model) == 4
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "conv2" in report.table()
    with pytest.raises(ValueError, match="empty"):
        report.mean_bitops([])
    with pytest.raises(ValueError, match="precision must be in 2..16, got 17"):
        report.bitops(17)
    with pytest.raises(ValueError, match="batch"):
        profile(model, (28,))
    with pytest.raises(ValueError, match=r"at least one sample, got shape \[0, 1, 28, 28\]"):
        profile(model, (0, 1, 28, 28))  # (was an IndexError inside a forward hook)


def test_profile_leaves_the_global_rng_where_it_was():
    # profile drew its random input (and RandomPrecision's draws) from the global RNG: a seeded run
    # differed depending on whether it had counted its model's MACs first
    model = dwq.RandomPrecision(small_cnn(precisions=[4, 8]))
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    profile(model, (2, 1, 28, 28))
    assert torch.equal(torch.rand(3), want)


def test_mean_bitops_refuses_a_string_or_a_lone_precision():
    # list("48") made the precision set [4, 8] silently; 8 failed with "'int' object is not iterable"
    report = profile(nn.Sequential(QConv2d(3, 8, 3, precisions=[4, 8])), (1, 3, 8, 8))
    for bad in ("48", 8, None):
        with pytest.raises(ValueError, match="must be a list of precisions"):
            report.mean_bitops(bad)
    with pytest.raises(ValueError, match="must be a list of precisions"):
        bitops_summary(nn.Sequential(nn.Conv2d(3, 8, 3)), (3, 8, 8), "48")
    assert report.mean_bitops(["4", "8"]) == (report.bitops(4) + report.bitops(8)) / 2
    # a repeat, in any spelling, weighed a precision twice (bitops_summary's per_precision then held
    # one key for it and its rpi_mean two terms)
    with pytest.raises(ValueError, match=r"mean_bitops: precisions must not repeat, got \[4, '4', 8\]"):
        report.mean_bitops([4, "4", 8])
    with pytest.raises(ValueError, match="bitops_summary: precisions must not repeat"):
        bitops_summary(nn.Sequential(QConv2d(3, 8, 3, precisions=[4, 8])), (3, 8, 8), [4, 8, 4])


def test_every_convolution_kind_is_counted_by_hand():
    # Conv1d/Conv3d/ConvTranspose* dropped out of the count silently (0 MACs): only Conv2d was hooked
    model = nn.Sequential(
        nn.Conv1d(3, 4, 3, padding=1, groups=1),                 # 10 -> 10
        nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2),         # 10 -> 21; each input meets 6/2 x 3 taps
        nn.Unflatten(2, (3, 7)), nn.Unflatten(1, (1, 6)),       # [N, 1, 6, 3, 7]
        nn.Conv3d(1, 2, (2, 2, 3)),                              # -> [N, 2, 5, 2, 5]
        nn.Flatten(), nn.Linear(100, 5),
    )
    report = profile(model, (2, 3, 10))
    assert [l.kind for l in report.layers] == ["conv", "conv", "conv", "linear"]
    assert [l.macs for l in report.layers] == [10 * 4 * 3 * 3, 4 * 10 * 3 * 3, 2 * 50 * 1 * 12, 100 * 5]
    assert report.bitops(None) == report.macs() * 32 * 32


def test_profile_refuses_an_input_size_without_the_batch_dimension():
    # torch runs a conv on one unbatched (C, H, W) sample: profile divided by C as the "batch" (8x too few)
    with pytest.raises(ValueError, match=r"profile: '0' got an input without a batch dimension, shape \[3, 32, 32\]: "
                                         r"input_size must be a batch's shape, e.g. \(1, 3, 32, 32\)"):
        profile(nn.Sequential(nn.Conv2d(3, 8, 3)), (3, 32, 32))


def test_profile_of_an_untrained_switchable_model_does_not_warn():
    """Counting MACs reads no BN statistic: a freshly built RPT model (whose branches have not seen a
    training batch) is profiled without the eval-time warning, which still reaches a real forward."""
    import warnings

    model = small_cnn(precisions=[4, 8])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile(model, (1, 1, 28, 28))
    model.eval()
    with pytest.warns(UserWarning, match="never seen a training batch"):
        model(torch.rand(1, 1, 28, 28))


def test_profile_runs_without_the_models_hooks_and_in_its_dtype():
    model = small_cnn(precisions=[4, 8])
    seen = []
    model.conv1.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.conv1.register_forward_pre_hook(lambda m, i: seen.append("pre"))
    want = profile(model, (2, 1, 28, 28)).macs()
    assert seen == []  # (the deep copy kept the user's hooks: they saw the profiling forward)
    model(torch.rand(1, 1, 28, 28))
    assert len(seen) == 2  # the model's own hooks are still there
    # a float64 example into a float32 model: counted in the model's dtype (was a dtype error in conv1)
    assert profile(model, torch.rand(2, 1, 28, 28, dtype=torch.float64)).macs() == want
    with pytest.raises(ValueError, match="as ints"):
        profile(model, (True, 1, 28, 28))  # (a bool read as a batch of 1)


def test_mean_bitops_defaults_to_what_the_model_draws_from():
    model = small_cnn(precisions=[2, 4, 8, None])
    report = profile(model, (1, 1, 28, 28))
    drawn = dwq.RandomPrecision(model, bits=[2, 4])  # (it took the layers' whole set, fp included)
    assert mean_bitops(drawn, input_size=(1, 1, 28, 28)) == pytest.approx(report.mean_bitops([2, 4]))
    assert mean_bitops(model, input_size=(1, 1, 28, 28)) == pytest.approx(report.mean_bitops([2, 4, 8, None]))
    mixed = nn.Sequential(QConv2d(1, 4, 3, precisions=[2, 4]), QConv2d(4, 4, 3, precisions=[8, 16]))
    with pytest.raises(ValueError, match="mean_bitops: .*pass `precisions`"):  # (averaged over [2, 4])
        mean_bitops(mixed, input_size=(1, 1, 8, 8))

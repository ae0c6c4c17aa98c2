"""Import of reference-implementation checkpoints (GATECH-EIC/Double-Win-Quant key layout),
with the state_dicts built synthetically from a dwq model."""
import pytest
import torch
from torch import nn

import dwq
from dwq.models import PreActResNet, QuantPolicy, WideResNet, load_reference_state_dict, preact_resnet18
from dwq.models.reference_import import reference_to_dwq_state_dict
from dwq.nn import QConv2d, QLinear, SwitchableBatchNorm2d

X = torch.rand(2, 3, 8, 8)


def _small(precisions, **kw):
    """A PreActResNet with one block per stage: every key kind of PreActResNet18, at half the cost."""
    kw.setdefault("policy", QuantPolicy())
    kw.setdefault("switchable_bn", True)
    return PreActResNet([1, 1, 1, 1], 10, list(precisions), kw["policy"], kw["switchable_bn"], None, None,
                        "cifar10")


def _randomize(model, seed):
    """Random weights, BN statistics/affine per branch and activation ranges shared by all slots."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            if isinstance(m, (QConv2d, QLinear)):
                lo = -torch.rand(1, generator=g).item()
                hi = 1 + 2 * torch.rand(1, generator=g).item()
                m.input_quant.running_min.fill_(lo)
                m.input_quant.running_max.fill_(hi)
                m.input_quant.initialized.fill_(True)
    return model.eval()


def _as_reference(model, renames=(), prefix="module.", parent_bn=True):
    """The state_dict the reference code would save for ``model``: DataParallel prefix, unused
    parent BN entries, a QuantMeasure range [1, 1, 1, 1] on every conv (also full-precision ones)."""
    sd = {}
    for name, m in model.named_modules():
        if isinstance(m, SwitchableBatchNorm2d) and parent_bn:
            c = m.num_features
            sd.update({f"{name}.weight": torch.rand(c), f"{name}.bias": torch.rand(c),
                       f"{name}.running_mean": torch.rand(c), f"{name}.running_var": torch.rand(c),
                       f"{name}.num_batches_tracked": torch.tensor(7)})
        if isinstance(m, nn.Conv2d):
            if isinstance(m, QConv2d):
                lo, hi = m.input_quant.running_min[0], m.input_quant.running_max[0]
            else:
                lo, hi = torch.tensor(-0.5), torch.tensor(3.0)
            sd[f"{name}.quantize_input.running_zero_point"] = lo.reshape(1, 1, 1, 1).clone()
            sd[f"{name}.quantize_input.running_range"] = (hi - lo).reshape(1, 1, 1, 1).clone()
    for key, value in model.state_dict().items():
        if key.endswith("precision_set") or ".input_quant." in key or key.startswith("normalize."):
            continue
        sd[key] = value.clone()
    out = {}
    for key, value in sd.items():
        for old, new in renames:
            key = key.replace(old, new)
        out[prefix + key] = value
    return out


def _outputs(model, precisions):
    out = {}
    with torch.no_grad():
        for p in precisions:
            with dwq.precision(model, p):
                out[p] = model(X)
    return out


@pytest.mark.parametrize("policy", [
    QuantPolicy(),
    QuantPolicy(first_conv=True, shortcut=True, zero_point="float", shared_act_range=True),
])
def test_reference_state_dict_round_trip_gives_the_same_outputs(policy):
    precisions = [4, 8]
    src = _randomize(preact_resnet18(precisions=precisions, policy=policy), seed=0)
    ref_sd = _as_reference(src)
    assert "module.layer1.0.bn1.bn.1.weight" in ref_sd and "module.layer1.0.bn1.weight" in ref_sd
    dst = preact_resnet18(precisions=precisions, policy=policy)
    load_reference_state_dict(dst, {"state_dict": ref_sd, "opt": {}, "epoch": 3})  # a whole checkpoint
    dst.eval()
    want, got = _outputs(src, precisions), _outputs(dst, precisions)
    for p in precisions:
        assert torch.equal(want[p], got[p]), p
    assert not torch.allclose(got[4], got[8])
    # The activation range became running_min = zero point, running_max = zero point + range.
    conv = dst.layer2[1].conv1.input_quant
    assert torch.allclose(conv.running_max, src.layer2[1].conv1.input_quant.running_max)
    assert bool(conv.initialized.all())


def test_reference_import_loads_a_subset_of_the_checkpoints_precisions():
    src = _randomize(_small(precisions=[4, 6, 8]), seed=1)
    ref_sd = _as_reference(src)
    dst = _small(precisions=[8, 4, None])
    load_reference_state_dict(dst, ref_sd, reference_precisions=[4, 6, 8])
    sd = dst.state_dict()
    assert torch.equal(sd["layer3.0.bn2.bn.0.running_mean"], src.layer3[0].bn2.bn[2].running_mean)
    assert torch.equal(sd["layer3.0.bn2.bn.1.weight"], src.layer3[0].bn2.bn[0].weight)
    # Full precision uses the reference's last branch, as its code does at num_bits=0.
    assert torch.equal(sd["bn.bn.2.bias"], src.bn.bn[2].bias)
    want, got = _outputs(src, [4, 8]), _outputs(dst.eval(), [4, 8])
    assert torch.equal(want[4], got[4]) and torch.equal(want[8], got[8])


def test_precision_set_mismatch_is_a_clear_error():
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 6, 8]), seed=2))
    with pytest.raises(RuntimeError, match="3 switchable-BN branches.*has 2"):
        load_reference_state_dict(_small(precisions=[4, 8]), ref_sd)
    with pytest.raises(RuntimeError, match="precision 5 of the model is not in"):
        load_reference_state_dict(_small(precisions=[4, 5]), ref_sd, reference_precisions=[4, 6, 8])
    with pytest.raises(RuntimeError, match="switchable_bn=False"):
        load_reference_state_dict(_small(precisions=[4, 6, 8], switchable_bn=False), ref_sd)


def test_bad_entries_are_named():
    model = _small(precisions=[4, 8])
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 8]), seed=3))
    extra = dict(ref_sd, **{"module.layer9.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="layer9.0.conv1.weight"):
        load_reference_state_dict(model, extra)
    missing = {k: v for k, v in ref_sd.items() if k != "module.layer2.0.conv2.quantize_input.running_range"}
    with pytest.raises(RuntimeError, match="layer2.0.conv2"):
        load_reference_state_dict(model, missing)
    wrong = dict(ref_sd, **{"module.linear.weight": torch.zeros(100, 512)})
    with pytest.raises(RuntimeError, match="shape mismatch for 'linear.weight'"):
        load_reference_state_dict(_small(precisions=[4, 8]), wrong)
    # The model is untouched by a failed import.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError):
        load_reference_state_dict(model, extra)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_plain_bn_reference_and_switchable_model():
    """A reference model trained without --switchable_bn: its BN goes into every branch."""
    src = _randomize(_small(precisions=[4, 8], switchable_bn=False), seed=4)
    ref_sd = _as_reference(src, prefix="")
    dst = _small(precisions=[4, 8])
    load_reference_state_dict(dst, ref_sd)
    for i in range(2):
        assert torch.equal(dst.layer1[0].bn2.bn[i].running_var, src.layer1[0].bn2.running_var)
    plain = _small(precisions=[4, 8], switchable_bn=False)
    load_reference_state_dict(plain, ref_sd)
    want, got = _outputs(src, [4, 8]), _outputs(plain.eval(), [4, 8])
    assert torch.equal(want[4], got[4])


def test_wide_resnet_convshortcut_is_renamed():
    # A WideResNet-10-1 has the same key structure as the reference's WideResNet32, cheaply.
    def build():
        return WideResNet(10, 1, 10, [4, 8], QuantPolicy(), True, None, None, "cifar10")

    src = _randomize(build(), seed=5)
    ref_sd = _as_reference(src, renames=((".shortcut.", ".convShortcut."),))
    assert "module.block2.layer.0.convShortcut.weight" in ref_sd
    dst = build()
    load_reference_state_dict(dst, ref_sd)
    assert torch.equal(dst.block2.layer[0].shortcut.weight, src.block2.layer[0].shortcut.weight)
    want, got = _outputs(src, [4, 8]), _outputs(dst.eval(), [4, 8])
    assert torch.equal(want[8], got[8])


def test_never_updated_reference_range_stays_uninitialized():
    src = _randomize(_small(precisions=[4, 8]), seed=6)
    ref_sd = _as_reference(src)
    ref_sd["module.layer1.0.conv1.quantize_input.running_zero_point"].zero_()
    ref_sd["module.layer1.0.conv1.quantize_input.running_range"].zero_()
    sd = reference_to_dwq_state_dict(_small(precisions=[4, 8]), ref_sd)
    assert not sd["layer1.0.conv1.input_quant.initialized"].any()
    assert sd["layer1.0.conv2.input_quant.initialized"].all()

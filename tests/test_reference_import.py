"""Import of reference-implementation checkpoints (GATECH-EIC/Double-Win-Quant key layout),
with the state_dicts built synthetically from a dwq model."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

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
                m.input_quant.set_range(lo, hi)
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
                q = m.input_quant
                lo = q.running_min[0]
                rng = q.running_range[0] if q.zero_point == "float" else q.running_max[0] - lo
            else:
                lo, rng = torch.tensor(-0.5), torch.tensor(3.5)
            sd[f"{name}.quantize_input.running_zero_point"] = lo.reshape(1, 1, 1, 1).clone()
            sd[f"{name}.quantize_input.running_range"] = rng.reshape(1, 1, 1, 1).clone()
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
    # The activation range became running_min = zero point and the range (float) or zero point + range.
    conv = dst.layer2[1].conv1.input_quant
    upper = "running_range" if policy.zero_point == "float" else "running_max"
    assert torch.equal(getattr(conv, upper), getattr(src.layer2[1].conv1.input_quant, upper))
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


def test_a_model_set_that_cannot_be_the_references_needs_reference_precisions():
    """The reference's num_bits_list is ascending widths without full precision: a model set [None, 4, 5]
    or [6, 5, 4] of the checkpoint's size took branch i as its i-th precision, silently wrong (logits 3 off)."""
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 5, 6]), seed=2))
    for ours in ([None, 4, 5], [6, 5, 4]):
        with pytest.raises(RuntimeError, match=r"cannot be the reference's num_bits_list .* pass reference_precisions"):
            load_reference_state_dict(_small(precisions=ours), ref_sd)
    load_reference_state_dict(_small(precisions=[4, 5, 6]), ref_sd)


def test_an_impossible_activation_range_is_refused_at_import():
    """A NaN range (a diverged run) failed at the first forward naming no layer and blaming the input; a
    negative one ran silently with the integer zero point."""
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 8]), seed=3))
    key = "module.layer2.0.conv1.quantize_input.running_range"  # (a quantized layer's: the stem's is dropped)
    assert key in ref_sd
    for bad in (float("nan"), float("inf"), -1.0):
        sd = dict(ref_sd)
        sd[key] = torch.full_like(ref_sd[key], bad)
        with pytest.raises(RuntimeError, match="is not finite or negative"):
            load_reference_state_dict(_small(precisions=[4, 8]), sd)


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


def test_reference_precisions_is_checked_as_a_set():
    """A repeat mapped two of our precisions to one branch and a string was split into widths, silently;
    a lone int was a bare "'int' object is not iterable"."""
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 6, 8]), seed=2))
    for bad, why in (([4, 4, 8], "must not repeat"), ("468", "must be a list of precisions"),
                     (4, "must be a list of precisions"), ([0, 4, 8], "precision must be in 2..16, got 0")):
        with pytest.raises(ValueError, match=f"^reference_precisions:? {why}"):
            load_reference_state_dict(_small(precisions=[4, 8]), ref_sd, reference_precisions=bad)


def test_damaged_or_foreign_checkpoints_are_named():
    model = _small(precisions=[4, 6, 8])
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 6, 8]), seed=3))
    # One layer short of a branch is a damaged file: not "build the model with the checkpoint's set".
    truncated = {k: v for k, v in ref_sd.items() if not k.startswith("module.layer3.0.bn2.bn.2.")}
    with pytest.raises(RuntimeError, match=r"disagree on the number of branches: 'layer3.0.bn2' has 2, the other "
                                           r"\d+ have 3 \(a truncated or damaged checkpoint\?\)"):
        load_reference_state_dict(model, truncated)
    # Entries that are no tensors were AttributeErrors deep in the mapping.
    with pytest.raises(TypeError, match=r"entry 'module.linear.bias' is a NoneType, not a tensor"):
        load_reference_state_dict(model, dict(ref_sd, **{"module.linear.bias": None}))
    with pytest.raises(TypeError, match=r"entry 'model' is a dict \(a whole checkpoint\?"):
        load_reference_state_dict(model, {"model": ref_sd, "epoch": 3})
    # The message named the other tensor's size ("got 1 values") for a range of 5 values.
    key = "module.layer1.0.conv1.quantize_input.running_range"
    with pytest.raises(RuntimeError, match=r"per-tensor activation range \(one value\), "
                                           r"layer1.0.conv1.quantize_input.running_range has shape \[5\]"):
        load_reference_state_dict(model, dict(ref_sd, **{key: torch.zeros(5)}))


def test_a_layer_without_its_branches_or_with_foreign_entries_is_refused():
    """A layer left with the reference's unused parent BN alone loaded the parent's default statistics into
    every branch; an unknown quantize_input entry was dropped silently, and one inside a branch was
    called an internal error of dwq."""
    model = _small(precisions=[4, 8])
    ref_sd = _as_reference(_randomize(_small(precisions=[4, 8]), seed=5))
    no_branches = {k: v for k, v in ref_sd.items() if ".layer3.0.bn2.bn." not in k}
    with pytest.raises(RuntimeError, match=r"layer 'layer3.0.bn2'.*no switchable-BN branch here.*only the reference's "
                                           r"unused parent BN.*have 2 branches \(a truncated or damaged checkpoint\?\)"):
        load_reference_state_dict(model, no_branches)
    for key in ("module.layer1.0.conv1.quantize_input.bogus", "module.layer1.0.bn1.bn.0.foo"):
        with pytest.raises(RuntimeError, match=f"entries with no place in PreActResNet: {key[7:]}$"):
            load_reference_state_dict(model, dict(ref_sd, **{key: torch.zeros(3)}))
    # QuantMeasure's counter of its measure mode has nothing to go to, and is no error
    counter = dict(ref_sd, **{"module.layer1.0.conv1.quantize_input.num_measured": torch.zeros(1)})
    load_reference_state_dict(model, counter)
    # a one-branch file into a model with plain BN: the same words (it was a dwq internal error)
    one = _as_reference(_randomize(_small(precisions=[8]), seed=5))
    load_reference_state_dict(_small(precisions=[8], switchable_bn=False), one)
    with pytest.raises(RuntimeError, match="entries with no place in PreActResNet: layer1.0.bn1.bn.0.foo$"):
        load_reference_state_dict(_small(precisions=[8], switchable_bn=False),
                                  dict(one, **{"module.layer1.0.bn1.bn.0.foo": torch.zeros(3)}))


def test_reference_import_into_a_model_built_on_meta_and_emptied():
    """After to_empty() the precision_set buffers hold uninitialized memory, which the import kept as
    "the model's own value" and the load then refused (or failed decoding with a bit-width error)."""
    src = _randomize(_small(precisions=[4, 8]), seed=7)
    with torch.device("meta"):
        model = _small(precisions=[4, 8])
    model.to_empty(device="cpu")
    model.normalize.load_state_dict(src.normalize.state_dict())  # (the checkpoint has no normalization)
    load_reference_state_dict(model, _as_reference(src))
    assert torch.equal(model.layer1[0].conv1.precision_set, src.layer1[0].conv1.precision_set)
    want, got = _outputs(src, [4, 8]), _outputs(model.eval(), [4, 8])
    assert torch.equal(want[4], got[4]) and torch.equal(want[8], got[8])


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


# ---------------------------------------------------------------------------- exact import
FLOAT = QuantPolicy(zero_point="float", shared_act_range=True)


def _inexact_ranges(n, seed):
    """n (zero point, range) float32 pairs with (zp + range) - zp != range, as trained reference
    ranges can be (zp: an EMA of batch minima, any sign)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        zp = torch.rand(1, generator=g) * 2 - 1
        rng = 0.5 + 3 * torch.rand(1, generator=g)
        if ((zp + rng) - zp) != rng:
            out.append((zp, rng))
    return out


def _ref_qact(x, zp, rng, bits):
    """The reference's activation quantizer from its stored (zero point, range)."""
    qmax = 2**bits - 1
    s = torch.clamp(rng / qmax, min=1e-8)
    return torch.round(torch.clamp((x - zp) / s, 0, qmax)) * s + zp


def _ref_qweight(w, bits):
    qmax = 2**bits - 1
    flat = w.flatten(1)
    mn, mx = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    s = torch.clamp((mx - mn) / qmax, min=1e-8)
    return torch.round(torch.clamp((w - mn) / s, 0, qmax)) * s + mn


def _ref_forward(sd, x, bits, branch, mean, std):
    """Eval-mode forward of a reference PreActResNet with one block per stage, written from the
    reference's equations over its state_dict (keys without 'module.'): stem and shortcuts in full
    precision, the 3x3 block convs quantized at ``bits`` (None: full precision), BN branch ``branch``."""
    def bn(t, name):
        p = f"{name}.bn.{branch}."
        return F.batch_norm(t, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                            training=False, eps=1e-5)

    def qconv(t, name, stride):
        w = sd[name + ".weight"]
        if bits is not None:
            t = _ref_qact(t, sd[name + ".quantize_input.running_zero_point"].reshape(()),
                          sd[name + ".quantize_input.running_range"].reshape(()), bits)
            w = _ref_qweight(w, bits)
        return F.conv2d(t, w, stride=stride, padding=1)

    out = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    out = F.conv2d(out, sd["conv1.weight"], padding=1)
    for i, stride in zip(range(1, 5), (1, 2, 2, 2)):
        b = f"layer{i}.0"
        o = F.relu(bn(out, b + ".bn1"))
        short = F.conv2d(out, sd[b + ".shortcut.weight"], stride=stride) if b + ".shortcut.weight" in sd else out
        o = qconv(o, b + ".conv1", stride)
        o = qconv(F.relu(bn(o, b + ".bn2")), b + ".conv2", 1)
        out = o + short
    out = F.relu(bn(out, "bn"))
    return F.linear(F.adaptive_avg_pool2d(out, 1).flatten(1), sd["linear.weight"], sd["linear.bias"])


def test_imported_ranges_give_the_references_scale_when_zp_plus_range_is_inexact():
    """Issue 12: the scale must be range / (2^b - 1) from the stored range, not from (zp + range) - zp.
    Inputs one to three ulps from the reference grid's rounding ties tell the two apart."""
    precisions = [4, 8]
    ref_sd = _as_reference(_randomize(_small(precisions, policy=FLOAT), seed=7))
    names = [k[len("module."):-len(".quantize_input.running_range")] for k in ref_sd
             if k.endswith("quantize_input.running_range")]
    for name, (zp, rng) in zip(names, _inexact_ranges(len(names), seed=8)):
        ref_sd[f"module.{name}.quantize_input.running_zero_point"] = zp.reshape(1, 1, 1, 1)
        ref_sd[f"module.{name}.quantize_input.running_range"] = rng.reshape(1, 1, 1, 1)
    model = load_reference_state_dict(_small(precisions, policy=FLOAT), ref_sd).eval()
    tested = 0
    for name, m in model.named_modules():
        if not isinstance(m, QConv2d):
            continue
        zp = ref_sd[f"module.{name}.quantize_input.running_zero_point"].reshape(())
        rng = ref_sd[f"module.{name}.quantize_input.running_range"].reshape(())
        for bits in precisions:
            s = rng / (2**bits - 1)
            ties = zp + (torch.arange(2**bits - 1) + 0.5) * s
            x = torch.cat([ties, *(torch.nextafter(ties, ties + d) for d in (1.0, -1.0))])
            x = torch.cat([x, *(torch.nextafter(x, x + d) for d in (1.0, -1.0))])
            got = m.input_quant(x, bits, (bits, bits))
            assert torch.equal(got, _ref_qact(x, zp, rng, bits)), (name, bits)
            # the test can fail: the scale from (zp + range) - zp puts some of these on other codes
            tested += int(not torch.equal(_ref_qact(x, zp, (zp + rng) - zp, bits), got))
    assert tested > 0


def test_imported_reference_checkpoint_reproduces_the_references_eval_logits():
    """Whole model, every precision: dwq's eval logits equal the reference's equations evaluated on
    the reference-format state_dict (zero points with inexact zp + range in every quantized layer)."""
    precisions = [4, 5, 8]
    ref_sd = _as_reference(_randomize(_small(precisions, policy=FLOAT), seed=9), prefix="")
    names = [k[:-len(".quantize_input.running_range")] for k in ref_sd if k.endswith("quantize_input.running_range")]
    for name, (zp, rng) in zip(names, _inexact_ranges(len(names), seed=10)):
        ref_sd[f"{name}.quantize_input.running_zero_point"] = zp.reshape(1, 1, 1, 1)
        ref_sd[f"{name}.quantize_input.running_range"] = rng.reshape(1, 1, 1, 1)
    model = _small(precisions + [None], policy=FLOAT)
    load_reference_state_dict(model, ref_sd, reference_precisions=precisions).eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(11))
    mean, std = model.normalize.mean, model.normalize.std
    with torch.no_grad():
        for i, p in enumerate(precisions + [None]):
            branch = len(precisions) - 1 if p is None else i  # full precision: the reference's last BN
            want = _ref_forward(ref_sd, x, p, branch, mean, std)
            with dwq.precision(model, p):
                got = model(x)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_a_model_that_is_one_layer_imports():
    """Names were joined as f"{name}.entry": a model that is itself the layer (name "") looked for
    ".quantize_input.running_range" and refused the checkpoint's own entries as having no place."""
    conv = QConv2d(3, 4, 3, precisions=[4, 8], zero_point="float", shared_act_range=True)
    sd = {"weight": torch.randn(4, 3, 3, 3), "bias": torch.zeros(4),
          "quantize_input.running_zero_point": torch.full((1, 1, 1, 1), -1.0),
          "quantize_input.running_range": torch.full((1, 1, 1, 1), 2.0)}
    load_reference_state_dict(conv, sd)
    assert conv.input_quant.running_min.tolist() == [-1.0] and conv.input_quant.running_range.tolist() == [2.0]
    sbn = SwitchableBatchNorm2d(4, [4, 8])
    sd = {f"bn.{i}.{e}": torch.rand(4) for i in range(2) for e in ("weight", "bias", "running_mean", "running_var")}
    load_reference_state_dict(sbn, sd, reference_precisions=[4, 8])
    assert torch.equal(sbn.bn[1].running_mean, sd["bn.1.running_mean"])


def test_branch_map_errors_write_precisions_in_their_one_spelling():
    """The messages printed Python reprs ([(4, 8), 8], precision (4, 8)) where every other one writes 4w8a."""
    from dwq.models.reference_import import _branch_map
    from dwq.quant import normalize_set as ns

    with pytest.raises(RuntimeError, match=r"the model's precision set \[4w8a, 8\] cannot be the reference's"):
        _branch_map(ns([(4, 8), 8]), 2, None, "layer 'bn1'")
    with pytest.raises(RuntimeError, match=r"precision 4w8a of the model is not in the checkpoint's precision set "
                                           r"\[4, 8\]"):
        _branch_map(ns([(4, 8), 8]), 2, ns([4, 8]), "layer 'bn1'")
    with pytest.raises(RuntimeError, match=r"the model's precision set \[4w8a, 8, fp\] has 3"):
        _branch_map(ns([(4, 8), 8, None]), 2, None, "layer 'bn1'")


def test_build_models_pair_given_as_the_model_is_named():
    """The README offered build_model(...) as the model to import into; it returns (model, network),
    and the import failed with "'tuple' object has no attribute 'state_dict'"."""
    from dwq.models import build_model

    pair = build_model("PreActResNet18", "cifar10", [4, 8], switchable_bn=True, reference=True)
    with pytest.raises(TypeError, match=r"model must be an nn.Module, got a tuple; build_model returns \(model, "
                                        r"network\): take its first item"):
        load_reference_state_dict(pair, {}, reference_precisions=[4, 8])

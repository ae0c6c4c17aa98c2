"""Model zoo: forward/backward at several precisions, precision switching, switchable BN,
quantization policy, normalization defaults, the registry and the torchvision ResNet-50 import."""
import pytest
import torch
from torch import nn

import dwq
from dwq.models import (
    MODELS,
    QuantPolicy,
    get_model,
    load_torchvision_state_dict,
    preact_resnet18,
    resnet50,
    small_cnn,
    wide_resnet34_10,
)
from dwq.nn import QConv2d, QLinear, SwitchableBatchNorm2d
from conftest import torchvision_or_skip

PRECISIONS = [4, 8, (4, 8), None]




def _quantized_names(model):
    return {n for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}


def _init_ranges(model, x):
    """One train-mode forward per precision, so that eval mode has activation ranges."""
    model.train()
    with torch.no_grad():
        for p in dwq.precision_set(model):
            dwq.set_precision(model, p)
            model(x)
    model.eval()


@pytest.mark.parametrize("name,shape", [("small_cnn", (2, 1, 28, 28)), ("preact_resnet18", (2, 3, 16, 16))])
@pytest.mark.parametrize("p", PRECISIONS)
def test_forward_backward_small_models(name, shape, p):
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, precisions=PRECISIONS)
    dwq.set_precision(model, p)
    x = torch.rand(shape, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # The active BN branch gets gradients, the branches of the other precisions none.
    for m in model.modules():
        if isinstance(m, SwitchableBatchNorm2d):
            for i, bn in enumerate(m.bn):
                assert (bn.weight.grad is not None) == (i == PRECISIONS.index(p))
    assert all(w.grad is not None for n, w in model.named_parameters() if ".bn." not in n)


@pytest.mark.parametrize("name,shape", [("small_cnn", (2, 1, 28, 28)), ("preact_resnet18", (2, 3, 16, 16))])
def test_switching_precision_changes_outputs(name, shape):
    torch.manual_seed(1)
    model = get_model(name, precisions=[4, 8, None])
    x = torch.rand(shape)
    _init_ranges(model, x)
    # Give each BN branch its own statistics, so the comparison also sees the BN switch.
    outs = {}
    with torch.no_grad():
        for p in [4, 8, None]:
            with dwq.precision(model, p):
                outs[p] = model(x)
    assert not torch.allclose(outs[4], outs[8])
    assert not torch.allclose(outs[4], outs[None])
    # Same precision twice in eval mode: the same output.
    with torch.no_grad(), dwq.precision(model, 4):
        assert torch.equal(model(x), outs[4])


def test_weight_quantization_at_4_bits_differs_from_float_even_with_shared_bn():
    torch.manual_seed(2)
    model = small_cnn(precisions=[4, None], switchable_bn=False)
    assert not any(isinstance(m, SwitchableBatchNorm2d) for m in model.modules())
    x = torch.rand(2, 1, 28, 28)
    _init_ranges(model, x)
    with torch.no_grad():
        with dwq.precision(model, 4):
            y4 = model(x)
        with dwq.precision(model, None):
            yf = model(x)
    assert not torch.allclose(y4, yf)


def test_switchable_bn_uses_the_branch_of_the_current_precision():
    torch.manual_seed(3)
    model = preact_resnet18(precisions=[4, 6, 8])
    sbns = [m for m in model.modules() if isinstance(m, SwitchableBatchNorm2d)]
    assert len(sbns) == 2 * 8 + 1 and all(len(m.bn) == 3 for m in sbns)
    before = {n: b.clone() for n, b in model.state_dict().items() if "running_mean" in n}
    model.train()
    dwq.set_precision(model, 6)
    model(torch.rand(2, 3, 16, 16))
    after = model.state_dict()
    for n, b in before.items():
        changed = not torch.equal(b, after[n])
        assert changed == (".bn.1." in n), n  # branch 1 serves 6 bits; branches 0 and 2 untouched


def test_sbn_key_layout_matches_reference():
    keys = preact_resnet18(precisions=list(range(4, 17))).state_dict().keys()
    assert "layer1.0.bn1.bn.3.weight" in keys and "layer1.0.bn1.bn.12.running_var" in keys
    assert "layer1.0.bn1.weight" not in keys  # no dead parent parameters


def test_default_policies_follow_the_reference():
    pre = preact_resnet18(precisions=[4, None])
    q = _quantized_names(pre)
    assert len(q) == 16 and all(n.endswith(("conv1", "conv2")) and n.startswith("layer") for n in q)
    assert type(pre.conv1) is nn.Conv2d and type(pre.linear) is nn.Linear
    assert type(pre.layer2[0].shortcut) is nn.Conv2d

    small = small_cnn(precisions=[4])
    assert _quantized_names(small) == {"conv2", "conv3"}

    r50 = resnet50(precisions=[4], num_classes=10)
    q = _quantized_names(r50)
    assert "conv1" not in q and "fc" not in q
    assert len(q) == 16 * 3 + 4 and "layer1.0.downsample.0" in q


def test_policy_changes_which_layers_are_quantized():
    full = QuantPolicy(first_conv=True, shortcut=True, classifier=True)
    pre = preact_resnet18(precisions=[4, None], policy=full)
    q = _quantized_names(pre)
    assert len(q) == 16 + 1 + 3 + 1 and {"conv1", "linear", "layer3.0.shortcut"} <= q
    assert isinstance(pre.linear, QLinear)
    small = small_cnn(precisions=[4, None], policy=QuantPolicy(classifier=True))
    assert _quantized_names(small) == {"conv2", "conv3", "fc"}
    r50 = resnet50(precisions=[4], num_classes=10, policy=QuantPolicy())
    assert "layer1.0.downsample.0" not in _quantized_names(r50)
    # The quantized classifier really quantizes: its output differs from the float one at 2 bits.
    torch.manual_seed(4)
    small = small_cnn(precisions=[2, None], policy=QuantPolicy(first_conv=True, classifier=True))
    x = torch.rand(2, 1, 28, 28)
    _init_ranges(small, x)
    feats = torch.randn(2, 128)
    with torch.no_grad():
        with dwq.precision(small, 2):
            q_out = small.fc(feats)
        with dwq.precision(small, None):
            f_out = small.fc(feats)
    assert not torch.allclose(q_out, f_out)
    with pytest.raises(TypeError, match="QuantPolicy"):
        small_cnn(policy={"classifier": True})


def test_policy_zero_point_and_shared_range_reach_the_layers():
    model = small_cnn(precisions=[4, 8], policy=QuantPolicy(zero_point="float", shared_act_range=True))
    assert model.conv2.input_quant.zero_point == "float"
    assert model.conv2.input_quant.running_min.numel() == 1
    assert small_cnn(precisions=[4, 8]).conv2.input_quant.running_min.numel() == 3  # 4, 8 and the observed range


def test_wide_resnet34_10_forward_backward_tiny():
    torch.manual_seed(5)
    model = wide_resnet34_10(precisions=[4, None])
    n_params = sum(p.numel() for p in model.parameters())
    bn_params = sum(p.numel() for n, p in model.named_parameters() if ".bn." in n)
    # 46.16 M without the second set of BN parameters: WRN-34-10 of the literature.
    assert n_params - bn_params // 2 == 46_160_474
    q = _quantized_names(model)
    assert len(q) == 2 * 15 and type(model.block1.layer[0].shortcut) is nn.Conv2d
    dwq.set_precision(model, 4)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    y = model(x)
    y.sum().backward()
    assert y.shape == (2, 10) and torch.isfinite(x.grad).all()


def test_resnet50_forward_backward_tiny_and_parameter_count():
    torchvision = torchvision_or_skip("torchvision gives the reference parameter count")
    torch.manual_seed(6)
    model = resnet50(precisions=[4], switchable_bn=True)
    ref = torchvision.models.resnet50(weights=None)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    y = model(x)
    y[:, :5].sum().backward()
    assert y.shape == (2, 1000) and torch.isfinite(x.grad).all()


def test_resnet50_loads_a_torchvision_state_dict_into_every_branch(tmp_path):
    torchvision = torchvision_or_skip("needs torchvision's ResNet-50 as the source")
    torch.manual_seed(7)
    ref = torchvision.models.resnet50(weights=None, num_classes=10)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    path = tmp_path / "resnet50.pth"
    torch.save(ref.state_dict(), path)
    model = resnet50(num_classes=10, precisions=[4, None], weights_path=str(path)).eval()
    ref.eval()
    sd = model.state_dict()
    for i in range(2):
        assert torch.equal(sd[f"layer2.0.downsample.1.bn.{i}.running_var"], ref.layer2[0].downsample[1].running_var)
        assert torch.equal(sd[f"bn1.bn.{i}.weight"], ref.bn1.weight)
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad(), dwq.precision(model, None):
        ours = model(x)
        theirs = ref((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)

    # A plain-BN model takes the same file; a wrong head is refused by name.
    plain = resnet50(num_classes=10, precisions=[None], switchable_bn=False)
    load_torchvision_state_dict(plain, {"module." + k: v for k, v in ref.state_dict().items()})
    with pytest.raises(RuntimeError, match="fc.weight"):
        resnet50(num_classes=7, precisions=[None], weights_path=str(path))
    with pytest.raises(FileNotFoundError):
        resnet50(precisions=[None], weights_path=str(tmp_path / "missing.pth"))


def test_normalization_defaults_are_each_datasets_own():
    assert small_cnn().normalize.mean.tolist() == pytest.approx([0.1307])
    assert small_cnn().normalize.std.tolist() == pytest.approx([0.3081])
    c10 = preact_resnet18(num_classes=10, precisions=[None]).normalize
    c100 = preact_resnet18(num_classes=100, precisions=[None]).normalize
    # the published statistics (the reference's CIFAR-10 ones; CIFAR-100's and SVHN's own), std included: a
    # changed digit rescaled every input, and ε in normalized space, with no test failing
    assert c10.mean.tolist() == pytest.approx([0.4914, 0.4822, 0.4465])
    assert c10.std.tolist() == pytest.approx([0.2471, 0.2435, 0.2616])
    assert c100.mean.tolist() == pytest.approx([0.5071, 0.4865, 0.4409])
    assert c100.std.tolist() == pytest.approx([0.2673, 0.2564, 0.2762])
    svhn = preact_resnet18(precisions=[None], dataset="svhn").normalize
    assert svhn.mean.tolist() == pytest.approx([0.4377, 0.4438, 0.4728])
    assert svhn.std.tolist() == pytest.approx([0.1980, 0.2010, 0.1970])
    assert resnet50(precisions=[None]).normalize.std.tolist() == pytest.approx([0.229, 0.224, 0.225])
    custom = preact_resnet18(precisions=[None], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(custom.normalize(x), (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match="both mean and std"):
        preact_resnet18(precisions=[None], mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="channels"):
        preact_resnet18(precisions=[None], mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="unknown dataset"):
        preact_resnet18(precisions=[None], dataset="cifar1000")


def test_registry_and_bad_input():
    assert set(MODELS) == {"small_cnn", "preact_resnet18", "wide_resnet34_10", "resnet50"}
    assert type(get_model("PreActResNet18", precisions=[None])).__name__ == "PreActResNet"
    assert type(get_model("small-cnn", precisions=[None])).__name__ == "SmallCNN"
    with pytest.raises(ValueError, match="unknown network 'vgg16'.*preact_resnet18"):
        get_model("vgg16")
    with pytest.raises(ValueError, match="num_classes"):
        small_cnn(num_classes=0)
    model = small_cnn(precisions=[4, 8])
    with pytest.raises(ValueError, match="not in the model's precision set"):
        dwq.set_precision(model, 5)
    assert dwq.precision_set(model) == [4, 8]
    # Default precision set: the paper's RPT set 4..16.
    assert dwq.precision_set(small_cnn()) == list(range(4, 17))


@pytest.mark.parametrize("build", [small_cnn, preact_resnet18, wide_resnet34_10, resnet50])
def test_flags_and_policies_are_checked_not_coerced(build):
    # bool("no") built switchable BNs, policy={} fell back to the default policy, classifier="no"
    # quantized the classifier; a numpy int of classes was refused where precisions take numpy ints
    with pytest.raises(TypeError, match="switchable_bn must be True or False, got 'no'"):
        build(precisions=[4, None], switchable_bn="no")
    with pytest.raises(TypeError, match="policy must be a dwq.models.QuantPolicy, got dict"):
        build(precisions=[4, None], policy={})
    with pytest.raises(ValueError, match="num_classes must be a positive int, got True"):
        build(precisions=[4, None], num_classes=True)


def test_quant_policy_flags_must_be_bools_and_num_classes_may_be_a_numpy_int():
    np = pytest.importorskip("numpy", reason="numpy is not installed")
    for field in ("first_conv", "shortcut", "classifier"):  # ('no' is truthy: it quantized the layer)
        with pytest.raises(TypeError, match=f"QuantPolicy: {field} must be True or False, got 'no'"):
            QuantPolicy(**{field: "no"})
    # shared_act_range and zero_point were taken as given and refused at model build, naming ActQuantizer
    with pytest.raises(TypeError, match="QuantPolicy: shared_act_range must be True or False, got 'no'"):
        QuantPolicy(shared_act_range="no")
    with pytest.raises(ValueError, match=r"QuantPolicy: zero_point must be one of \('int', 'float'\), got 'xyz'"):
        QuantPolicy(zero_point="xyz")
    model = small_cnn(num_classes=np.int64(7), precisions=[4])
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 7.0"):
        small_cnn(num_classes=7.0)


def test_random_precision_inference_runs_on_a_model():
    torch.manual_seed(8)
    model = small_cnn(precisions=[4, 6, 8])
    x = torch.rand(2, 1, 28, 28)
    _init_ranges(model, x)
    rpi = dwq.RandomPrecision(model, seed=0)
    seen = set()
    with torch.no_grad():
        for _ in range(12):
            y = rpi(x)
            with dwq.precision(model, rpi.last_precision):
                assert torch.equal(y, model(x))
            seen.add(rpi.last_precision)
    assert seen == {4, 6, 8}


def test_precisions_must_be_a_list():
    """A string or a lone precision is refused by name (``list("48")`` made the set [4, 8] silently)."""
    for bad in ("48", "fp", 4, None.__class__):
        with pytest.raises(ValueError, match="precisions must be a list of precisions"):
            get_model("small_cnn", precisions=bad, width=4)
    with pytest.raises(ValueError, match="precisions must be a list of precisions"):
        dwq.models.build_model("small_cnn", "mnist5k", "48", switchable_bn=True, width=4)
    model = get_model("small_cnn", precisions=(p for p in (4, None)), width=4)
    assert dwq.precision_set(model) == [4, None]


def test_normalize_refuses_integer_images_and_takes_float64_ones():
    """uint8 pixels in 0..255 were promoted to float and classified (confident nonsense); a float64
    batch (numpy's default) failed in the first conv with a message naming no input."""
    torch.manual_seed(0)
    model = small_cnn(precisions=[4, None], width=4).eval()
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"expected float images in \[0, 1\], got dtype torch.uint8"):
        model((x * 255).to(torch.uint8))
    with torch.no_grad():
        assert torch.equal(model(x.double()), model(x))


def test_normalize_statistics_must_be_finite():
    for mean, std in (([float("nan")], [1.0]), ([0.0], [float("inf")]), ([], [])):
        with pytest.raises(ValueError, match="Normalize: mean"):
            dwq.models.Normalize(mean, std)


def test_models_build_on_the_meta_device_and_load_after_to_empty():
    """``with torch.device("meta")`` (a large model without memory) failed in Normalize's std check,
    which cannot read a meta tensor."""
    src = small_cnn(precisions=[4, None], width=4).eval()
    with torch.device("meta"):
        model = small_cnn(precisions=[4, None], width=4)
    assert {t.device.type for t in model.state_dict().values()} == {"meta"}
    model.to_empty(device="cpu").load_state_dict(src.state_dict())
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), src(x))


def test_normalize_resets_to_its_statistics_after_to_empty():
    """Normalize had no reset_parameters: after the meta recipe (to_empty, then every module's
    reset_parameters) its mean and std held whatever memory to_empty gave them."""
    with torch.device("meta"):
        model = small_cnn(precisions=[4, None], width=2)
    model.to_empty(device="cpu")
    with torch.no_grad():
        model.normalize.mean.fill_(float("nan"))
        model.normalize.std.fill_(0.0)
    for mod in model.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    fresh = small_cnn(precisions=[4, None], width=2)
    assert torch.equal(model.normalize.mean, fresh.normalize.mean)
    assert torch.equal(model.normalize.std, fresh.normalize.std)


def test_bad_width_and_dataset_are_named():
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=f"width must be a positive int .*got {bad}"):
            small_cnn(precisions=[4], width=bad)
    import numpy as np  # (numpy ints are taken, as for num_classes)

    assert small_cnn(precisions=[4], width=np.int64(8)).conv1.out_channels == 8
    with pytest.raises(ValueError, match="unknown dataset None; choose one of"):
        dwq.models.build_model("small_cnn", None, [4], True)
    # width is small_cnn's: another network dropped it silently (preact_resnet18 kept 64 channels)
    with pytest.raises(ValueError, match="width is small_cnn's option; preact_resnet18 has none, got width=16"):
        dwq.models.build_model("preact_resnet18", "cifar10", [4], True, width=16)
    with pytest.raises(ValueError, match="unknown dataset None for normalization"):
        dwq.models.dataset_stats(None)


@pytest.mark.parametrize("content,found", [(b"hello world", "found a file starting with"),
                                           (b"PK\x03\x04 truncated", r"truncated or damaged: BadZipFile")])
def test_resnet50_damaged_weights_file_is_named(tmp_path, content, found):
    """A damaged --pretrained file failed with torch's bare KeyError/EOFError, outside the CLI's
    one-line errors."""
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match=found) as e:
        resnet50(precisions=[None], weights_path=str(path))
    assert str(e.value).startswith(f"{path} is not a loadable torchvision state_dict")


def test_plain_state_dict_without_bn_counters_counts_as_trained():
    """torchvision's original ResNet-50 weights predate num_batches_tracked: the import kept the model's
    own 0, so every branch warned at eval that it normalizes with initial statistics, which it did not."""
    src = small_cnn(precisions=[None], switchable_bn=False, width=4)
    sd = {k: v for k, v in src.state_dict().items()
          if not k.endswith(("num_batches_tracked", "precision_set")) and ".input_quant." not in k}
    model = load_torchvision_state_dict(small_cnn(precisions=[4, None], width=4), sd)
    assert model.bn1.untrained_precisions() == []
    # and after a save and load (the counter torch kept, 0, was what it saved)
    again = small_cnn(precisions=[4, None], width=4)
    again.load_state_dict(model.state_dict())
    assert again.bn1.untrained_precisions() == []
    # A file with its counters keeps them: a source that never trained stays untrained.
    model = load_torchvision_state_dict(small_cnn(precisions=[4, None], width=4),
                                        dict(sd, **{f"bn{i}.num_batches_tracked": torch.tensor(0) for i in (1, 2, 3)}))
    assert model.bn1.untrained_precisions() == ["4", "fp"]


def test_network_names_are_matched_whatever_their_separators():
    """"PreActResNet-18" worked but the paper's "WRN-34-10" and "WideResNet-34-10" were unknown."""
    canonical = dwq.models.canonical_network
    for name in ("WRN-34-10", "WideResNet-34-10", "wide_resnet_34_10", "wrn32"):
        assert canonical(name) == "wide_resnet34_10", name
    assert canonical("PreAct-ResNet-18") == "preact_resnet18" and canonical("ResNet-50") == "resnet50"
    with pytest.raises(ValueError, match="unknown network 'WRN-28-10'"):
        canonical("WRN-28-10")

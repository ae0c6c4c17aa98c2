"""dwq.deploy.convert: the integer model computes the fake-quant model's eval-mode forward at every
precision, for the four model families, and is driven by the same precision controls.

Tolerance (stated once): logits agree within REL_TIGHT of the largest |logit| where the two paths see
the same codes (widths <= 4 here: no code differs, except in ResNet-50 on some CPUs: test_resnet50),
and within REL_LOOSE elsewhere. The only source of
difference is a value within float rounding of a quantization midpoint rounding to neighbouring codes
on the two paths (DESIGN.md: both compute in float32, in a different order); in a deep network a few
such ties at 8..16 bits cascade into later layers (``code_agreement`` shows where they start).
"""
import re

import pytest
import torch
from deploy_models import calibrated, trained_mnist_cnn
from torch import nn

import dwq
from dwq.deploy import ConversionError, IntegerModel, check_conversion, code_agreement, compare, convert
from dwq.models import QuantPolicy, preact_resnet18, resnet50, small_cnn, wide_resnet34_10
from dwq.nn import QConv2d, QLinear
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

REL_TIGHT = 1e-5
REL_LOOSE = 5e-2
ALL_QUANTIZED = QuantPolicy(first_conv=True, shortcut=True, classifier=True)


def assert_agrees(model, int_model, x, low_bits):
    """Logits within the stated tolerance at every precision of the integer model: the loose one only
    where codes can differ (values within rounding of a midpoint), never at full precision."""
    r = compare(model, int_model, x)
    assert list(r) == [dwq.quant.precision_name(p) for p in int_model.precisions]
    for name, v in r.items():
        assert v["rel_max_diff"] <= (REL_TIGHT if name in low_bits or name == "fp" else REL_LOOSE), (name, v)


@pytest.mark.parametrize("policy", [QuantPolicy(), ALL_QUANTIZED], ids=["default_policy", "all_quantized"])
def test_small_cnn_every_kind_of_precision(policy):
    m = calibrated(small_cnn(precisions=[2, 3, (4, 8), 8, 12, 16, None], width=8, policy=policy), (32, 1, 28, 28))
    im = convert(m)
    assert isinstance(im, IntegerModel) and im.precisions == [2, 3, (4, 8), 8, 12, 16, None]
    assert_agrees(m, im, torch.rand(64, 1, 28, 28), low_bits={"2", "3", "4w8a"})


def test_small_cnn_sends_codes_between_quantized_layers():
    """conv2 -> BN -> ReLU -> maxpool -> conv3: conv2's epilogue emits conv3's input codes."""
    m = calibrated(small_cnn(precisions=[4, 12, None], width=8), (32, 1, 28, 28))
    im = convert(m)
    seen = {}
    im.layers["conv3"].register_forward_pre_hook(lambda mod, inp: seen.update({str(mod.precision): inp[0].dtype}))
    for p in (4, 12, None):
        with dwq.precision(im, p):
            im(torch.rand(2, 1, 28, 28))
    assert seen == {"(4, 4)": torch.uint8, "(12, 12)": torch.int32, "None": torch.float32}
    plan = im.layers["conv2"].plans[0]
    assert plan.relu and plan.out_bits == 4 and plan.affine_scale is not None  # bn2 + ReLU folded, requantized


def test_preact_resnet18_default_policy():
    m = calibrated(preact_resnet18(precisions=[2, 8, None]), (4, 3, 32, 32))
    im = convert(m)
    x = torch.rand(4, 3, 32, 32)
    assert_agrees(m, im, x, low_bits={"2"})
    # bn1 + ReLU of each block emit conv1's codes; conv1's epilogue folds bn2 + ReLU and emits conv2's codes
    assert im.layers["layer1_0_bn1"].out_bits == [2, 8, None]
    assert im.layers["layer1_0_conv1"].plans[1].out_bits == 8
    assert im.layers["layer1_0_conv2"].plans[1].out_bits is None  # then the residual add, in float
    agree = code_agreement(m, im, x, 2)
    assert sum(v["differ"] for v in agree.values()) == 0 and len(agree) == 16


def test_preact_resnet18_all_quantized_mixed_precision():
    m = calibrated(preact_resnet18(precisions=[3, (4, 8), 16], policy=ALL_QUANTIZED), (4, 3, 32, 32))
    im = convert(m)
    x = torch.rand(4, 3, 32, 32)
    assert_agrees(m, im, x, low_bits={"3"})
    agree = code_agreement(m, im, x, 16)  # ties at 16 bits: a handful in the first layer, at most one code apart
    first = agree["conv1"]
    assert first["differ"] <= 1e-3 * first["codes"] and first["max_step"] <= 1


def test_wide_resnet34_10():
    m = calibrated(wide_resnet34_10(precisions=[4, None]), (2, 3, 32, 32))
    im = convert(m)
    assert_agrees(m, im, torch.rand(2, 3, 32, 32), low_bits=set())


def test_resnet50():
    m = calibrated(resnet50(num_classes=10, precisions=[4, 8]), (2, 3, 64, 64))
    im = convert(m)
    x = torch.rand(2, 3, 64, 64)
    agree = code_agreement(m, im, x, 4)
    # every quantized layer, also each block's conv3, which the integer model runs fused with the residual
    # add (the hook that reads its codes makes it run alone; they were dropped, and a later layer was named
    # as the first to differ)
    assert sorted(agree) == sorted(n for n, q in m.named_modules() if isinstance(q, (QConv2d, QLinear)))
    first = next((v for v in agree.values() if v["differ"]), None)
    if first is None:
        assert_agrees(m, im, x, low_bits={"4"})
    else:
        # Whether a 4-bit code meets a tie depends on the CPU's float conv (an AVX2-only EPYC rounds
        # one input of layer3.2.conv3 at 8.499998 to 8, the engine to 9), and 16 residual blocks carry
        # that one code into the logits: then the tie must be all that differs where differences start.
        assert first["differ"] <= 1e-3 * first["codes"] and first["max_step"] <= 1, first
        assert compare(m, im, x)["8"]["rel_max_diff"] <= REL_LOOSE
    # downsample: conv -> BN in the epilogue, float out for the residual add
    assert im.layers["layer1_0_downsample_0"].plans[0].affine_scale is not None


def test_trained_model_top1_agreement():
    """A briefly trained RPT small CNN on 1,000 MNIST-5k test images: top-1 agrees on >= 99.9% at every precision."""
    from dwq.data import load_mnist5k

    m = trained_mnist_cnn([2, 4, 8])
    x, _ = load_mnist5k("test").tensors
    r = compare(m, convert(m), x)
    for name, v in r.items():
        assert v["n"] == 1000 and v["top1_agreement"] >= 0.999, (name, v)
        assert v["rel_max_diff"] <= 1e-2, (name, v)


# ----------------------------------------------------------------------------- precision controls
def test_precision_controls_drive_the_integer_model():
    m = calibrated(small_cnn(precisions=[2, 4, 8], width=8), (16, 1, 28, 28))
    im = convert(m, precisions=[4, 8])
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        dwq.set_precision(im, 4)
        y4 = im(x)
        with dwq.precision(im, 8):
            y8 = im(x)
            assert dwq.get_precision(im) == 8
        assert dwq.get_precision(im) == 4
        assert not torch.equal(y4, y8)
        with pytest.raises(ValueError, match="not in the model's precision set"):
            dwq.set_precision(im, 2)
        rpi = dwq.RandomPrecision(im, generator=torch.Generator().manual_seed(3))
        draws = []
        for _ in range(12):
            y = rpi(x)
            draws.append(rpi.last_precision)
            assert torch.equal(y, y4 if rpi.last_precision == 4 else y8)
    g = torch.Generator().manual_seed(3)
    assert draws == [[4, 8][int(torch.randint(2, (1,), generator=g))] for _ in range(12)]
    assert set(draws) == {4, 8}
    with pytest.raises(ValueError, match="seed or generator"):
        dwq.RandomPrecision(im, seed=1, generator=torch.Generator())


def test_the_integer_model_is_a_snapshot_and_loads_state_dicts():
    """convert copies what it keeps in float (stem, classifier, bias, Normalize, full-precision weights):
    training the source on does not reach the integer model, nor the reverse. load_state_dict rebuilds
    the derived state (packed weights, cached op arguments, the codes' ReLU floor), so the loaded model
    computes what a model converted from the loaded source computes, and what its saved file reloads to."""
    policy = QuantPolicy(classifier=True)
    m = calibrated(small_cnn(precisions=[4, None], width=4, policy=policy), (8, 1, 28, 28))
    im = convert(m)
    x = torch.rand(4, 1, 28, 28)
    before = {}
    with torch.no_grad():
        for p in im.precisions:
            with dwq.precision(im, p):
                before[p] = im(x)
        for t in m.parameters():
            t.mul_(-1.5).add_(0.25)
        for b in m.buffers():
            if b.is_floating_point():
                b.add_(0.5)
        for p in im.precisions:
            with dwq.precision(im, p):
                assert torch.equal(im(x), before[p]), p
    torch.manual_seed(1)
    other = convert(calibrated(small_cnn(precisions=[4, None], width=4, policy=policy), (8, 1, 28, 28), seed=1))
    im2 = convert(calibrated(small_cnn(precisions=[4, None], width=4, policy=policy), (8, 1, 28, 28)))
    with torch.no_grad(), dwq.precision(im2, 4):
        im2(x)  # builds the cached op arguments before the load
    im2.load_state_dict(other.state_dict())
    with torch.no_grad():
        for p in im2.precisions:
            with dwq.precision(im2, p), dwq.precision(other, p):
                assert torch.equal(im2(x), other(x)), p


def test_float_affine_cached_arguments_follow_the_model():
    """PreActResNet's float batch norms feed codes through cached per-precision arguments (rows of the
    buffers): a precision switch picks its own row, a loaded state dict and a copy made by .to() (new
    tensors) are what the next forward uses, never the arguments cached before."""
    from dwq.deploy.layers import FloatAffine

    torch.manual_seed(0)
    m = calibrated(preact_resnet18(num_classes=10, precisions=[4, 8, None]), (4, 3, 32, 32))
    im = convert(m)
    affines = [mod for mod in im.modules() if isinstance(mod, FloatAffine) and any(b for b in mod.out_bits)]
    assert affines, "PreActResNet18 has float batch norms that feed quantized convs"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = {p: im(x) for p in (4, 8) if not dwq.set_precision(im, p)}
        for p in (8, 4):  # (cached at 8 by the loop above: switching back must not reuse it)
            dwq.set_precision(im, p)
            assert torch.equal(im(x), want[p]), p
        state = {k: v.clone() for k, v in im.state_dict().items()}
        im._apply(lambda t: t.clone())  # new tensors (as .to(device) makes), then changed
        assert torch.equal(im(x), want[4])
        for a in affines:
            a.bias.add_(3.0)
        assert not torch.equal(im(x), want[4]), "the forward used the arguments cached before _apply"
        im.load_state_dict(state)
        assert torch.equal(im(x), want[4])


# ----------------------------------------------------------------------------- what does not convert
def test_precision_outside_the_set_is_an_error():
    m = calibrated(small_cnn(precisions=[4, 8], width=8), (8, 1, 28, 28))
    with pytest.raises(ConversionError, match="precision 6 is not in the model's precision set"):
        convert(m, precisions=[4, 6])
    from dwq.deploy import calibrated_precisions

    shared = calibrated(small_cnn(precisions=[4, 8], width=8, policy=QuantPolicy(shared_act_range=True)),
                        (8, 1, 28, 28))
    for model in (m, shared):  # (a shared range has a slot for any width; 6 is still not in the set)
        with pytest.raises(ConversionError, match=r"precision 6 is not in the model's precision set \[4, 8\]"):
            calibrated_precisions(model, [6])
    for bad in (4, "48"):  # a lone precision, a string ('48' would have been the set [4, 8])
        with pytest.raises(ValueError, match="precisions must be a list of precisions"):
            calibrated_precisions(m, bad)
        with pytest.raises(ValueError, match="precisions must be a list of precisions"):
            check_conversion(m, torch.rand(2, 1, 28, 28), precisions=bad)


class _KeywordCall(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_cnn(precisions=[8], width=4)
        self.head = QLinear(10, 3, precisions=[8])

    def forward(self, x):
        return self.head(x=self.body(x))


class _InplaceReluReadAgain(nn.Module):
    def __init__(self, functional):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=[8])
        self.relu, self.functional = nn.ReLU(inplace=True), functional

    def forward(self, x):
        y = self.c1(x)
        r = torch.nn.functional.relu(y, inplace=True) if self.functional else self.relu(y)
        return (self.c2(r) + y).flatten(1)  # eager: y is r here


class _InplaceReluOnAlias(nn.Module):
    """A pre-activation block whose norm is a placeholder: the in-place ReLU rectifies y itself."""

    def __init__(self, norm):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=[8])
        self.norm, self.relu = norm, nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.c1(x)
        return (self.c2(self.relu(self.norm(y))) + y).flatten(1)  # eager: y is rectified here


def test_inplace_relu_on_an_alias_read_again_is_refused():
    """The check follows the ReLU's input back through nn.Identity / eval Dropout (which return their
    input itself): it looked at the alias's readers only, so these converted into a model whose logits
    differed from eager's by about 20% of their scale, at every precision."""
    for norm in (nn.Identity(), nn.Dropout(0.1)):
        m = calibrated(_InplaceReluOnAlias(norm), (4, 3, 8, 8))
        with pytest.raises(ConversionError, match=r"layer 'relu' \(ReLU\): an in-place ReLU whose input is read "
                                                  r"again after it \(by 'add'\)"):
            convert(m)


def test_inplace_relu_read_again_is_refused():
    """The integer model treats ReLU as a function of its input: an in-place ReLU whose input is read
    after it (eager PyTorch then reads the ReLU's output) is a ConversionError, not a silent difference."""
    for functional, where in ((False, r"layer 'relu' \(ReLU\)"), (True, r"'relu' \(call_function\)")):
        m = calibrated(_InplaceReluReadAgain(functional), (4, 3, 8, 8))
        with pytest.raises(ConversionError, match=where + ": an in-place ReLU whose input is read again after it"):
            convert(m)


def test_input_by_keyword_and_integer_images_are_named_errors():
    m = calibrated(_KeywordCall(), (4, 1, 28, 28))
    with pytest.raises(ConversionError, match=r"cannot convert layer 'head' \(QLinear\): its input is passed by keyword"):
        convert(m)
    im = convert(calibrated(small_cnn(precisions=[8], width=4, policy=QuantPolicy(first_conv=True)), (4, 1, 28, 28)))
    with pytest.raises(ValueError, match="x must be floating-point images, got torch.uint8"):
        im(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    x = torch.rand(2, 1, 28, 28)
    y = im(x)
    for cast in (im.half, im.double, lambda: im.to(torch.bfloat16)):  # refused before anything changes
        with pytest.raises(ValueError, match="computes in float32 and cannot be cast to torch"):
            cast()
        assert torch.equal(im(x), y)


def test_wrong_input_is_named_at_every_precision_and_any_float_dtype_runs():
    """A first layer that is an integer conv / linear checks its input: an unbatched image or a wrong
    channel count was blamed on the packed weights (or, at fp, ran on and failed in a later layer), and a
    half / float64 batch failed with a message that depended on the precision."""
    ps = [4, 12, None]
    conv = convert(calibrated(nn.Sequential(QConv2d(3, 4, 3, precisions=ps), nn.Flatten(1),
                                            QLinear(16, 2, precisions=ps)), (4, 3, 4, 4)))
    mlp = convert(calibrated(nn.Sequential(QLinear(6, 2, precisions=ps)), (4, 6)))
    x = torch.rand(2, 3, 4, 4)
    for p in ps:
        with torch.no_grad(), dwq.precision(conv, p), dwq.precision(mlp, p):
            for bad in (x[0], x[:, :2]):
                msg = f"layer '0' (IntConv2d): expected input [N, 3, H, W], got shape {tuple(bad.shape)}"
                with pytest.raises(ValueError, match=re.escape(msg)):
                    conv(bad)
            with pytest.raises(ValueError, match=r"layer '0' \(IntLinear\): expected input \[..., 6\], got shape"):
                mlp(torch.rand(2, 7))
            y = conv(x)
            for dtype in (torch.float16, torch.float64):
                xd = x.to(dtype)
                assert torch.equal(conv(xd), conv(xd.float())), (p, dtype)
            assert y.dtype == torch.float32


def test_uncalibrated_precision_names_the_layer():
    m = small_cnn(precisions=[4, 8], width=8).eval()
    with pytest.raises(ConversionError, match="layer 'conv2': no activation range at precision 4"):
        convert(m)


def test_nan_or_infinite_weights_and_ranges_name_the_layer():
    """A diverged run's checkpoint: NaN or infinite weights / activation ranges failed with the quantizer's
    message (no layer named; a raw RuntimeError for inf weights), or converted an infinite range silently."""
    for key, value, what in (("conv2.weight", float("nan"), "its weights cannot be quantized at 4 bits"),
                             ("conv2.weight", float("inf"), "its weights cannot be quantized at 4 bits"),
                             ("conv3.input_quant.running_max", float("nan"), "its activation range at precision 4"),
                             ("conv3.input_quant.running_max", float("inf"), "its activation range at precision 4")):
        m = calibrated(small_cnn(precisions=[4], width=4), (4, 1, 28, 28))
        with torch.no_grad():
            m.state_dict()[key].view(-1)[0] = value
        with pytest.raises(ConversionError, match=f"layer '{key.split('.')[0]}': {what}"):
            convert(m)


def test_float_zero_point_is_refused():
    m = calibrated(small_cnn(precisions=[4], width=8, policy=QuantPolicy(zero_point="float")), (8, 1, 28, 28))
    with pytest.raises(ConversionError, match="conv2.*zero_point='float'"):
        convert(m)


class _WithGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_cnn(precisions=[4], width=8)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.body(x))


def test_unsupported_layer_is_named():
    m = _WithGelu()
    calibrated(m.body, (8, 1, 28, 28))
    with pytest.raises(ConversionError, match=r"layer 'act' \(GELU\)"):
        convert(m.eval())


class _AddsOne(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.fc = QConv2d(1, 2, 3, precisions=[4, 8]), QLinear(8, 3, precisions=[4, 8])

    def forward(self, x):
        return self.fc((self.c(x) + 1).flatten(1))


class _ReturnsItsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = QConv2d(1, 2, 3, precisions=[4, 8])

    def forward(self, x):
        return x


def test_a_constant_operand_is_named_and_every_refusal_is_a_conversion_error():
    """'a constant tensor argument 1 is not supported' named neither the node nor its module (and called
    an int a tensor); a model returning its input raised a plain ValueError, which callers catching
    ConversionError (dwq deploy) missed."""
    with pytest.raises(ConversionError, match=r"cannot convert 'add' \(call_function\).*: its argument 1 is a "
                                              r"constant \(int 1\)"):
        convert(calibrated(_AddsOne(), (2, 1, 4, 4)))
    with pytest.raises(ConversionError, match="_ReturnsItsInput: the program's output is its input"):
        convert(calibrated(_ReturnsItsInput(), (2, 1, 4, 4)))


def test_a_cast_that_would_turn_codes_into_floats_is_refused_and_a_codes_output_is_named():
    """.type(torch.float32) cast the codes and zero points too: the next forward failed inside an op, and
    a save of it wrote a file load refused. An output that is a layer's codes (a hand-edited description)
    returned uint8 codes as logits."""
    im = convert(calibrated(small_cnn(precisions=[4, None], width=4), (4, 1, 28, 28)))
    before = {k: v.clone() for k, v in im.state_dict().items()}
    with pytest.raises(ValueError, match="holds integer codes and zero points, which cannot be cast to torch.float32"):
        im.type(torch.float32)
    assert all(torch.equal(v, im.state_dict()[k]) and v.dtype == im.state_dict()[k].dtype for k, v in before.items())
    codes_out, x = None, torch.rand(2, 1, 28, 28)
    for step in im.program:
        bad = IntegerModel(dict(im.layers), im.program, step["out"], im.info)
        dwq.set_precision(bad, 4)
        with torch.no_grad():
            try:
                y = bad(x)
            except ValueError as e:
                assert "holds integer codes" in str(e) and "malformed" in str(e)
                codes_out = step["out"]
                continue
        assert y.is_floating_point()
    assert codes_out is not None  # some step of the program hands codes on


def test_unsupported_conv_is_named():
    m = small_cnn(precisions=[4], width=8)
    m.conv2.groups = 2
    with pytest.raises(ConversionError, match="layer 'conv2'.*groups=1"):
        convert(m)


def test_check_conversion_reports_agreement_accuracy_latency_and_size():
    from dwq.data import load_mnist5k
    from dwq.deploy import check_conversion, format_check

    m = trained_mnist_cnn([2, 4, 8])
    x, y = load_mnist5k("test").tensors
    rep = check_conversion(m, x[:200], y[:200], [2, 8], latency_batch=50, budget_s=0.05)
    assert rep["precisions"] == ["2", "8"] and rep["latency_batch"] == 50
    for p in ("2", "8"):
        assert rep["agreement"][p]["n"] == 200 and rep["latency_ms"]["dwq_int"][p] > 0
        a = rep["accuracy"][p]
        assert abs(a["dwq_int"] - a["fake_quant"]) <= 1 - rep["agreement"][p]["top1_agreement"] + 1e-9
    text = format_check(rep, "demo")
    assert text.startswith("demo: logits against the fake-quant model on 200 images") and "speed-up" in text


def test_checks_of_agreement_refuse_empty_or_mismatched_batches():
    """An empty x failed with "torch.cat(): expected a non-empty list of Tensors" (compare,
    check_conversion after converting) or a bare max() error (code_agreement); batch_size=0 with
    "range() arg 3 must not be zero"; labels of another length with a size mismatch; latency_batch=-1
    timed x[:-1]."""
    from dwq.deploy import check_conversion

    m = calibrated(small_cnn(precisions=[4], width=4), (4, 1, 28, 28))
    im, x = convert(m), torch.rand(3, 1, 28, 28)
    empty = r"x holds no images \(shape \(0, 1, 28, 28\)\); give at least one"
    for fn, call in (("compare", lambda: compare(m, im, x[:0])), ("code_agreement", lambda: code_agreement(m, im, x[:0], 4)),
                     ("check_conversion", lambda: check_conversion(m, x[:0]))):
        with pytest.raises(ValueError, match=f"{fn}: {empty}"):
            call()
    with pytest.raises(ValueError, match="compare: batch_size must be an int >= 1, got 0"):
        compare(m, im, x, batch_size=0)
    with pytest.raises(ValueError, match=r"compare: y must be labels \[3\] \(one per image of x\), got shape \(2,\)"):
        compare(m, im, x, y=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="check_conversion: latency_batch must be an int >= 1, got -1"):
        check_conversion(m, x, latency_batch=-1)
    # budget_s="0.5" failed after converting and comparing ('float' + 'str'); precisions=[] "passed"
    # with an empty report, compare(..., []) returned {}
    with pytest.raises(ValueError, match="check_conversion: budget_s must be a finite number of seconds >= 0, got '0.5'"):
        check_conversion(m, x, budget_s="0.5")
    with pytest.raises(ValueError, match="check_conversion: precisions must not be empty"):
        check_conversion(m, x, precisions=[])
    with pytest.raises(ValueError, match="compare: precisions must not be empty"):
        compare(m, im, x, [])


def test_a_random_precision_wrapper_is_refused_where_a_precision_is_asked():
    """compare(fq, RandomPrecision(im), x, [2]) reported figures labelled 2 of forwards at every
    precision of the set (a max |diff| of 0.13 where the plain integer model gave 1e-7), and
    latency_per_precision timed them: dwq.precision set 2, the wrapper drew again at each forward."""
    from dwq.deploy import latency_per_precision

    m = calibrated(small_cnn(precisions=[2, 4, None], width=4), (4, 1, 28, 28))
    im, x = convert(m), torch.rand(3, 1, 28, 28)
    rpi = dwq.RandomPrecision(im, seed=1)
    msg = r"dwq.precision: the model holds a dwq.RandomPrecision, .* would not run at 2; pass the model it wraps"
    for call in (lambda: compare(m, rpi, x, [2]), lambda: latency_per_precision(rpi, x, [2], budget_s=0.0),
                 lambda: dwq.precision(nn.Sequential(dwq.RandomPrecision(m)), 2)):
        with pytest.raises(ValueError, match=msg):
            call()
    assert compare(m, rpi.model, x, [2])["2"]["max_abs_diff"] < 1e-4


def test_check_conversion_skips_precisions_without_a_range():
    from dwq.deploy import calibrated_precisions, check_conversion, format_check

    m = small_cnn(precisions=[2, 4, None], width=8).eval()  # never trained: no activation range anywhere
    assert calibrated_precisions(m) == [None]
    rep = check_conversion(m, torch.rand(16, 1, 28, 28), precisions=[2, 4], latency_batch=4, budget_s=0.01)
    assert rep["precisions"] == [] and rep["skipped"] == ["2", "4"]
    assert "not converted (no activation range: never trained): 2 4" in format_check(rep)


def test_precision_never_trained_at_converts_with_the_observed_range():
    """Eval mode quantizes a precision that saw no training batch with the range observed over all
    training batches (ActQuantizer's observed slot); the integer model does the same."""
    from dwq.deploy import calibrated_precisions, check_conversion

    m = small_cnn(precisions=[2, 4, None], width=8).train()
    with torch.no_grad(), dwq.precision(m, 4):
        m(torch.rand(8, 1, 28, 28))
    m.eval()
    assert calibrated_precisions(m) == [2, 4, None]
    x = torch.rand(16, 1, 28, 28)
    rep = check_conversion(m, x, precisions=[2, 4], latency_batch=4, budget_s=0.01)
    assert rep["precisions"] == ["2", "4"] and rep["skipped"] == []
    with pytest.warns(UserWarning, match=r"convert: the switchable batch norm never saw a training batch at "
                                         r"precision\(s\) 2, fp; their folded statistics are the initial ones"):
        int_model = dwq.deploy.convert(m, [2, 4, None])
    with dwq.precision(m, 2), dwq.precision(int_model, 2), torch.no_grad():
        ref, got = m(x), int_model(x)
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dwq.deploy.convert(m, [4])  # the trained branch alone: nothing to say


def test_info_is_checked_before_converting():
    """``info`` may add to what an artifact records, never overwrite it (a "precisions" that disagreed
    with the layers), and must be storable in its JSON header: refused by name before any work."""
    m = calibrated(small_cnn(precisions=[4, 8], width=8), (4, 1, 28, 28))
    for info, msg in (({"precisions": ["2"]}, r"info key\(s\) \['precisions'\] are recorded by convert"),
                      ({"network": "x", "model_class": "Y"}, r"\['model_class'\]"),
                      (["network"], "info must be a dict of JSON values, got list"),
                      ({"input_size": torch.tensor([1, 28, 28])}, r"info\['input_size'\] cannot be stored"),
                      ({"score": float("nan")}, r"info\['score'\] cannot be stored")):
        with pytest.raises(ValueError, match=msg):
            convert(m, info=info)
    im = convert(m, info={"network": "small_cnn", "input_size": [1, 28, 28]})
    assert im.info["network"] == "small_cnn" and im.info["precisions"] == ["4", "8"]


def test_info_keys_are_kept_as_json_keeps_them_and_the_file_loads(tmp_path):
    """{0: "cat", ...} passed the check (json.dumps takes int keys) but the model digest was taken over
    the int keys and checked over the string keys load read back: a saved file load called corrupt; and
    {7: "x"} with string keys beside it made save raise a bare TypeError in sort_keys."""
    from dwq.deploy import load, save

    m = calibrated(small_cnn(precisions=[4], width=4), (4, 1, 28, 28))
    names = {i: f"c{i}" for i in range(12)}
    im = convert(m, info={"class_names": names, 7: "x"})
    assert im.info["class_names"] == {str(i): f"c{i}" for i in range(12)} and im.info["7"] == "x"
    save(im, tmp_path / "m.safetensors")
    assert load(tmp_path / "m.safetensors").info == im.info
    with pytest.raises(ValueError, match="repeat once written as JSON strings"):
        convert(m, info={7: "x", "7": "y"})


class _BroadcastAdd(nn.Module):
    """A squeeze-and-excite-like add: the pooled [B, C, 1, 1] tensor first, the larger one second
    (then a ReLU where ``relu``)."""

    def __init__(self, precisions, relu=False):
        super().__init__()
        self.c1 = QConv2d(1, 4, 3, padding=1, precisions=precisions)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=precisions)
        self.relu = relu

    def forward(self, x):
        y = self.c1(x)
        z = nn.functional.adaptive_avg_pool2d(y, 1) + y
        z = torch.relu(z) if self.relu else z
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.c2(z), 1), 1)


def test_an_add_whose_first_operand_broadcasts_is_not_done_in_place():
    """convert marks an add in place when its first operand is fresh and read once, without shapes: a
    broadcast first operand made every forward of the integer model fail ("output with shape [2, 4, 1, 1]
    doesn't match the broadcast shape")."""
    m = calibrated(_BroadcastAdd([4, None]), (4, 1, 8, 8))
    im = convert(m)
    assert [s.get("inplace") for s in im.program if s.get("fn") == "add"] == [True]
    x = torch.rand(2, 1, 8, 8)
    for p in (4, None):
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_in_place_add_check_agrees_with_broadcast_shapes():
    """_add's shape check (written out: torch.broadcast_shapes cost more than the add at batch 1) says
    "b broadcasts into a" exactly when torch.broadcast_shapes(a, b) is a's shape."""
    from dwq.deploy.integer_model import _broadcasts_into

    g = torch.Generator().manual_seed(0)
    dims = [1, 2, 3]
    for _ in range(400):
        a = tuple(dims[int(i)] for i in torch.randint(0, 3, (int(torch.randint(0, 5, (1,), generator=g)),), generator=g))
        b = tuple(dims[int(i)] for i in torch.randint(0, 3, (int(torch.randint(0, 5, (1,), generator=g)),), generator=g))
        try:
            want = torch.broadcast_shapes(a, b) == torch.Size(a)
        except RuntimeError:  # not broadcastable at all
            want = False
        assert _broadcasts_into(b, a) == want, (a, b)


class _AddByKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(1, 4, 3, padding=1, precisions=[4])

    def forward(self, x):
        y = self.c1(x)
        return torch.add(y, other=y)


def test_add_with_a_keyword_operand_is_a_named_error():
    """torch.add(a, other=b) raised a bare IndexError (the second operand was read before the check)."""
    with pytest.raises(ConversionError, match="'add'.*only a \\+ b of two tensors"):
        convert(calibrated(_AddByKeyword(), (2, 1, 8, 8)))


def test_agreement_checks_keep_the_model_mode_and_refuse_a_lone_precision():
    """compare and code_agreement left a model checked in training in eval mode (its BN statistics and
    ranges then froze); "48" was taken apart into the precisions "4" and "8", a lone 4 failed with
    "'int' object is not iterable"."""
    from dwq.deploy import latency_per_precision

    m = calibrated(small_cnn(precisions=[4, 8], width=4), (4, 1, 28, 28))
    im, x = convert(m), torch.rand(3, 1, 28, 28)
    m.train()
    assert list(compare(m, im, x, precisions=["8"])) == ["8"] and m.training
    assert code_agreement(m, im, x, 4) and m.training and all(c.training for c in m.modules())
    m.conv1.eval()  # (a frozen part stays frozen)
    modes = {n: c.training for n, c in m.named_modules()}
    assert check_conversion(m, x, latency_batch=2, budget_s=0.01)["precisions"] == ["4", "8"]
    assert {n: c.training for n, c in m.named_modules()} == modes
    for bad in ("48", 4):
        with pytest.raises(ValueError, match=rf"compare: precisions must be a list of precisions.*got {bad!r}"):
            compare(m, im, x, precisions=bad)
        with pytest.raises(ValueError, match=r"latency_per_precision: precisions must be a list"):
            latency_per_precision(im, x, precisions=bad)


def test_the_integer_model_starts_at_the_models_current_precision():
    """convert left the integer model at its set's last precision (fp) while the model ran at 4: the two
    gave logits 0.02 apart with no precision set on either. The model's current precision is carried over
    where the converted set holds it."""
    m = calibrated(small_cnn(precisions=[4, 8, None], width=8), (16, 1, 28, 28))
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    dwq.set_precision(m, 4)
    im = convert(m)
    assert dwq.get_precision(im) == 4 and dwq.get_precision(m) == 4
    with torch.no_grad():
        assert (m(x) - im(x)).abs().max() <= REL_TIGHT * m(x).abs().max()
    assert dwq.get_precision(convert(m, [(4, 4), None])) == 4  # another spelling of the same precision
    assert dwq.get_precision(convert(m, [8, None])) is None  # not in the set: the set's last, as any new model


class _LayersNamedLikeModuleDictMethods(nn.Module):
    """Submodules called like nn.ModuleDict's attributes (and one called like the first's new key):
    convert failed with KeyError "attribute 'update' already exists"."""

    def __init__(self):
        super().__init__()
        self.update = QConv2d(1, 4, 3, padding=1, precisions=[4, None])
        self.update_ = nn.ReLU()
        self.keys = QConv2d(4, 4, 3, padding=1, precisions=[4, None])
        self.items = nn.Flatten()
        self.values = QLinear(4 * 8 * 8, 3, precisions=[4, None])

    def forward(self, x):
        return self.values(self.items(self.keys(self.update_(self.update(x)))))


def test_layers_named_like_module_dict_attributes_convert_save_and_load(tmp_path):
    from dwq.deploy import load, save

    m = calibrated(_LayersNamedLikeModuleDictMethods(), (4, 1, 8, 8))
    im = convert(m)
    assert {"update", "keys", "values"}.isdisjoint(im.layers.keys())
    assert {lay.source for lay in im.layers.values()} >= {"update", "keys", "values"}
    x = torch.rand(3, 1, 8, 8)
    assert_agrees(m, im, x, low_bits={"4"})
    assert list(code_agreement(m, im, x, 4)) == ["update", "keys", "values"]
    save(im, str(tmp_path / "m.safetensors"))
    back = load(str(tmp_path / "m.safetensors"))
    with torch.no_grad(), dwq.precision(im, 4), dwq.precision(back, 4):
        assert torch.equal(im(x), back(x))

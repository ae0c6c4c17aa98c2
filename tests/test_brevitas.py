"""Brevitas as the independent reference for dwq's quantizers and quantized layers.

What is compared, for every width 2..16 (dwq's whole range; Brevitas accepts all of them):

* weights (``WeightQuantizer`` vs ``ShiftedUint8WeightPerChannelFloat`` with the bit width
  overridden): per-output-channel scales, zero points, integer codes and dequantized values, for
  linear and conv weight shapes (the layers also cover grouped, strided and dilated convs);
* activations (``ActQuantizer`` vs a Brevitas per-tensor quantizer built in
  ``brevitas_recipes.act_quant`` from ``RuntimeStatsScaling`` + ``AbsMinMax`` and
  ``ParameterFromRuntimeZeroPoint`` + ``NegativeMinOrZero``): the batch's own min/max in train
  mode, the running range in eval mode (``ema`` = 1 - Brevitas momentum);
* layers (``QConv2d``/``QLinear`` vs ``QuantConv2d``/``QuantLinear`` with ``input_quant`` and
  ``weight_quant`` set, float bias): outputs in train and eval mode, for one width and for a
  multi-precision dwq layer against one Brevitas layer per width.

Tolerances and why:

* Scales: bit-exact (``torch.equal``). Both compute ``(max(max, 0) - min(min, 0)) / (2^b - 1)``
  in float32 with the same two operations. Exception: the EMA eval test with ``ema = 0.1``, where
  Brevitas averages the width ``max - min`` and ``-min`` while dwq averages ``min`` and ``max``:
  equal up to float rounding (rtol 1e-6). With ``ema = 0`` (momentum 1) eval mode is exact.
* Zero points: exact (they are integers; same ``round(-min / s)``, clamped to ``[0, 2^b - 1]``).
* Codes: exact except on rounding ties. dwq's contract rounds then shifts,
  ``round(x / s) + z``, so the integer kernels can add ``z`` exactly; Brevitas shifts then rounds,
  ``round(x / s + z)``, in float32. Both round half to even, so when ``x / s`` is exactly a
  half-integer and ``z`` is odd they differ by one, and adding ``z`` in float32 can also move a
  near-tie across .5 (more likely at 12..16 bits, where ``x / s + z`` keeps few fraction bits).
  The tests therefore require: codes differ by at most 1, only where ``x / s`` lies within a few
  float32 ulps of ``(|x / s| + z)`` from a half-integer; ``test_tie_rounding_order`` pins the two
  conventions on exact ties.
* Dequantized values: bit-exact wherever the codes agree (both ``(q - z) * s`` in float32).
* Layer outputs: bit-exact when both libraries quantized input and weight identically (the usual
  case; both run the same torch conv/linear on the same tensors). Where a tie flipped a code, the
  output difference must equal ``op(x_dwq - x_brev, w_dwq) + op(x_brev, w_dwq - w_brev)`` up to
  float rounding (rtol 1e-5, atol 1e-5 * max|y|), i.e. be explained entirely by the flipped codes.

Known, intended differences (tested so that a change on either side is noticed):

* A weight channel (or tensor) that is entirely negative: dwq widens the range to include 0
  (the contract: 0 exactly representable, ``z`` a valid code); Brevitas's ``AbsMinMax`` clamps
  only the minimum, takes ``s = (max - min) / (2^b - 1)`` and clamps ``z`` to ``2^b - 1``, so every
  value maps to code 0 (dequantized ``-(max - min)``, outside the range). Not a dwq bug; the
  test documents it. The random weights of the other tests give every channel both signs.
* An all-zero channel: scale floors differ (dwq ``s >= 1e-8``, Brevitas ``range >= 1e-10`` before
  dividing); zero points, codes and outputs still agree.

Not compared: gradients (Brevitas backpropagates through the runtime min/max into the scale and
zero point, dwq detaches them by design: straight-through to x only), widths outside 2..16
(Brevitas also builds 1-bit and 17+-bit quantizers, float32 codes become inexact above ~22 bits;
dwq rejects them by design).
"""
import random

import pytest
import torch
from torch.nn import functional as F

pytest.importorskip(
    "brevitas", reason="Brevitas is the reference implementation (a test dependency: pip install -e .[test])"
)

import brevitas.nn as qnn  # noqa: E402
from brevitas_recipes import act_quant, weight_quant  # noqa: E402
from conftest import devices  # noqa: E402

from dwq.nn import QConv2d, QLinear  # noqa: E402
from dwq.ops import fake_quantize  # noqa: E402
from dwq.quant import ActQuantizer, WeightQuantizer, choose_qparams  # noqa: E402

# Brevitas warns when it cannot propagate a zero point through a conv/linear with a zero-point
# input; only the float output is used here.
pytestmark = pytest.mark.filterwarnings("ignore:Computing zero point of output accumulator")

BITS = list(range(2, 17))
EPS = torch.finfo(torch.float32).eps


# --------------------------------------------------------------------------------------------
# helpers


def near_ties(x, scale, zp, rel=0.0):
    """Where ``round(x/s) + z`` and ``round(x/s + z)`` (float32) may legitimately differ; ``rel``
    widens the band for scales that themselves differ by a relative ``rel``."""
    t = x / scale
    frac = t - torch.floor(t)
    return (frac - 0.5).abs() <= (EPS + 2 * rel) * (t.abs() + zp + 1)


def assert_codes_agree(q_dwq, q_brev, x, scale, zp, rel=0.0):
    """Codes equal except by one on near-ties (see module docstring); returns the agreement mask."""
    q_dwq, q_brev = q_dwq.long(), q_brev.long()
    assert q_dwq.shape == q_brev.shape
    diff = q_dwq - q_brev
    assert bool((diff.abs() <= 1).all())
    off = diff != 0
    unexplained = off & ~near_ties(x, scale, zp, rel)
    assert not unexplained.any(), (
        f"{int(unexplained.sum())} codes differ away from a rounding tie, e.g. x={x[unexplained][:4].tolist()}"
    )
    return ~off


def per_channel(t, like):
    """Reshape a per-output-channel [C] tensor to broadcast against ``like`` (channels on dim 0)."""
    return t.reshape([-1] + [1] * (like.dim() - 1))


def brevitas_layer_for_weight(w, bits):
    """A Brevitas layer holding ``w`` (2-D: linear, 4-D: conv) with the reference weight quantizer."""
    if w.dim() == 2:
        m = qnn.QuantLinear(w.shape[1], w.shape[0], bias=False, weight_quant=weight_quant(bits))
    else:
        m = qnn.QuantConv2d(w.shape[1], w.shape[0], w.shape[2:], bias=False, weight_quant=weight_quant(bits))
    with torch.no_grad():
        m.weight.copy_(w)
    return m


def brevitas_weight(w, bits):
    """Brevitas's quantized ``w`` (an ``IntQuantTensor``: value, scale, zero_point, int())."""
    with torch.no_grad():
        return brevitas_layer_for_weight(w, bits).quant_weight()


def random_weight(kind, bits, rng):
    """Random weight of a random shape; every channel has both signs except channel 0, which is
    all positive (both libraries then use min = 0)."""
    out = rng.randint(2, 24)
    if kind == "linear":
        shape = (out, rng.randint(2, 300))
    elif kind == "conv":
        k = rng.choice([1, 3, 5])
        shape = (out, rng.randint(1, 16), k, k)
        if k == 1 and shape[1] == 1:
            shape = (out, 2, 1, 1)
    else:  # wide conv: many elements per channel, so the codes see more near-ties
        shape = (out, rng.randint(16, 64), 3, 3)
    w = torch.randn(shape) * torch.rand(out).reshape([-1] + [1] * (len(shape) - 1)) * rng.choice([0.05, 1.0, 30.0])
    flat = w.view(out, -1)
    flat[:, 0] = -flat[:, 0].abs() - 1e-3
    flat[:, 1] = flat[:, 1].abs() + 1e-3
    flat[0] = flat[0].abs()
    return w


# --------------------------------------------------------------------------------------------
# weights


@pytest.mark.parametrize("kind", ["linear", "conv", "wide_conv"])
@pytest.mark.parametrize("bits", BITS)
def test_weight_quantizer_matches_brevitas(bits, kind):
    rng = random.Random(1000 * bits + len(kind))
    torch.manual_seed(bits)
    w = random_weight(kind, bits, rng)
    qt = brevitas_weight(w, bits)
    assert int(qt.bit_width) == bits and not qt.signed

    s, z = WeightQuantizer(axis=0).qparams(w, bits)
    assert s.dtype == torch.float32 and z.dtype == torch.int32
    assert torch.equal(s, qt.scale.flatten()), (s - qt.scale.flatten()).abs().max()
    assert torch.equal(z.float(), qt.zero_point.flatten())
    assert int(z[0]) == 0  # all-positive channel 0

    w_hat, q = fake_quantize(w, s, z, bits, axis=0, return_codes=True)
    assert torch.equal(w_hat, WeightQuantizer(axis=0)(w, bits))
    same = assert_codes_agree(q, qt.int(), w, per_channel(s, w), per_channel(z, w).float())
    assert torch.equal(w_hat[same], qt.value[same])


# --------------------------------------------------------------------------------------------
# activations


def act_batches(n, seed):
    """Batches of different shapes and ranges: mixed signs, ReLU-like (min 0), shifted positive."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        shape = (int(torch.randint(1, 5, (), generator=g)), 3, 7, 5)
        x = torch.randn(shape, generator=g) * (0.1 + 3 * torch.rand((), generator=g))
        if i % 3 == 1:
            x = x.relu()
        elif i % 3 == 2:
            x = x + 0.5 * float(x.abs().max())
        out.append(x)
    return out


def brevitas_act(bits, momentum):
    return qnn.QuantIdentity(act_quant=act_quant(bits, momentum), return_quant_tensor=True)


def check_act(x, x_hat_dwq, s, z, bits, qt, exact_scale=True):
    if exact_scale:
        assert torch.equal(s, qt.scale.reshape(1)), (s, qt.scale)
    else:
        torch.testing.assert_close(s, qt.scale.reshape(1), rtol=1e-6, atol=0)
    assert torch.equal(z.float(), qt.zero_point.reshape(1).detach())
    ref, q = fake_quantize(x, s, z, bits, return_codes=True)
    assert torch.equal(x_hat_dwq, ref)
    # With EMA ranges the scales are a few ulps apart: codes may then also differ by one where
    # x/s is within that relative distance (times |x/s|) of a tie.
    rel = float(((s - qt.scale.reshape(1)).abs() / s).max())
    same = assert_codes_agree(q, qt.int(), x, s, z.float(), rel)
    if exact_scale:
        assert torch.equal(x_hat_dwq[same], qt.value[same])
    else:
        torch.testing.assert_close(x_hat_dwq[same], qt.value[same], rtol=1e-6, atol=0)


@pytest.mark.parametrize("bits", BITS)
def test_act_quantizer_train_mode_matches_brevitas(bits):
    ours = ActQuantizer([bits]).train()
    ref = brevitas_act(bits, momentum=0.9).train()
    for x in act_batches(4, seed=bits):
        x_hat = ours(x, bits, (bits, bits))
        qt = ref(x)
        s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), bits)
        check_act(x, x_hat, s, z, bits, qt)


@pytest.mark.parametrize("ema", [0.0, 0.1])
@pytest.mark.parametrize("bits", BITS)
def test_act_quantizer_eval_mode_matches_brevitas(bits, ema):
    """Eval mode uses the running range: dwq's ``ema`` is Brevitas's ``1 - momentum``."""
    ours = ActQuantizer([bits], ema=ema).train()
    ref = brevitas_act(bits, momentum=1.0 - ema).train()
    batches = act_batches(6, seed=100 + bits)
    for x in batches[:5]:
        ours(x, bits, (bits, bits))
        ref(x)
    ours.eval()
    ref.eval()
    x = batches[5] * 1.5  # partly outside the running range: clamped codes too
    x_hat = ours(x, bits, (bits, bits))
    qt = ref(x)
    s, z = ours.eval_qparams((bits, bits), bits)
    check_act(x, x_hat, s, z, bits, qt, exact_scale=ema == 0.0)


# --------------------------------------------------------------------------------------------
# layers


class Capture:
    """Records the output of the input and weight quantizers of a layer (dwq or Brevitas)."""

    def __init__(self, layer):
        self.x = self.w = None
        layer.input_quant.register_forward_hook(lambda m, i, o: setattr(self, "x", _value(o)))
        layer.weight_quant.register_forward_hook(lambda m, i, o: setattr(self, "w", _value(o)))


def _value(o):
    return (o.value if hasattr(o, "value") else o).detach()


def make_pair(kind, bits_list, bias, rng, device):
    """A dwq layer with precision set ``bits_list`` and one Brevitas layer per width, same weights."""
    if kind == "linear":
        cin, cout = rng.randint(2, 64), rng.randint(1, 32)
        ours = QLinear(cin, cout, bias=bias, precisions=bits_list, act_ema=0.0)
        refs = {b: qnn.QuantLinear(cin, cout, bias=bias, weight_quant=weight_quant(b),
                                   input_quant=act_quant(b, 1.0)) for b in bits_list}
        shape = lambda n: (n, cin)  # noqa: E731
    else:
        groups = rng.choice([1, 1, 2])
        k, stride, pad, dil = rng.choice([1, 3]), rng.choice([1, 2]), rng.choice([0, 1]), rng.choice([1, 2])
        cin, cout = groups * rng.randint(2 if k == 1 else 1, 6), groups * rng.randint(1, 8)
        ours = QConv2d(cin, cout, k, stride, pad, dil, groups, bias=bias, precisions=bits_list, act_ema=0.0)
        refs = {b: qnn.QuantConv2d(cin, cout, k, stride, pad, dil, groups, bias=bias, weight_quant=weight_quant(b),
                                   input_quant=act_quant(b, 1.0)) for b in bits_list}
        hw = rng.randint(5, 12)
        shape = lambda n: (n, cin, hw, hw + 1)  # noqa: E731
    with torch.no_grad():
        ours.weight.mul_(rng.choice([0.3, 1.0, 5.0]))
        # Every output channel gets both signs: an all-negative channel is the one case where the
        # two libraries differ by design (test_all_negative_channel_differs_by_design).
        flat = ours.weight.view(ours.weight.shape[0], -1)
        flat[:, 0] = -flat[:, 0].abs() - 1e-3
        flat[:, 1] = flat[:, 1].abs() + 1e-3
    for ref in refs.values():
        ref.load_state_dict({"weight": ours.weight.detach(), **({"bias": ours.bias.detach()} if bias else {})},
                            strict=False)
    ours.to(device)
    for ref in refs.values():
        ref.to(device)
    return ours, refs, shape


def assert_layer_outputs_agree(ours, ref, cap_o, cap_b, y_o, y_b, bits):
    """Outputs bit-exact when both quantized identically; otherwise the difference is exactly
    what the tie-flipped codes contribute (see module docstring)."""
    assert cap_o.x is not None and cap_b.x is not None and cap_o.w is not None and cap_b.w is not None
    dx, dw = cap_o.x - cap_b.x, cap_o.w - cap_b.w
    if not dx.any() and not dw.any():
        assert torch.equal(y_o, y_b), (y_o - y_b).abs().max()
        return
    # Each flipped element moved by exactly one step of its own scale.
    s_w = WeightQuantizer().qparams(ours.weight, bits)[0]
    steps = dw.abs() / per_channel(s_w.to(dw.device), dw)
    assert torch.all((steps < 1e-3) | ((steps - 1).abs() < 1e-3))
    if isinstance(ours, torch.nn.Conv2d):
        op = lambda a, b: ours._conv_forward(a, b, None)  # noqa: E731
    else:
        op = lambda a, b: F.linear(a, b)  # noqa: E731
    expected = op(dx, cap_o.w) + op(cap_b.x, dw)
    torch.testing.assert_close(y_o - y_b, expected, rtol=1e-5, atol=1e-5 * float(y_o.abs().max()))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("bits", BITS)
def test_layer_matches_brevitas(bits, kind, device):
    """One width: three training batches (batch ranges), then eval (the last batch's range,
    ``act_ema=0`` = Brevitas momentum 1)."""
    rng = random.Random(7 * bits + (kind == "conv"))
    torch.manual_seed(bits)
    ours, refs, shape = make_pair(kind, [bits], bias=bits % 3 != 0, rng=rng, device=device)
    ref = refs[bits]
    ours.set_precision(bits)
    cap_o, cap_b = Capture(ours), Capture(ref)
    g = torch.Generator().manual_seed(bits)
    for mode in ["train", "train", "train", "eval"]:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x = (torch.randn(shape(rng.randint(1, 4)), generator=g) * rng.choice([0.2, 1.0, 4.0])).to(device)
        if mode == "eval":
            x = x * 1.3  # partly outside the stored range
        # Full float32 convs on CUDA (cuDNN defaults to TF32), so that the tie-flip correction
        # in assert_layer_outputs_agree is computed at the tolerance it is checked at.
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            y_o, y_b = ours(x), ref(x)
            assert y_o.shape == y_b.shape and y_o.dtype == y_b.dtype
            assert_layer_outputs_agree(ours, ref, cap_o, cap_b, y_o, y_b, bits)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_multi_precision_layer_matches_one_brevitas_layer_per_width(kind):
    """A dwq layer keeps one activation range per precision: training batches at precision b
    must give the Brevitas b-bit layer that saw only those batches, in train and eval mode."""
    widths = [2, 3, 4, 5, 6, 8, 11, 16]
    rng = random.Random(3 + (kind == "conv"))
    ours, refs, shape = make_pair(kind, widths, bias=True, rng=rng, device="cpu")
    g = torch.Generator().manual_seed(5)
    order = widths * 2
    random.Random(9).shuffle(order)
    cap_o, caps_b = Capture(ours), {b: Capture(ref) for b, ref in refs.items()}
    for mode, seq in [("train", order), ("eval", widths)]:
        ours.train(mode == "train")
        for b in seq:
            ref = refs[b]
            ref.train(mode == "train")
            ours.set_precision(b)
            x = torch.randn(shape(2), generator=g) * (0.5 + 2 * torch.rand((), generator=g))
            with torch.no_grad():
                y_o, y_b = ours(x), ref(x)
            assert_layer_outputs_agree(ours, ref, cap_o, caps_b[b], y_o, y_b, b)


# --------------------------------------------------------------------------------------------
# known, intended differences


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_tie_rounding_order(bits):
    """dwq: ``round(x/s) + z``; Brevitas: ``round(x/s + z)``; both half-to-even. Exact ties with an
    odd zero point differ by one code; with an even zero point they agree."""
    qmax = (1 << bits) - 1
    s0 = 2.0**-4  # power of two: s = (qmax * s0) / qmax is exactly s0
    for z0, agree in [(1, False), (2, True)]:
        w = torch.tensor([[-z0 * s0, (qmax - z0) * s0, 0.5 * s0, -0.5 * s0]])
        qt = brevitas_weight(w, bits)
        s, z = WeightQuantizer().qparams(w, bits)
        assert float(s) == s0 == float(qt.scale) and int(z) == z0 == int(qt.zero_point)
        _, q = fake_quantize(w, s, z, bits, axis=0, return_codes=True)
        ties = torch.tensor([0.5, -0.5])
        assert q[0, 2:].tolist() == (torch.round(ties) + z0).tolist()  # dwq
        assert qt.int()[0, 2:].long().tolist() == torch.round(ties + z0).long().tolist()  # Brevitas
        assert (q[0, 2:].tolist() == qt.int()[0, 2:].long().tolist()) == agree
        assert q[0, :2].tolist() == qt.int()[0, :2].long().tolist() == [0, qmax]


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_all_negative_channel_differs_by_design(bits):
    """dwq widens an all-negative range to include 0 (s = -min/(2^b-1), z = 2^b-1, 0 exact);
    Brevitas takes s = (max - min)/(2^b-1) but clamps z to 2^b-1, so every value of the channel
    maps to code 0 and dequantizes to -(max - min), outside the channel's range. Other channels
    are unaffected."""
    qmax = (1 << bits) - 1
    w = torch.stack([-(torch.rand(20) + 1.0), torch.randn(20)])  # channel 0 in [-2, -1)
    qt = brevitas_weight(w, bits)
    s, z = WeightQuantizer().qparams(w, bits)
    w_hat, q = fake_quantize(w, s, z, bits, axis=0, return_codes=True)
    # dwq: the contract
    assert torch.equal(s[0], -w[0].min() / qmax) and int(z[0]) == qmax
    assert (w_hat[0] - w[0]).abs().max() <= s[0] / 2 * (1 + 1e-5)
    # Brevitas: range max - min, zero point clamped, every code 0
    torch.testing.assert_close(qt.scale.flatten()[0], (w[0].max() - w[0].min()) / qmax)
    assert int(qt.zero_point.flatten()[0]) == qmax
    assert (qt.int()[0] == 0).all()
    torch.testing.assert_close(qt.value[0], (w[0].min() - w[0].max()).expand(20))
    # channel 1 (mixed signs) still agrees exactly
    assert torch.equal(s[1], qt.scale.flatten()[1]) and int(z[1]) == int(qt.zero_point.flatten()[1])
    assert_codes_agree(q[1], qt.int()[1], w[1], s[1], z[1].float())


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_all_zero_channel_only_scale_floor_differs(bits):
    w = torch.stack([torch.zeros(12), torch.randn(12)])
    qt = brevitas_weight(w, bits)
    s, z = WeightQuantizer().qparams(w, bits)
    w_hat, q = fake_quantize(w, s, z, bits, axis=0, return_codes=True)
    assert float(s[0]) == pytest.approx(1e-8)
    assert float(qt.scale.flatten()[0]) == pytest.approx(1e-10 / ((1 << bits) - 1))
    assert int(z[0]) == int(qt.zero_point.flatten()[0]) == 0
    assert torch.equal(q[0].long(), qt.int()[0].long()) and (q[0] == 0).all()
    assert torch.equal(w_hat[0], qt.value[0]) and (w_hat[0] == 0).all()
    assert torch.equal(s[1], qt.scale.flatten()[1])

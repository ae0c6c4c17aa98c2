"""Quantizer math: scale/zero-point choice, both zero-point modes, quantizer modules."""
from collections import OrderedDict

import pytest
import torch

from dwq.quant import (
    ActQuantizer,
    WeightQuantizer,
    check_bits,
    choose_qparams,
    fake_quantize,
    fake_quantize_float_zp,
    normalize_precision,
    normalize_set,
)


@pytest.mark.parametrize("bits", [2, 3, 8, 9, 16])
def test_zero_is_exact_and_range_is_covered(bits):
    x = torch.randn(1000) * 3 + 1
    s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), bits)
    assert z.dtype == torch.int32 and 0 <= int(z) <= (1 << bits) - 1
    assert fake_quantize(torch.zeros(1), s, z, bits).item() == 0.0
    y = fake_quantize(x, s, z, bits)
    # Rounding the zero point moves the grid by at most half a step at either end.
    assert (y - x).abs().max() <= 1.0 * s.item() + 1e-6


def test_all_zero_tensor():
    x = torch.zeros(3, 4)
    s, z = choose_qparams(x.amin(1), x.amax(1), 4)
    assert torch.all(s > 0) and torch.all(z == 0)
    assert torch.equal(fake_quantize(x, s, z, 4, axis=0), x)


@pytest.mark.parametrize("c", [2.5, -7.0])
def test_constant_tensor_is_exact(c):
    x = torch.full((10,), c)
    s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), 2)
    torch.testing.assert_close(fake_quantize(x, s, z, 2), x)


def test_extreme_ranges():
    for lo, hi in ((-1e30, 1e30), (-1e-30, 1e-30), (0.0, 1e38)):
        x = torch.tensor([lo, 0.0, hi])
        s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), 16)
        y = fake_quantize(x, s, z, 16)
        assert torch.isfinite(y).all()
        assert y[1].item() == 0.0


def test_nan_range_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        choose_qparams(torch.tensor([float("nan")]), torch.tensor([1.0]), 4)
    with pytest.raises(ValueError, match="min_val > max_val"):
        choose_qparams(torch.tensor([2.0]), torch.tensor([1.0]), 4)


def test_infinite_values_are_refused():
    q = WeightQuantizer()
    with pytest.raises(ValueError, match="inf or a range wider than float32 .* scale"):  # (either path: a ValueError)
        q(torch.tensor([[1.0, float("inf")]]), 4)


@pytest.mark.parametrize("bad", [1, 17, 0, -3, 4.0, "8", True])
def test_bits_validation(bad):
    with pytest.raises(ValueError, match="bits|precision"):
        check_bits(bad)
    if bad != "8":  # "8" is the user spelling of the precision 8 (test_precision_spelling)
        with pytest.raises(ValueError, match=r"precision must be (an int )?in 2\.\.16"):
            normalize_precision(bad)


@pytest.mark.parametrize("text, value, name", [("fp", None, "fp"), ("FP", None, "fp"), ("8", (8, 8), "8"),
                                               ("4w8a", (4, 8), "4w8a"), ("4w8", (4, 8), "4w8a"),
                                               ("w4a8", (4, 8), "4w8a"), ("W4A8", (4, 8), "4w8a"),
                                               ("16", (16, 16), "16")])
def test_precision_spelling(text, value, name):
    """One spelling everywhere: the CLI's strings are valid precisions of the Python API."""
    from dwq.quant import parse_precision, precision_name
    assert normalize_precision(text) == value
    assert precision_name(text) == name and precision_name(value) == name
    assert normalize_precision(precision_name(value)) == value


@pytest.mark.parametrize("bad", ["17", "1w8a", "4w", "w8a", "w4a", "w4a17", "4w8a8", "eight", "", "4.5"])
def test_bad_precision_spelling_names_the_text(bad):
    from dwq.quant import parse_precision
    with pytest.raises(ValueError, match="bad precision"):
        parse_precision(bad)


@pytest.mark.parametrize("p", [0, 32])
def test_int_full_precision_spellings_point_to_none(p):
    """0 (the reference's full precision) and 32 (our "32" string) as ints say what to write instead."""
    with pytest.raises(ValueError, match=f"got {p}; full precision is None"):
        normalize_precision(p)


def test_precision_forms():
    assert normalize_precision(None) is None
    assert normalize_precision(4) == (4, 4)
    assert normalize_precision((4, 8)) == (4, 8)
    with pytest.raises(ValueError, match="repeat"):
        normalize_set([4, 4])
    with pytest.raises(ValueError, match="empty"):
        normalize_set([])


def test_float_zero_point_mode_is_the_reference_formula():
    w = torch.randn(4, 9)
    bits = 3
    scale, offset = choose_qparams(w.amin(1), w.amax(1), bits, zero_point="float")
    assert torch.equal(offset, w.amin(1))
    got = WeightQuantizer(zero_point="float")(w, bits)
    mn, mx = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
    s = torch.clamp((mx - mn) / (2**bits - 1), min=1e-8)
    expected = torch.round(torch.clamp((w - mn) / s, 0, 2**bits - 1)) * s + mn
    assert torch.equal(got, expected)
    # Unlike the integer mode, the reference's grid generally misses zero.
    assert not torch.equal(fake_quantize_float_zp(torch.zeros(4, 1), scale, offset, bits, 0), torch.zeros(4, 1))


def test_float_mode_half_precision_and_infinite_ranges():
    """zero_point="float" computes in float32 for float16/bfloat16 (a constant half tensor came out NaN:
    the 1e-8 minimum scale is 0 in half) and refuses a range with no finite grid, as the integer mode does."""
    p8 = normalize_precision(8)
    for dt in (torch.float16, torch.bfloat16):
        z = ActQuantizer([8], zero_point="float").train()(torch.zeros(6, dtype=dt), 8, p8)
        assert z.dtype == dt and torch.equal(z, torch.zeros(6, dtype=dt))
        w = torch.randn(3, 40, generator=torch.Generator().manual_seed(2)).to(dt)
        w[1] = 0
        got = WeightQuantizer(zero_point="float")(w, 4)
        assert got.dtype == dt and torch.equal(got, WeightQuantizer(zero_point="float")(w.float(), 4).to(dt))
    for bad in (torch.tensor([1.0, float("inf")]), torch.tensor([-3e38, 3e38])):
        with pytest.raises(ValueError, match="x holds inf or a range wider than float32 holds"):
            ActQuantizer([4], zero_point="float").train()(bad, 4, normalize_precision(4))
        with pytest.raises(ValueError, match="weight channel\\(s\\) hold inf or a range wider than float32 holds"):
            WeightQuantizer(zero_point="float")(bad.reshape(1, 2), 4)


def test_weight_quantizer_per_channel_codes():
    w = torch.randn(5, 3, 3, 3)
    q = WeightQuantizer()
    s, z = q.qparams(w, 4)
    assert s.shape == (5,) and z.shape == (5,)
    flat = w.reshape(5, -1)
    for c in range(5):
        sc, zc = choose_qparams(flat[c].min().reshape(1), flat[c].max().reshape(1), 4)
        assert torch.equal(s[c : c + 1], sc) and torch.equal(z[c : c + 1], zc)
    assert q(w, None) is w


def test_act_quantizer_ema_per_precision_and_observed_slot():
    q = ActQuantizer([4, 8], ema=0.1)
    q.train()
    q(torch.tensor([-1.0, 2.0]), 4, (4, 4))
    # slots: 4 bits, 8 bits, then the observed range that every train-mode batch updates
    assert q.running_min.tolist() == [-1.0, 0.0, -1.0] and q.initialized.tolist() == [True, False, True]
    q(torch.tensor([-3.0, 4.0]), 4, (4, 4))
    torch.testing.assert_close(q.running_min, torch.tensor([0.1 * -1 + 0.9 * -3, 0.0, 0.1 * -1 + 0.9 * -3]))
    torch.testing.assert_close(q.running_max, torch.tensor([0.1 * 2 + 0.9 * 4, 0.0, 0.1 * 2 + 0.9 * 4]))
    q(torch.tensor([-5.0, 5.0]), 8, (8, 8))
    assert q.running_max[1].item() == 5.0
    torch.testing.assert_close(q.running_max[2], torch.tensor(0.1 * (0.1 * 2 + 0.9 * 4) + 0.9 * 5))


def test_act_quantizer_called_with_bits_alone_uses_that_precisions_slot():
    # (it tracked, and in eval read, the full-precision slot: a 4-bit forward at the fp range)
    q = ActQuantizer([None, 4, 8]).train()
    q(torch.tensor([-1.0, 2.0]), 4)
    assert q.initialized.tolist() == [False, True, False, True]
    q(torch.tensor([-3.0, 5.0]), None)
    q.eval()
    assert torch.equal(q(torch.tensor([3.0]), 4), q(torch.tensor([3.0]), 4, 4))
    assert q(torch.tensor([3.0]), 4).item() < 2.1  # the 4-bit slot's range, [-1, 2]


def test_act_quantizer_eval_uses_running_range():
    q = ActQuantizer([4])
    q.train()
    q(torch.tensor([-1.0, 1.0]), 4, (4, 4))
    q.eval()
    y = q(torch.tensor([10.0]), 4, (4, 4))
    step = 2.0 / 15
    assert y.item() <= 1.0 + step  # clamped to the running range, not re-ranged on the batch


def test_full_precision_training_tracks_the_range_used_by_untrained_precisions():
    """Issue 12, item 6: a model trained only at full precision and run at 4 bits uses the range
    tracked in training, so an image's output does not depend on the rest of its batch."""
    q = ActQuantizer([4, None])
    q.train()
    x = torch.tensor([-1.0, 0.5, 3.0])
    assert q(x, None, None) is x  # full precision: untouched, but tracked
    assert q.initialized.tolist() == [False, True, True] and q.eval_slot((4, 4)) == 2
    q.eval()
    alone = q(torch.tensor([0.7]), 4, (4, 4))
    with_others = q(torch.tensor([0.7, -20.0, 50.0]), 4, (4, 4))[:1]
    assert torch.equal(alone, with_others)
    s, z = q.eval_qparams((4, 4), 4)
    assert torch.equal(alone, fake_quantize(torch.tensor([0.7]), s, z, 4))
    # eval mode never updates a range
    q(torch.tensor([-9.0, 9.0]), None, None)
    assert q.running_max.tolist() == [0.0, 3.0, 3.0]


def test_untracked_quantizer_falls_back_to_the_batch_range():
    q = ActQuantizer([4, 8]).eval()
    assert q.eval_slot((4, 4)) is None and q.eval_qparams((4, 4), 4) is None
    x = torch.tensor([-1.0, 0.25, 2.0])
    s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), 4)
    assert torch.equal(q(x, 4, (4, 4)), fake_quantize(x, s, z, 4))


def test_act_quantizer_shared_range():
    q = ActQuantizer([4, 8], shared_range=True)
    q.train()
    q(torch.tensor([-1.0, 1.0]), 4, (4, 4))
    q(torch.tensor([-3.0, 3.0]), 8, (8, 8))
    assert q.running_min.numel() == 1 and q.observed_slot == 0
    torch.testing.assert_close(q.running_max, torch.tensor([0.1 * 1 + 0.9 * 3]))


def test_float_mode_keeps_the_references_state():
    """zero_point="float": (minimum, range) EMAs started from zero, as the reference's
    running_zero_point/running_range; eval takes the scale from the stored range."""
    q = ActQuantizer([4, 8], zero_point="float", shared_range=True).train()
    assert "running_range" in q.state_dict() and "running_max" not in q.state_dict()
    a, b = torch.tensor([-1.0, 2.0]), torch.tensor([-3.0, 5.0, 1.0])
    q(a, 4, (4, 4))
    assert torch.equal(q.running_min, 0.1 * torch.zeros(1) + 0.9 * torch.tensor([-1.0]))
    q(b, None, None)  # full precision: tracked too
    zp = 0.1 * (0.9 * torch.tensor([-1.0])) + 0.9 * torch.tensor([-3.0])
    rng = 0.1 * (0.9 * torch.tensor([3.0])) + 0.9 * torch.tensor([8.0])
    assert torch.equal(q.running_min, zp) and torch.equal(q.running_range, rng)
    q.eval()
    x = torch.linspace(-4, 6, 101)
    s = torch.clamp(rng / 15, min=1e-8)
    assert torch.equal(q(x, 4, (4, 4)), torch.round(torch.clamp((x - zp) / s, 0, 15)) * s + zp)


def test_act_quantizer_set_range():
    q = ActQuantizer([4, 8]).eval()
    q.set_range(-1.0, 3.0, (8, 8))
    assert q.initialized.tolist() == [False, True, False]
    assert q.running_min.tolist() == [0.0, -1.0, 0.0] and q.running_max.tolist() == [0.0, 3.0, 0.0]
    q.set_range(-2.0, 2.0)
    assert q.initialized.all() and q.running_max.tolist() == [2.0, 2.0, 2.0]
    f = ActQuantizer([4], zero_point="float", shared_range=True)
    f.set_range(-0.5, 1.5)
    assert f.running_range.tolist() == [2.0]
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        q.set_range(1.0, 0.0)


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_state_dict_saved_before_the_observed_slot_still_loads(zero_point):
    """Version-1 state_dicts (one slot per precision, "float" with running_max) load: the observed
    slot starts unseen, a float range becomes max - min."""
    q = ActQuantizer([4, 8], zero_point=zero_point)
    sd = OrderedDict(running_min=torch.tensor([-1.0, -2.0]), running_max=torch.tensor([3.0, 4.0]),
                     initialized=torch.tensor([True, True]))
    sd._metadata = {"": {"version": 1}}  # what torch.save kept for a module saved with _version 1
    q.load_state_dict(sd)
    assert q.initialized.tolist() == [True, True, False]
    upper = q.running_range if zero_point == "float" else q.running_max
    assert upper.tolist() == ([4.0, 6.0, 0.0] if zero_point == "float" else [3.0, 4.0, 0.0])


def test_float64_is_quantized_in_float64():
    """What the README says of model.double(): the quotient x/s is float64's, so near float32 ties a
    16-bit code differs by one from the float32 model's (the integer models compute in float32)."""
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    y32, y64 = WeightQuantizer()(w, 16), WeightQuantizer()(w.double(), 16)
    s, z = choose_qparams(w.amin(1), w.amax(1), 16)
    formula = (torch.clamp(torch.round(w.double() / s.double()[:, None]) + z[:, None], 0, 65535) - z[:, None])
    assert torch.equal(y64, formula * s.double()[:, None])
    assert 0 < int((y64.float() != y32).sum()) < 64


def test_a_state_dict_without_version_is_read_as_the_current_one():
    """A plain dict ({k: v}, a safetensors file) has no _metadata: it was upgraded as version 1, so an
    int-mode state_dict loaded into a "float" layer (running_max taken for the old float bound, outputs
    off by 0.35) and a smaller set's slots were padded into this one's, both under strict=True."""
    src = ActQuantizer([4, 8]).train()
    src(torch.randn(64) + 2, 4)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "running_range"'):
        ActQuantizer([4, 8], zero_point="float").load_state_dict(dict(src.state_dict()))
    small = ActQuantizer([4]).train()
    small(torch.randn(10) * 3, 4)
    with pytest.raises(RuntimeError, match="size mismatch for running_min"):
        ActQuantizer([4, 8]).load_state_dict(dict(small.state_dict()))
    q = ActQuantizer([4, 8], zero_point="float")
    q.load_state_dict(dict(ActQuantizer([4, 8], zero_point="float").state_dict()))  # the current format loads


def test_module_type_keeps_the_flags_bool_and_a_listed_precision_runs_in_eval():
    """nn.Module.type casts every buffer: the bool flags became float and every later forward failed;
    eval mode kept its qparams under an unhashable key for a precision given as a list."""
    from dwq.nn import QConv2d

    c = QConv2d(2, 3, 3, precisions=[4, 8])
    x = torch.randn(2, 2, 5, 5)
    y = c(x)
    c.type(torch.float32)
    assert c.input_quant.initialized.dtype == torch.bool
    torch.testing.assert_close(c(x), y, rtol=0, atol=0.3)  # (a second train-mode batch moved the range)
    aq = ActQuantizer([4, (4, 8)]).train()
    aq(torch.randn(10), 8, [4, 8])
    aq.eval()
    x = torch.randn(10)
    assert torch.equal(aq(x, 8, [4, 8]), aq(x, 8, (4, 8)))


def test_float32_tie_differs_from_real_arithmetic():
    """The contract is float32 arithmetic: s = float32(1/7) > 1/7, so -0.5/s = -3.4999998 rounds to -3,
    where real arithmetic gives the tie -3.5 and round-half-to-even -4 (module docstring of qparams)."""
    w = torch.tensor([[-1.0, -0.5, 0.0]])
    s, z = choose_qparams(w.amin(1), w.amax(1), 3)
    assert s.item() == torch.tensor(1 / 7, dtype=torch.float32).item() and s.item() > 1 / 7 and int(z) == 7
    assert (w[0, 1] / s).item() == pytest.approx(-3.4999998, abs=1e-7) and (w[0, 1] / s).item() > -3.5
    y = fake_quantize(w, s, z, 3, axis=0)
    assert y[0, 1].item() == (-3 * s).item()  # code 4 = -3 + z; real arithmetic would give code 3
    assert y[0, 1].item() != (-4 * s).item()
    assert torch.equal(WeightQuantizer()(w, 3), y)  # the layer quantizer computes the same


@pytest.mark.parametrize("bits,width,floored", [(16, 6.5e-4, True), (16, 6.6e-4, False), (8, 2.5e-6, True),
                                                (8, 2.6e-6, False), (2, 2.9e-8, True), (2, 1e-6, False)])
def test_scale_floor_applies_below_1e8_times_levels(bits, width, floored):
    """s = max(range / (2^b - 1), 1e-8): the floor takes over for every range narrower than
    1e-8·(2^b - 1), empty or not; the range is still covered without clipping, on a coarser grid."""
    x = torch.linspace(0, width, 101)
    s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), bits)
    if floored:
        assert s.item() == pytest.approx(1e-8, rel=1e-6)
        assert width / ((1 << bits) - 1) < 1e-8
    else:
        assert s.item() == pytest.approx(width / ((1 << bits) - 1), rel=1e-5) and s.item() > 1e-8
    y = fake_quantize(x, s, z, bits)
    assert (y - x).abs().max().item() <= s.item() / 2 * (1 + 1e-4) + 1e-12  # nothing clips


def test_act_quantizer_built_on_meta_then_materialized_updates_the_right_slots():
    # to_empty leaves every buffer uninitialized and load_state_dict restores only the persistent ones:
    # the slot masks (not state) must come back as they were, or a batch updates other slots' ranges
    built = ActQuantizer([4, 8, None])
    q = ActQuantizer([4, 8, None]).to("meta").to_empty(device="cpu")
    q._apply(lambda t: torch.ones_like(t))  # what to_empty's uninitialized memory may hold, made certain
    q.load_state_dict(built.state_dict())
    assert torch.equal(q._update_masks, built._update_masks)
    for m in (q, built):
        m.train()
        m(torch.tensor([-1.0, 2.0]), 4, (4, 4))
    assert torch.equal(q.running_min, built.running_min) and torch.equal(q.initialized, built.initialized)
    assert q.initialized.tolist() == [True, False, False, True]


@pytest.mark.parametrize("path", ["fused", "torch"])
def test_act_quantizer_built_on_meta_then_assigned_a_state_dict_trains(path):
    # load_state_dict(assign=True) takes the loaded tensors as the state; the slot masks (no state_dict
    # entry) stayed on meta, and the first full-precision or pure-PyTorch train-mode forward failed
    built = ActQuantizer([4, 8, None])
    with torch.device("meta"):
        q = ActQuantizer([4, 8, None])
    q.load_state_dict(built.state_dict(), assign=True)
    assert q._update_masks.device.type == "cpu" and torch.equal(q._update_masks, built._update_masks)
    x = torch.tensor([-1.0, 2.0]) if path == "fused" else torch.tensor([-1.0, 2.0], dtype=torch.float64)
    for m in (q, built):
        m.train()
        m(x, 4, (4, 4))
        m(x * 3, None, None)
    assert torch.equal(q.running_min, built.running_min) and torch.equal(q.initialized, built.initialized)
    assert q.initialized.tolist() == [True, False, True, True]


def test_a_quantizer_takes_every_spelling_of_a_precision():
    # slot() compared the argument with the normalized set: set_range(precision=4) said
    # "precision 4 is not in the quantizer's precision set [4, 8]"
    q = ActQuantizer([4, (4, 8), None])
    for spelling, i in ((4, 0), ("4", 0), ((4, 4), 0), ([4, 4], 0), ("4w8a", 1), ((4, 8), 1), ("fp", 2), (None, 2)):
        assert q.slot(spelling) == i
    q.set_range(-1.0, 3.0, precision=4)
    q.set_range(-2.0, 5.0, precision="4w8a")
    assert q.initialized.tolist() == [True, True, False, False] and q.running_max.tolist()[:2] == [3.0, 5.0]
    q.eval()
    x = torch.linspace(-3, 6, 37)
    assert torch.equal(q(x, 4, 4), q(x, 4, (4, 4))) and torch.equal(q(x, 8, "4w8a"), q(x, 8, (4, 8)))
    assert q.eval_slot(4) == 0 and torch.equal(q.eval_qparams("4w8a", 8)[0], q.eval_qparams((4, 8), 8)[0])
    with pytest.raises(ValueError, match=r"precision 8 is not in the quantizer's precision set \[4, 4w8a, fp\]"):
        q.set_range(0.0, 1.0, precision=8)


@pytest.mark.parametrize("lo,hi", [(0.0, float("inf")), (float("-inf"), 0.0), (-3e38, 3e38), (0.0, 1e39)])
def test_set_range_refuses_a_range_without_a_finite_scale(lo, hi):
    q = ActQuantizer([4])
    with pytest.raises(ValueError, match="set_range: min_val, max_val and their difference must be finite"):
        q.set_range(lo, hi)
    assert not q.initialized.any()  # nothing set


def test_float_zero_point_fake_quant_checks_its_arguments_as_the_integer_one():
    # a zero or negative scale gave NaN or a mirrored grid silently, an integer x a float result, and a
    # wrong number of scales torch's reshape/broadcast error naming no argument
    x = torch.linspace(-1, 1, 12).reshape(3, 4)
    one, zero = torch.ones(1), torch.zeros(1)
    for scale in (torch.zeros(1), -torch.ones(1)):
        with pytest.raises(ValueError, match=r"scale and offset must be finite and the scale > 0"):
            fake_quantize_float_zp(x, scale, zero, 4)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor, got torch.int64"):
        fake_quantize_float_zp(torch.arange(4), one, zero, 4)
    with pytest.raises(ValueError, match=r"scale and offset need 1 entries \(per tensor\), got 3 and 3"):
        fake_quantize_float_zp(x, torch.ones(3), torch.zeros(3), 4)
    with pytest.raises(ValueError, match=r"scale and offset need 4 entries \(x.shape\[1\]\), got 3 and 4"):
        fake_quantize_float_zp(x, torch.ones(3), torch.zeros(4), 4, axis=1)
    with pytest.raises(ValueError, match=r"axis=2 is not a dimension of x, shape \[3, 4\]"):  # (was IndexError)
        fake_quantize_float_zp(x, torch.ones(3), torch.zeros(3), 4, axis=2)
    assert torch.equal(fake_quantize_float_zp(x, torch.full((3,), 0.25), -torch.ones(3), 4, axis=0),
                       torch.round(torch.clamp((x + 1) / 0.25, 0, 15)) * 0.25 - 1)


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_weight_quantizer_names_an_axis_the_weight_lacks(zero_point):
    # torch's IndexError ("tuple index out of range" for a 0-d weight) named neither the axis nor the shape
    for axis, w in ((5, torch.randn(4, 3, 3, 3)), (-3, torch.randn(4, 3)), (0, torch.tensor(1.0))):
        q = WeightQuantizer(axis=axis, zero_point=zero_point)
        with pytest.raises(ValueError, match=rf"WeightQuantizer: axis={axis} is not a dimension of the weight, "
                                             rf"shape \[{', '.join(map(str, w.shape))}\]"):
            q(w, 4)
        with pytest.raises(ValueError, match="is not a dimension"):
            q.qparams(w, 4)
        assert q(w, None) is w  # full precision quantizes nothing


# float32 axis 0: the fused kernels; float64, or another axis: the pure-PyTorch path.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
def test_an_infinite_activation_range_is_named_as_such(dtype, training):
    """x holding inf, or a range wider than float32 (an untracked quantizer in eval uses the batch's
    own): the error said "scale[0] must be finite and > 0, got inf", a scale the caller never gave."""
    for zero_point in ("int", "float"):
        q = ActQuantizer([4], zero_point=zero_point).train(training)
        for x in (torch.tensor([0.5, float("inf")]), torch.tensor([-3e38, 3e38])):
            with pytest.raises(ValueError, match="x holds inf or a range wider than float32 holds"):
                q(x.to(dtype), 4)


@pytest.mark.parametrize("dtype, axis", [(torch.float32, 0), (torch.float64, 0), (torch.float32, 1)])
def test_an_infinite_weight_range_is_named_as_such_on_every_path(dtype, axis):
    w = torch.tensor([[1.0, float("inf")], [0.5, -0.5]], dtype=dtype)
    with pytest.raises((ValueError, RuntimeError), match="hold inf or a range wider than float32 holds"):
        WeightQuantizer(axis=axis)(w, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_eval_quantizes_an_empty_batch_without_a_tracked_range(dtype, zero_point):
    """An empty x has nothing to quantize, so no range is needed: an untrained quantizer failed with
    "the observed range contains NaN (the tensor has NaN values)"."""
    q = ActQuantizer([4], zero_point=zero_point).eval()
    x = torch.zeros(0, 3, dtype=dtype)
    y = q(x, 4)
    assert y.shape == (0, 3) and y.dtype == dtype
    q.set_range(-1.0, 1.0)
    assert q(x, 4).shape == (0, 3)


@pytest.mark.parametrize("src, dst", [("int", "float"), ("float", "int")])
def test_a_partial_state_dict_marks_no_range_it_did_not_load(src, dst):
    """load_state_dict(strict=False) of the other zero-point mode's state_dict loads ``initialized`` but not
    the upper bound: the slots were marked tracked with a range never loaded (int: [min, 0], float: width 0),
    and eval quantized every input to one or two values, silently."""
    saved = ActQuantizer([4], zero_point=src).train()
    saved(torch.tensor([-1.0, 3.0]), 4)
    q = ActQuantizer([4], zero_point=dst)
    missing, unexpected = q.load_state_dict(saved.state_dict(), strict=False)
    assert missing == [q._upper_name] and unexpected == [saved._upper_name]
    assert not q.initialized.any()
    x = torch.tensor([-1.0, 0.5, 3.0])
    assert torch.equal(q.eval()(x, 4), ActQuantizer([4], zero_point=dst).eval()(x, 4))  # the batch's own range
    full = ActQuantizer([4], zero_point=dst)
    full.load_state_dict({k: v for k, v in q.state_dict().items() if k != "initialized"}, strict=False)
    assert not full.initialized.any()  # ranges without their flags leave the flags as they were


def test_a_quantizer_takes_numpy_integer_widths():
    """numpy integers are bits (check_bits takes them): slot() compared one with the set's pairs, which
    numpy broadcasts, and failed with "The truth value of an array with more than one element is ambiguous"."""
    np = pytest.importorskip("numpy")
    x = torch.linspace(-3, 6, 37)
    for zero_point in ("int", "float"):
        q = ActQuantizer([4, (4, 8)], zero_point=zero_point)
        assert q.slot(np.int64(4)) == 0 and q.slot((np.int32(4), np.int64(8))) == 1
        assert torch.equal(q(x, np.int64(4)), q(x, 4))
        assert torch.equal(q(x, np.int64(8), (np.int64(4), np.int64(8))), q(x, 8, (4, 8)))
        q.set_range(-1.0, 3.0, precision=np.int64(4))
        q.eval()
        assert torch.equal(q(x, np.int64(4)), q(x, 4)) and q.eval_slot(np.int64(4)) == 0


def test_shared_range_refuses_a_precision_outside_the_set():
    """With shared_range every precision read slot 0: set_range(precision=3) on a [4, 8] set was taken
    and a forward at 3 bits ran; full precision still tracks into the shared slot."""
    q = ActQuantizer([4, 8], shared_range=True)
    for bad in (3, (2, 2), "garbage"):
        with pytest.raises(ValueError):
            q.slot(bad)
    with pytest.raises(ValueError, match="precision 3 is not in the quantizer's precision set"):
        q.set_range(-1.0, 1.0, precision=3)
    assert q.slot(None) == q.slot(4) == q.slot((8, 8)) == 0


@pytest.mark.parametrize("ema", ["0.1", None, True, float("nan"), 1.0])
def test_a_bad_ema_is_named(ema):
    with pytest.raises(ValueError, match=r"ema \(a layer's act_ema\) must be a number in \[0, 1\)"):
        ActQuantizer([4], ema=ema)


@pytest.mark.parametrize("size, message", [((1, 1, 28.9, 28), "as ints"), ("1,1,28,28", "as ints"),
                                           ((1, 0, 28, 28), "sizes >= 1"), ((28,), "batch dimension")])
def test_profile_names_a_bad_input_size(size, message):
    """int() took 28.9 as 28 and read "1,1,28,28" character by character."""
    from dwq.models import small_cnn
    from dwq.quant.cost import profile

    with pytest.raises(ValueError, match=f"profile: input_size .*{message}"):
        profile(small_cnn(precisions=[4]), size)


def test_precision_messages_fit_what_was_given():
    """numpy's 0 and 32 and the text "0" (the reference's full precision) got no pointer to fp; a pair entry
    that is no int was offered "or None for full precision", which a pair refuses."""
    import numpy as np

    from dwq.quant import parse_precision

    for p in (np.int64(0), np.int64(32)):
        with pytest.raises(ValueError, match=f"got {int(p)}; full precision is None"):
            normalize_precision(p)
    with pytest.raises(ValueError, match="bad precision '0': .* got 0; full precision is 'fp'"):
        parse_precision("0")
    for pair in (("4", "8"), (4.0, 8), (True, 8)):
        with pytest.raises(ValueError, match=r"w_bits must be an int in 2..16, got") as e:
            normalize_precision(pair)
        assert "None" not in str(e.value)
    assert normalize_precision((np.int64(4), 8)) == (4, 8)


def test_float_zero_point_checks_its_qparams_in_the_type_they_compute_in():
    """A float64 scale of 1e-50 passed the check and was 0 in float32 (NaN out); an offset of 1e300 inf."""
    x = torch.tensor([0.0, 1e-45, 3e-45, 1.0])
    for s, o in ((torch.tensor([1e-50], dtype=torch.float64), torch.tensor([0.0])),
                 (torch.tensor([0.1]), torch.tensor([1e300], dtype=torch.float64))):
        with pytest.raises(ValueError, match="scale > 0 in torch.float32, the type they compute in"):
            fake_quantize_float_zp(x, s, o, 8)


def test_eval_without_any_tracked_range_warns_once_per_quantizer():
    """Such a quantizer uses each batch's own range (an image's output then depends on its batch): the
    README's "never depends on the rest of its batch" held only after training, and nothing said so."""
    import warnings

    x = torch.linspace(-1, 1, 20)
    for prepare, warns in [(lambda q: None, True), (lambda q: q.train()(x, 8, 8), False),
                           (lambda q: q.set_range(-1.0, 1.0), False), (lambda q: q.set_range(-1.0, 1.0, 8), True)]:
        q = ActQuantizer([4, 8])
        prepare(q)
        q.eval()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            q(x, 4), q(x, 4), q(x, 8)
        said = [str(m.message) for m in w if "never saw a training batch" in str(m.message)]
        assert len(said) == (1 if warns else 0), said


def test_dwq_s_own_forwards_neither_warn_of_missing_ranges_nor_use_the_warning_up():
    """bitops' MAC count (and the Trainer's label check) ran an eval forward of a fresh model: the warning
    came first thing in every dwq train run, and a real eval forward afterwards said nothing."""
    import warnings

    from dwq.models import small_cnn
    from dwq.quant.cost import bitops

    m = small_cnn(precisions=["4w8a", 8], width=4, switchable_bn=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        bitops(m, "4w8a", (1, 1, 28, 28))
    assert not [x for x in w if "never saw a training batch" in str(x.message)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.eval()(torch.rand(2, 1, 28, 28))
    assert [x for x in w if "never saw a training batch" in str(x.message)]

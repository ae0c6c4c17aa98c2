"""Quantizer modules: per-output-channel weights and per-tensor activations.

Both take the bit width at call time, so one module serves every precision of a
random-precision model.
"""
import math
import numbers
import warnings
import weakref
from contextlib import contextmanager
from typing import Iterable, Optional

import torch
from torch import nn
from torch._subclasses.fake_tensor import is_fake
from torch.optim.optimizer import register_optimizer_step_post_hook

from dwq.ops import quantizer_fused as fused
from dwq._index import index_or_none, is_bool
from dwq.ops.fake_quant import check_value
from dwq.quant.eval_qparams import EvalQparams, TrackedSlots
from dwq.quant.fake_quant import fake_quantize, fake_quantize_float_zp
from dwq.quant.precision import check_bits, normalize_precision, normalize_set, precision_name
from dwq.quant.qparams import check_zero_point_mode, choose_qparams, qparams_from_range
from dwq.quant.untrained import quiet


def _inf_scale_message(what: str) -> str:
    return (f"cannot quantize: {what} inf or a range wider than float32 holds (max - min overflows), so the scale "
            "would not be finite")


def _check_finite_scale(scale: torch.Tensor, what: str) -> None:
    """An infinite scale comes from a range holding inf or wider than float32: say so. Left to
    fake_quantize, the error named a scale the caller never gave ("scale[0] must be finite and > 0")."""
    if not scale.is_cuda:  # (the CUDA kernels assert on the device themselves: no extra launches)
        check_value(torch.isinf(scale).any(), _inf_scale_message(what))


def _check_fused_scale(scale: torch.Tensor) -> None:
    """act_qparams' scale (float32 [1], never under torch.compile): a NaN range, then an infinite
    scale, are errors. On CPU one read of the number (isnan, isinf and any took 15 us of a 2-core Xeon
    per train-mode forward of every layer); on CUDA nothing: the kernel asserts on the device, and a
    read would be a host sync."""
    if scale.is_cuda:
        return
    v = scale.item()
    if v != v:
        raise ValueError("cannot quantize: the observed range contains NaN")
    if math.isinf(v):
        raise ValueError(_inf_scale_message("x holds"))


def quantize_with(x, scale, zp, bits, axis, mode):
    if mode == "int":
        return fake_quantize(x, scale, zp, bits, axis)
    return fake_quantize_float_zp(x, scale, zp, bits, axis)


def check_flag(value, name: str) -> bool:
    """``value`` as a bool; ValueError unless it is one (bool("no") and bool("False") are True)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value

class _ReuseSTE(torch.autograd.Function):
    """``q`` (the weight's fake quantization, computed earlier) with the straight-through gradient to ``w``."""

    @staticmethod
    def forward(ctx, w, q):
        return q.view_as(q)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# Whether autocast is on for any device (torch 2.4+, traced by dynamo; absent, each device is asked).
_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", None)


def autocast_dtype(w: torch.Tensor) -> Optional[torch.dtype]:
    """The dtype autocast casts ``w`` to as an input of a conv or linear, if it casts it (None if not):
    autocast on for w's device, w floating point and not float64 (which autocast leaves alone), and not
    of that dtype already."""
    if _ANY_AUTOCAST is not None and not _ANY_AUTOCAST():  # (one call where autocast is off: most forwards)
        return None
    device = "cuda" if w.is_cuda else "cpu" if w.is_cpu else None  # (not w.device.type: 3x the time, per layer)
    if device is None or not torch.is_autocast_enabled(device):
        return None
    dtype = torch.get_autocast_dtype(device)
    return dtype if w.is_floating_point() and w.dtype not in (torch.float64, dtype) else None


class WeightQuantizer(nn.Module):
    """Per-output-channel asymmetric weight quantizer; the range is the min/max of the current
    weights (no state_dict entries).

    Inside :func:`reuse_quantized_weights` (attacks, evaluation, the forward and backward of a
    training step: code that does not change the weights) the fake-quantized weight is computed once
    per width and reused while the weight tensor is the same (same storage, same version counter), so
    a PGD-k training step quantizes each weight once instead of k + 1 times, and an EOT attack over P
    widths P times instead of P per step (one kept copy per width used in the block). Under autocast
    the layers ask for the result in autocast's dtype (``cast_to``), which their conv or linear then
    takes as it is: the fused op writes it, rounding its float32 result once as the cast would, and a
    kept copy is in it, so a float16 forward casts no weight (issue 10: that cast was a launch per
    layer per forward; a float layer's weight, a leaf, is cast once per autocast block). Values and
    the straight-through gradient are those of a fresh quantization; under ``torch.compile`` nothing
    is kept. Outside the context every call quantizes afresh (``param.data`` edits bypass the version
    counter, so a cache could not be trusted there). A result kept under ``torch.inference_mode()`` is
    not reused outside it (autograd refuses inference tensors), and a weight that is itself an
    inference tensor (no version counter) is quantized afresh at every call.
    """

    def __init__(self, axis: int = 0, zero_point: str = "int"):
        super().__init__()
        self.axis = index_or_none(axis)
        if self.axis is None:  # (True quantized along dim 1)
            raise ValueError(f"WeightQuantizer: axis must be an int, the weight's channel dimension, got {axis!r}")
        self.zero_point = check_zero_point_mode(zero_point)
        self._reuse = False  # set by reuse_quantized_weights
        # bits, or (bits, cast_to) -> (key, weak reference to the weight, its fake quantization) while _reuse
        self._kept = {}

    def qparams(self, w: torch.Tensor, bits: int):
        """(scale float32 [C], zero point int32 [C]) of ``w`` at ``bits`` (float [C] offsets in "float" mode)."""
        self._check_axis(w)
        flat = w.detach().movedim(self.axis, 0).reshape(w.shape[self.axis], -1)
        mn, mx = torch.aminmax(flat, dim=1)
        return choose_qparams(mn, mx, bits, self.zero_point)

    def __getstate__(self):
        # A copy or a pickle (torch.save(model), copy.deepcopy) made inside reuse_quantized_weights is
        # outside the block: it quantizes afresh. (The weak reference could not be pickled, and a deep copy
        # reused its results forever, past edits that bypass the version counter.)
        state = dict(super().__getstate__())  # (a copy: the module itself stays in the block)
        state.update(_reuse=False, _kept={})
        return state

    def _apply(self, fn, recurse=True):
        # model.to(dtype or device) swaps its layers' weights in with `param.data = ...`: the Parameter and
        # its version counter stay, and the allocator may hand the old address back, so after a
        # bfloat16 round trip the kept result's key matched a weight the round trip had rounded
        self._kept = {}
        return super()._apply(fn, recurse)

    def _check_axis(self, w: torch.Tensor) -> None:
        if not -w.dim() <= self.axis < w.dim():  # (a 0-d weight has no channel dimension at all)
            raise ValueError(f"WeightQuantizer: axis={self.axis} is not a dimension of the weight, "
                             f"shape {list(w.shape)}")

    def forward(self, w: torch.Tensor, bits: Optional[int], cast_to: Optional[torch.dtype] = None) -> torch.Tensor:
        """``w`` fake-quantized at ``bits`` (None: ``w`` itself). ``cast_to``: the dtype the caller's op
        casts the result to (autocast's, see :func:`autocast_dtype`): the result may come in it (the
        fused op writes it directly, with the cast's rounding; a reused result is always kept in it), so
        that the op does not cast at every forward; else it comes uncast, and the op casts it."""
        if bits is None:
            return w
        if not self._reuse or torch.compiler.is_compiling() or w.is_inference():
            # (An inference tensor has no version counter: an in-place edit could not be seen.)
            return self._quantize(w, bits, cast_to)
        key = (w.data_ptr(), w._version, tuple(w.shape), w.stride(), w.dtype, w.device, bits)
        slot = bits if cast_to is None else (bits, cast_to)
        kept = self._kept.get(slot)
        # The weak reference tells a new tensor at a freed address (same pointer, version 0) from w. A
        # copy made under torch.inference_mode() is an inference tensor, which autograd refuses outside it.
        if (kept is None or kept[0] != key or kept[1]() is not w
                or (kept[2].is_inference() and not torch.is_inference_mode_enabled())):
            with torch.no_grad():
                q = self._quantize(w.detach(), bits, cast_to)
                kept = self._kept[slot] = (key, weakref.ref(w), q if cast_to in (None, q.dtype) else q.to(cast_to))
        q = kept[2]
        return _ReuseSTE.apply(w, q) if torch.is_grad_enabled() and w.requires_grad else q

    def _quantize(self, w: torch.Tensor, bits: int, cast_to: Optional[torch.dtype] = None) -> torch.Tensor:
        if w.numel() == 0:  # (nothing to quantize: QLinear(4, 0) runs as nn.Linear(4, 0) does)
            return w
        # The axis is checked where a weight is quantized, not per forward (a reused one was checked once).
        if self.zero_point == "int" and self.axis == 0 and fused.available(w, "weight_fake_quantize"):
            self._check_axis(w)
            # One pass (one launch on GPUs) for range, qparams and fake quant; same arithmetic as below.
            # (A NaN or inf channel raises in the CPU kernel, and fails a device assert in the CUDA one.)
            # The op writes autocast's dtype from a float32 w only (else the caller's op casts): on CUDA that
            # saves the cast's launch; on a CPU (float16 in F16C blocks) it takes about the float32 pass's time.
            out_dtype = cast_to if w.dtype == torch.float32 and cast_to in fused.HALF_DTYPES else None
            return fused.weight_fake_quantize(w, check_bits(bits), out_dtype)
        scale, zp = self.qparams(w, bits)  # (checks the axis)
        _check_finite_scale(scale, "weight channel(s) hold")
        return quantize_with(w, scale, zp, bits, self.axis, self.zero_point)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, zero_point={self.zero_point}"


@contextmanager
def reuse_quantized_weights(model: nn.Module):
    """Within the block, each ``WeightQuantizer`` of ``model`` quantizes its weight once per width and
    reuses the result while the weight is unchanged (see :class:`WeightQuantizer`). For code that
    does not modify the weights (attacks, evaluation, a training step's forward and backward); the
    kept copies (one per layer, width and autocast dtype used in the block: at most the weights'
    size times the number of widths, for each dtype) are dropped at exit. Nests.

    Any optimizer's step inside the block drops the kept copies too: torch's fused optimizers
    (``fused=True``) update the weights without bumping their version counters (torch 2.14), so a
    forward after such a step would have reused the quantization of the old weights."""
    qs = [m for m in model.modules() if isinstance(m, WeightQuantizer) and not m._reuse]

    def drop_kept(optimizer, args, kwargs):
        for q in qs:
            q._kept = {}

    for q in qs:
        q._reuse = True
    stepped = register_optimizer_step_post_hook(drop_kept)
    try:
        yield model
    finally:
        stepped.remove()
        for q in qs:
            q._reuse, q._kept = False, {}


def _slot_masks(slots: int) -> torch.Tensor:
    """Which slots a train-mode batch at slot i updates (its own and the observed one, the last): a
    mask, so the update is the same few ops on every device, with no host sync."""
    masks = torch.zeros(slots, slots, dtype=torch.bool)
    for i in range(slots):
        masks[i, i] = masks[i, slots - 1] = True
    return masks


class ActQuantizer(nn.Module):
    """Per-tensor asymmetric activation quantizer with running ranges.

    Train mode quantizes with the batch's own min/max and, at every forward (full precision
    included: ``bits=None`` then returns ``x`` untouched), updates two running ranges by
    ``running = ema * running + (1 - ema) * batch`` (the reference code's 0.1/0.9): the slot of the
    active precision and the *observed* slot, which sees every train-mode batch whatever its
    precision. Eval mode quantizes with the precision's own running range, or with the observed
    range for a precision that never saw a training batch (e.g. a model trained at full precision
    and run at 4 bits); only a quantizer that never saw any training batch falls back to the
    batch's own range, which makes a prediction depend on the rest of its batch.
    ``shared_range=True`` keeps only the observed slot, one range for all precisions, as the
    reference does. In eval mode the scale and zero point of a tracked range are computed once and
    kept while the running buffers are unchanged (:mod:`dwq.quant.eval_qparams`): write them in place
    or through ``set_range`` / ``load_state_dict``, not through ``.data``.

    ``zero_point="int"``: the first batch initializes a range. ``zero_point="float"`` is the
    reference's quantizer with the reference's state: the zero point (range minimum) and the range
    width, each an EMA started from zero (the first batch gives ``0.9 * batch``), so that an
    imported reference range gives exactly the reference's scale ``range / (2^b - 1)``.

    state_dict: ``running_min`` and ``running_max`` (``zero_point="int"``) or ``running_range``
    (``"float"``), float32 [S], and ``initialized`` (bool [S]); S = 1 with ``shared_range``, else
    len(precisions) + 1: slot i belongs to ``precisions[i]``, the last slot is the observed range.
    """

    _version = 2  # 1: no observed slot; "float" kept running_max

    def __init__(
        self,
        precisions: Iterable,
        zero_point: str = "int",
        shared_range: bool = False,
        ema: float = 0.1,
    ):
        super().__init__()
        self.precisions = normalize_set(precisions)
        self.zero_point = check_zero_point_mode(zero_point)
        self.shared_range = check_flag(shared_range, "ActQuantizer: shared_range")
        if is_bool(ema) or not isinstance(ema, numbers.Real) or not 0.0 <= ema < 1.0:
            # (a string or None failed comparing with 0.0: "'<=' not supported between 'float' and 'str'")
            raise ValueError(f"ema (a layer's act_ema) must be a number in [0, 1), got {ema!r}")
        self.ema = float(ema)
        slots = 1 if self.shared_range else len(self.precisions) + 1
        self.register_buffer("running_min", torch.zeros(slots))
        self.register_buffer(self._upper_name, torch.zeros(slots))
        self.register_buffer("initialized", torch.zeros(slots, dtype=torch.bool))
        self.register_buffer("_update_masks", _slot_masks(slots), persistent=False)
        # Eval-mode qparams kept between forwards, and what the host knows of `initialized` (see
        # dwq.quant.eval_qparams): no act_qparams call per eval forward once a range is tracked.
        self._tracked, self._eval_qp, self._graphed = TrackedSlots(), EvalQparams(), False
        self._tracked.read(self.initialized)

    @property
    def _upper_name(self) -> str:
        return "running_range" if self.zero_point == "float" else "running_max"

    @property
    def _upper(self) -> torch.Tensor:
        return getattr(self, self._upper_name)

    def _apply(self, fn, recurse=True):
        # The range and its EMA stay float32 whatever the module is cast to (model.half(): the fused
        # kernels take float32 state, and the pure-PyTorch path computes the EMA in float32), unrounded.
        kept = {name: getattr(self, name) for name in ("running_min", self._upper_name, "initialized")}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = getattr(self, name)
            if new.dtype != old.dtype:  # (module.type(dtype) casts the bool flags too)
                setattr(self, name, old.to(new.device))
        # The masks are constants, not state (no state_dict entry): rebuilt, since fn may be to_empty's,
        # which leaves uninitialized memory that load_state_dict never overwrites.
        self._rebuild_masks(self._update_masks.device)
        self._read_tracked()  # (new buffers: a move, not a forward, so a host sync is harmless here)
        return self

    def _read_tracked(self) -> None:
        self._eval_qp.clear()
        if is_fake(self.initialized):
            self._tracked.forget()
        else:
            self._tracked.read(self.initialized)

    def __getstate__(self):
        # A copy or pickle keeps no references to this quantizer's buffers; __setstate__ reads its own.
        state = dict(super().__getstate__())
        state.update(_tracked=TrackedSlots(), _eval_qp=EvalQparams())
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_tracked" not in state:  # (pickled before the cache existed)
            self._tracked, self._eval_qp, self._graphed = TrackedSlots(), EvalQparams(), False
        self._read_tracked()

    def _may_keep(self) -> bool:
        """Whether this forward may use or keep eval qparams and raise the tracked flags: not while
        compiling (a compiled forward keeps nothing), nor in a CUDA graph capture (a replay runs none of
        this Python); and never again once a train-mode forward was captured: its replays update the
        buffers without bumping their version counters, which the kept qparams rely on."""
        if self._graphed or torch.compiler.is_compiling():
            return False
        if torch.cuda.is_initialized() and torch.cuda.is_current_stream_capturing():  # (no CUDA, no capture)
            if self.training:
                self._graphed = True
                self._tracked.forget()
                self._eval_qp.clear()
            return False
        return True

    def reset_parameters(self) -> None:
        """No range tracked (as at construction). Called by the meta-device recipe (``to_empty`` then
        ``reset_parameters`` of every module), after which the ranges held uninitialized memory."""
        self.running_min.zero_()
        self._upper.zero_()
        self.initialized.fill_(False)
        self._read_tracked()

    def _rebuild_masks(self, device) -> None:
        self._update_masks = _slot_masks(len(self._update_masks)).to(device)

    @property
    def observed_slot(self) -> int:
        """The slot every train-mode batch updates (the only one with ``shared_range``)."""
        return self._buffers["running_min"].numel() - 1  # (not Module.__getattr__: read at every train forward)

    def slot(self, precision) -> int:
        """The slot of ``precision`` (any spelling: None/"fp", 4/"4", (4, 8)/"4w8a"): the one slot of a
        shared range (which every width of the set, and full precision, updates), else the precision's
        own; a precision outside the set has none (ValueError)."""
        # (The layers pass normalized ones: no parsing per forward. Only a tuple is compared with the set as it
        # is: a numpy integer compared with a pair broadcasts to an array, whose truth value is an error.)
        if type(precision) is not tuple or precision not in self.precisions:
            precision = normalize_precision(precision)
        if precision not in self.precisions and not (self.shared_range and precision is None):
            # (a shared range too: set_range(precision=3) on a [4, 8] set was taken, and a forward at 3 bits ran)
            raise ValueError(f"precision {precision_name(precision)} is not in the quantizer's precision set "
                             f"[{', '.join(precision_name(p) for p in self.precisions)}]")
        return 0 if self.shared_range else self.precisions.index(precision)

    def eval_slot(self, precision) -> Optional[int]:
        """The slot whose range eval mode uses at ``precision``: its own if it saw a training batch,
        else the observed one; None if neither did (eval then uses each batch's own range).
        Reads the buffers on the host (syncs on accelerators): for conversion, not for forwards."""
        for i in (self.slot(precision), self.observed_slot):
            if bool(self.initialized[i]):
                return i
        return None

    def eval_qparams(self, precision, bits: int):
        """(scale, zero point) that eval mode uses at ``precision`` and ``bits`` (shapes [1]; the
        zero point int32, or the float minimum with ``zero_point="float"``), or None when no range
        was tracked (see ``eval_slot``)."""
        i = self.eval_slot(precision)
        if i is None:
            return None
        lo, up = self.running_min[i:i + 1], self._upper[i:i + 1]
        if self.zero_point == "float":
            return qparams_from_range(lo, up, bits)
        return choose_qparams(lo, up, bits, "int")

    @torch.no_grad()
    def set_range(self, min_val: float, max_val: float, precision=None) -> None:
        """Sets the running range of ``precision`` (any spelling; None = every slot) and marks it seen."""
        if not min_val <= max_val:
            raise ValueError(f"set_range: min_val must be <= max_val, got {min_val} and {max_val}")
        if not torch.isfinite(torch.tensor([min_val, max_val, max_val - min_val], dtype=torch.float32)).all():
            # (every later forward at this slot would fail on an infinite scale, far from the cause)
            raise ValueError(f"set_range: min_val, max_val and their difference must be finite in float32, "
                             f"got {min_val} and {max_val}")
        slots = range(self.running_min.numel()) if precision is None else [self.slot(precision)]
        upper = max_val - min_val if self.zero_point == "float" else max_val
        for i in slots:
            self.running_min[i] = min_val
            self._upper[i] = upper
            self.initialized[i] = True
        self._read_tracked()

    @torch.no_grad()
    def _track(self, i: int, mn: torch.Tensor, mx: torch.Tensor) -> None:
        # A batch range without a finite width (NaN, inf, wider than float32) leaves the ranges as they
        # were (arith::act_running_range): its forward fails on the scale; the EMA would never recover.
        # A batch bound of -0 counts as +0, as there: aminmax may return either zero when both are
        # present, and the buffers must be the same bits on every run and on the fused path. (torch.where,
        # not "+ 0.0", which inductor drops as a no-op.)
        mn, mx = torch.where(mn == 0, 0.0, mn), torch.where(mx == 0, 0.0, mx)
        width = mx - mn
        mask, first = self._update_masks[i] & (width - width == 0), ~self.initialized
        ema = self.ema
        if self.zero_point == "float":
            # The reference's buffers start at zero and hold (min, max - min).
            zero = torch.zeros_like(self.running_min)
            new_min = ema * torch.where(first, zero, self.running_min) + (1 - ema) * mn
            new_up = ema * torch.where(first, zero, self.running_range) + (1 - ema) * (mx - mn)
        else:
            new_min = torch.where(first, mn, ema * self.running_min + (1 - ema) * mn)
            new_up = torch.where(first, mx, ema * self.running_max + (1 - ema) * mx)
        self.running_min.copy_(torch.where(mask, new_min, self.running_min))
        self._upper.copy_(torch.where(mask, new_up, self._upper))
        self.initialized.logical_or_(mask)

    def forward(self, x: torch.Tensor, bits: Optional[int], precision=None) -> torch.Tensor:
        """Quantizes ``x`` at ``bits`` (None: full precision, ``x`` itself; train mode still tracks
        its range); ``precision`` (see :meth:`slot`; default: ``bits``, the precision of a layer whose
        weights and activations share the width) picks the range slot."""
        call = (bits, tuple(precision) if isinstance(precision, list) else precision)  # (a key of the kept qparams)
        if not self.training and type(bits) is int and not torch.compiler.is_compiling() and not self._graphed:
            # Eval mode with a tracked range, first and in few steps (issue 10: a GPU's eager eval forward
            # is bound by the host): the kept qparams of this call, if the buffers are unchanged. (Not while
            # compiling nor in a CUDA graph capture: see _may_keep.)
            kept = self._eval_qp.get(self._buffers, call, x)
            if kept is not None and not (kept[0].is_cuda and torch.cuda.is_current_stream_capturing()):
                return torch.ops.dwq.fake_quantize.default(x, kept[0], kept[1], bits, None, False)[0]
        if bits is not None:
            check_bits(bits)
            if precision is None:  # (else a direct call at 4 bits tracked and read the full-precision slot)
                precision = bits
        elif not self.training:
            return x
        if x.numel() == 0:
            # Nothing to quantize, whatever the range (an untracked quantizer has none: its NaN range failed
            # as "the tensor has NaN values"), and no range to track: the layers take an empty batch as
            # torch's do (a train-mode one was a ValueError, even at full precision).
            return x
        i = self.slot(precision)
        if not self.training and bits is not None:
            self._warn_batch_range(x, i)
        # Not under torch.compile: there the op is an opaque call that needs x in memory, while the torch ops
        # below (equal to it bit for bit) let inductor fuse the range, the qparams and the fake quantization
        # with x's producer (batch norm, ReLU) and the conv's layout copy.
        if (self.zero_point == "int" and bits is not None and not torch.compiler.is_compiling()
                and fused.available(x, "act_qparams")):
            scale, zp = self._fused_qparams(x, i, bits, call)
            # The op itself, not dwq.quant.fake_quantize: the wrapper's argument checks and conversions hold
            # by construction for act_qparams' float32 [1] scale and int32 [1] zero point on x's device, and
            # they are host time on every forward of every layer (issue 10: a GPU's eval forward is host-bound).
            return torch.ops.dwq.fake_quantize.default(x, scale, zp, bits, None, False)[0]
        mn, mx = torch.aminmax(x.detach())
        mn, mx = mn.float(), mx.float()  # the range and its EMA are float32 whatever x's dtype
        if self.training:
            keep = self._may_keep()
            known = keep and self._tracked.valid(self.initialized)
            self._track(i, mn, mx)
            if keep:
                self._tracked.raised(self.initialized, known)  # (which slots it set is device data: none known)
            if bits is None:
                return x
            scale, zp = choose_qparams(mn.reshape(1), mx.reshape(1), bits, self.zero_point)
            return self._quantize(x, scale, zp, bits)
        # torch.where rather than an `if`: no host sync on accelerators.
        o = self.observed_slot
        own, seen = self.initialized[i], self.initialized[o]
        lo = torch.where(own, self.running_min[i], torch.where(seen, self.running_min[o], mn))
        if self.zero_point == "float":
            rng = torch.where(own, self.running_range[i], torch.where(seen, self.running_range[o], mx - mn))
            scale, zp = qparams_from_range(lo.reshape(1), rng.reshape(1), bits)
        else:
            hi = torch.where(own, self.running_max[i], torch.where(seen, self.running_max[o], mx))
            scale, zp = choose_qparams(lo.reshape(1), hi.reshape(1), bits, self.zero_point)
        return self._quantize(x, scale, zp, bits)

    def _warn_batch_range(self, x: torch.Tensor, i: int) -> None:
        # An eval forward of a quantizer that never saw a training batch quantizes with the batch's own
        # range, silently (an imported torchvision model scored before training). Checked on the CPU only,
        # where reading the flags is free; on accelerators it would be a host sync at every forward.
        flags = self.initialized
        if (x.device.type != "cpu" or flags.device.type != "cpu" or getattr(self, "_warned_batch_range", False)
                or quiet() or torch.compiler.is_compiling() or is_fake(flags)):
            return
        try:  # (read through numpy: no aten op, so an eval forward still makes none that would sync on a GPU)
            seen = flags.detach().numpy()
        except RuntimeError:  # (no numpy)
            return
        if not (seen[i] or seen[self.observed_slot]):
            self._warned_batch_range = True
            # (One message for all layers: Python's default filter shows it once, where the first layer ran.)
            warnings.warn("dwq: activation quantizers that never saw a training batch quantize each eval batch "
                          "with that batch's own range, so an image's output depends on the rest of its batch; "
                          "run train-mode batches (or ActQuantizer.set_range) first", stacklevel=3)

    def _fused_qparams(self, x, i: int, bits: int, call: tuple):
        """act_qparams (one pass, one launch on GPUs, no host sync: range, EMA updates and qparams); in
        eval mode, its result for a tracked range is kept for ``call`` (``forward`` uses it while the
        buffers are unchanged)."""
        b = self._buffers  # (not Module.__getattr__ per buffer: this runs at every train-mode forward of every layer)
        buffers = b["running_min"], b["running_max"], b["initialized"]
        seen = buffers[2]
        observed = self.observed_slot
        keep = self._may_keep()
        known = keep and self._tracked.valid(seen)
        scale, zp = fused.act_qparams(x.detach(), *buffers, i, observed, bits, self.ema, self.training)
        _check_fused_scale(scale)
        if keep and self.training:  # (a train-mode call that returns has tracked both slots; on CUDA, or failed)
            self._tracked.raised(seen, known, (i, observed))
        elif keep and known and (self._tracked.known(seen, i) or self._tracked.known(seen, observed)):
            self._eval_qp.put(call, buffers, scale, zp)  # (a tracked range: x was not read)
        return scale, zp

    def _quantize(self, x, scale, zp, bits):
        _check_finite_scale(scale, "x holds")  # (a tracked range is finite: only the batch's own can be infinite)
        return quantize_with(x, scale, zp, bits, None, self.zero_point)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        version = (local_metadata or {}).get("version")
        # Only a dict that says it is version 1: a plain dict ({k: v ...}, a safetensors file) carries no
        # version, and read as version 1 an int-mode state_dict loaded into a "float" layer (running_max
        # taken for the old float bound) and a smaller set's slots were padded into this one's, silently.
        if version is not None and version < 2:
            _upgrade_v1(self, state_dict, prefix)
        # The flags load only with the range they vouch for: strict=False of a state_dict lacking a bound
        # (the other zero-point mode's, a filtered one) marked slots tracked with a range never loaded.
        # (torch's load_state_dict hands each module its own copy of the dict: the caller's keeps the entry.)
        flags = prefix + "initialized"
        partial = flags in state_dict and not all(prefix + k in state_dict for k in ("running_min", self._upper_name))
        if partial:
            state_dict.pop(flags)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        if partial and flags in missing:  # (it was given, only not loaded)
            missing.remove(flags)
        for name in ("running_min", self._upper_name):
            if getattr(self, name).dtype != torch.float32:
                # load_state_dict(assign=True) of a half state_dict took its tensors as they are: the ranges
                # stay float32 (see _apply), which every forward, and model.half(), relied on
                setattr(self, name, getattr(self, name).float())
        if self._update_masks.device != self.running_min.device:
            # load_state_dict(assign=True) into a quantizer built on meta moves the state to the loaded
            # tensors' device but leaves the masks (no state_dict entry) on meta: train-mode forwards failed.
            self._rebuild_masks(self.running_min.device)
        self._read_tracked()

    def extra_repr(self) -> str:
        return f"slots={self.running_min.numel()}, zero_point={self.zero_point}, ema={self.ema}"


def _upgrade_v1(q: ActQuantizer, sd, prefix: str) -> None:
    """A state_dict saved before the observed slot (and, for "float", before running_range): the
    observed slot starts unseen; a float range is recovered as max - min (as exact as it was)."""
    keys = [prefix + k for k in ("running_min", "running_max", "initialized")]
    if not all(k in sd for k in keys):
        return
    lo, hi, seen = (sd.pop(k) for k in keys)
    if not q.shared_range and lo.numel() == len(q.precisions):
        lo, hi = torch.cat([lo, lo.new_zeros(1)]), torch.cat([hi, hi.new_zeros(1)])
        seen = torch.cat([seen, seen.new_zeros(1)])
    sd[prefix + "running_min"], sd[prefix + "initialized"] = lo, seen
    sd[prefix + q._upper_name] = hi - lo if q.zero_point == "float" else hi

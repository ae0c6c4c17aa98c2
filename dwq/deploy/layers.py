"""The layers of an integer model (:class:`dwq.deploy.IntegerModel`).

A layer whose arithmetic depends on the precision holds one *plan* per precision of its set and runs
the plan of the current one; it is a :class:`dwq.nn.PrecisionModule`, so ``dwq.set_precision``,
``dwq.precision`` and ``dwq.RandomPrecision`` drive an integer model exactly as the fake-quant model.

* :class:`IntConv2d` / :class:`IntLinear`: a quantized conv / linear as one fused ``dwq.ops`` call per
  forward: quantize the input if it arrives as float, integer GEMM/conv, epilogue (scale, folded BN,
  ReLU), float32 out or the next quantized layer's codes. At full precision (``None`` in the set) the
  plan is a float conv / linear with the batch norm folded into its weights.
* :class:`FloatAffine`: a batch norm that stays in float (per precision ``y = a * x + b``), optional ReLU.
* :class:`FloatConv2d`, :class:`FloatLinear`, :class:`FloatNormalize`: layers kept in float (stem,
  shortcuts, classifier, input normalization); the same at every precision.

Every layer is built from ``(config, tensors)``: ``config`` is JSON (shapes, widths, flags) and
``tensors`` its persistent buffers by state_dict key, which is how both ``convert`` and ``load``
make one; the constructor checks the config (types and ranges, bit widths that match the precision,
scales and zero points the ops take) and raises a ValueError naming the layer and the field, so that a
damaged description fails at load, not at the first forward. Quantized weights are kept as codes at
exactly ``w_bits`` bits (:mod:`dwq.deploy.bitpack`); the kernels' packed layout is derived from them
(not saved) and rebuilt when the layer changes device.
Inference only.
"""
from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from dwq import ops
from dwq.deploy.bitpack import pack_bits, packed_nbytes, unpack_bits
from dwq.nn.control import PrecisionModule
from dwq._index import is_bool
from dwq.ops.fake_quant import check_qparam_values
from dwq.quant.precision import normalize_precision, parse_precision, precision_name
from dwq.quant.quantizers import check_flag

__all__ = ["IntConv2d", "IntLinear", "FloatAffine", "FloatConv2d", "FloatLinear", "FloatNormalize", "LAYER_KINDS",
           "layer_from_config"]

Tensors = Dict[str, torch.Tensor]


def _take(tensors: Tensors, key: str, dtype: torch.dtype, shape, where: str) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        raise ValueError(f"{where}: tensor {key!r} is missing")
    if t.dtype != dtype or list(t.shape) != list(shape):
        raise ValueError(f"{where}: tensor {key!r} must be {dtype} {list(shape)}, got {t.dtype} {list(t.shape)}")
    return t


def _nbytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _pset(names):
    return [parse_precision(n) for n in names]


# Config checks. A layer is built from JSON that load() reads from a file: a value the ops would refuse
# later (or that int()/bool() would coerce: relu="no" was True, w_bits=2.9 was 2) is refused here, at
# construction, naming the layer, the field, the value and what was expected.
def is_int(v) -> bool:
    """A JSON / Python int, never a bool or a float (2.0 included)."""
    return isinstance(v, int) and not is_bool(v)


def check_int(v, name: str, low: int) -> int:
    """``v`` if an int >= ``low``, else ValueError naming ``name``."""
    if not is_int(v) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return int(v)


def check_pair(v, name: str, low: int, single: bool = False) -> tuple:
    """``v`` as a pair of ints >= ``low`` (``single``: an int also stands for the pair), else ValueError."""
    vals = [v, v] if single and is_int(v) else v
    if not isinstance(vals, (list, tuple)) or len(vals) != 2 or not all(is_int(t) and t >= low for t in vals):
        raise ValueError(f"{name} must be {'an int or ' if single else ''}a pair of ints >= {low}, got {v!r}")
    return tuple(int(t) for t in vals)


def _cfg_int(cfg: dict, key: str, where: str, low: int = 1) -> int:
    try:
        return check_int(cfg.get(key), key, low)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _cfg_pair(cfg: dict, key: str, where: str, low: int) -> tuple:
    try:
        return check_pair(cfg.get(key), key, low)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _cfg_flag(cfg: dict, key: str, where: str, default=None) -> bool:
    return check_flag(cfg.get(key, default), f"{where}: {key}")


def _cfg_bits(v, key: str, where: str, expected: int, what: str, allow_none: bool = False) -> Optional[int]:
    """A bit width of the config, which the precision fixes: ``expected`` (``what`` says which of its
    widths), or None where ``allow_none``. A mismatch would run (codes read at another width), silently."""
    if (v is None and allow_none) or (is_int(v) and v == expected):
        return v
    raise ValueError(f"{where}: {key} must be {expected} (the precision's {what}){' or null' if allow_none else ''}, "
                     f"got {v!r}")


def _check_qparams(scale: torch.Tensor, zero_point: torch.Tensor, bits: int, where: str) -> None:
    """dwq.ops' value checks of a scale and zero point (finite > 0; a code of ``bits`` bits), on the host:
    the kernels would refuse them only at the first forward at that precision."""
    check_qparam_values(scale.detach().cpu(), zero_point.detach().cpu(), bits, where)


class _QuantPlan(nn.Module):
    """One quantized precision of an :class:`IntConv2d`/:class:`IntLinear`.

    Buffers: ``w_codes`` uint8 (codes at w_bits bits, :mod:`dwq.deploy.bitpack`), ``w_scale`` float32 [O],
    ``w_zero_point`` int32 [O], ``x_scale`` float32 [1], ``x_zero_point`` int32 [1]; optional
    ``affine_scale`` / ``affine_bias`` float32 [O] (folded BN and bias) and ``out_scale`` float32 [1] /
    ``out_zero_point`` int32 [1] (requantization to the next layer's input codes at ``out_bits``).
    """

    def __init__(self, cfg: dict, tensors: Tensors, weight_shape, where: str, precision):
        super().__init__()
        o = weight_shape[0]
        w, a = normalize_precision(precision)
        self.w_bits = _cfg_bits(cfg.get("w_bits"), "w_bits", where, w, "weight bits")
        self.a_bits = _cfg_bits(cfg.get("a_bits"), "a_bits", where, a, "activation bits")
        self.relu = _cfg_flag(cfg, "relu", where)
        # the codes of the next quantized layer's input, at the same precision
        self.out_bits = _cfg_bits(cfg.get("out_bits"), "out_bits", where, a, "activation bits", allow_none=True)
        self.weight_shape = tuple(weight_shape)
        numel = _numel(weight_shape)
        self.register_buffer("w_codes", _take(tensors, "w_codes", torch.uint8, [packed_nbytes(numel, self.w_bits)],
                                              where))
        self.register_buffer("w_scale", _take(tensors, "w_scale", torch.float32, [o], where))
        self.register_buffer("w_zero_point", _take(tensors, "w_zero_point", torch.int32, [o], where))
        self.register_buffer("x_scale", _take(tensors, "x_scale", torch.float32, [1], where))
        self.register_buffer("x_zero_point", _take(tensors, "x_zero_point", torch.int32, [1], where))
        for key in ("affine_scale", "affine_bias"):
            self.register_buffer(key, _take(tensors, key, torch.float32, [o], where)
                                 if _cfg_flag(cfg, key, where, False) else None)
        if self.out_bits is not None:
            self.register_buffer("out_scale", _take(tensors, "out_scale", torch.float32, [1], where))
            self.register_buffer("out_zero_point", _take(tensors, "out_zero_point", torch.int32, [1], where))
            _check_qparams(self.out_scale, self.out_zero_point, self.out_bits, f"{where} (out_scale, out_zero_point)")
        else:
            self.out_scale = self.out_zero_point = None
        _check_qparams(self.w_scale, self.w_zero_point, self.w_bits, f"{where} (w_scale, w_zero_point)")
        _check_qparams(self.x_scale, self.x_zero_point, self.a_bits, f"{where} (x_scale, x_zero_point)")
        self._pack()

    def config(self) -> dict:
        return {"w_bits": self.w_bits, "a_bits": self.a_bits, "relu": self.relu, "out_bits": self.out_bits,
                "affine_scale": self.affine_scale is not None, "affine_bias": self.affine_bias is not None}

    def codes(self) -> torch.Tensor:
        """The weight codes, int32 ``weight_shape`` (on the layer's device)."""
        codes = unpack_bits(self.w_codes, self.w_bits, _numel(self.weight_shape))
        return codes.reshape(self.weight_shape).to(self.w_codes.device)

    def _pack(self):
        # The kernels' layout is derived, device-specific state: a plain attribute, so that `.to()` does
        # not carry a blob packed for another device; `_apply` repacks instead.
        codes = self.codes()
        if len(self.weight_shape) == 4:
            self.w_packed = ops.pack_conv_weight(codes, self.w_zero_point, self.w_bits)
        else:
            self.w_packed = ops.pack_weight(codes, self.w_zero_point, self.w_bits)
        b = self._buffers
        self._packed_refs = tuple(b.values())
        self._packed_from = (buffer_ids(self), b["w_codes"]._version, b["w_zero_point"]._version)

    def current(self) -> bool:
        """Whether ``w_packed`` (and the op arguments cached from this plan) still match the buffers: none
        replaced (``plan.x_scale = ...``, ``torch.func.functional_call``) and the codes and zero points
        the layout derives from not edited in place (a bit-flip study's ``w_codes[i] ^= 1``); the ops
        read an in-place edit of the other buffers as it is."""
        b = self._buffers
        return (buffer_ids(self), b["w_codes"]._version, b["w_zero_point"]._version) == self._packed_from

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.w_packed.device != self.w_codes.device:
            self._pack()
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._pack()  # load_state_dict wrote new codes / zero points into the buffers: the layout follows

    def nbytes(self) -> dict:
        return {"weight": _nbytes(self.w_codes), "float32_weight": 4 * _numel(self.weight_shape),
                "scale": _nbytes(self.w_scale, self.w_zero_point, self.x_scale, self.x_zero_point, self.affine_scale,
                                 self.affine_bias, self.out_scale, self.out_zero_point),
                "float": 0, "runtime_weight": _nbytes(self.w_packed)}

    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        return ops.quantize_act(x, self.x_scale, self.x_zero_point, self.a_bits) if x.is_floating_point() else x

    def extra_repr(self) -> str:
        out = "float" if self.out_bits is None else f"codes@{self.out_bits}b"
        return f"w_bits={self.w_bits}, a_bits={self.a_bits}, relu={self.relu}, out={out}"


class _FloatPlan(nn.Module):
    """The full-precision plan: float ``weight`` (BN folded in) and ``bias``; optional ReLU."""

    def __init__(self, cfg: dict, tensors: Tensors, weight_shape, where: str):
        super().__init__()
        self.relu = _cfg_flag(cfg, "relu", where)
        self.register_buffer("weight", _take(tensors, "weight", torch.float32, weight_shape, where))
        self.register_buffer("bias", _take(tensors, "bias", torch.float32, [weight_shape[0]], where)
                             if _cfg_flag(cfg, "bias", where, False) else None)

    def config(self) -> dict:
        return {"float": True, "relu": self.relu, "bias": self.bias is not None}

    def nbytes(self) -> dict:
        return {"weight": 0, "float32_weight": 0, "scale": 0, "float": _nbytes(self.weight, self.bias),
                "runtime_weight": 0}

    def extra_repr(self) -> str:
        return f"float, relu={self.relu}"


def buffer_ids(m: nn.Module) -> tuple:
    """The identities of ``m``'s own buffers: what a cache built from them compares, holding them (so
    that no new tensor can take an id while the cache keeps it)."""
    return tuple(map(id, m._buffers.values()))


class _ArgCache:
    """Per-precision op arguments built once (``_calls``), so that a forward does no module attribute
    lookups nor tensor slicing (it matters at batch 1); dropped when the tensors they hold change, and
    rebuilt (repacked) when a buffer they come from was replaced or its codes edited in place."""

    _calls = None

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._calls = None  # the cached arguments hold the old tensors
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._calls = None  # (an int layer's plans repack when loaded: the cached arguments hold old layouts)


class _IntLayer(_ArgCache, PrecisionModule):
    kind = ""
    integer_layer = True  # dwq.quant.cost.profile refuses what it cannot count (it must not import deploy)

    def __init__(self, cfg: dict, tensors: Tensors, weight_shape):
        super().__init__()
        self.source = cfg.get("source", "")
        self._init_precision(_pset(cfg["precisions"]))
        if len(cfg["plans"]) != len(self.precisions):
            raise ValueError(f"{self.source}: {len(cfg['plans'])} plans for {len(self.precisions)} precisions")
        plans = []
        for i, (p, pc) in enumerate(zip(self.precisions, cfg["plans"])):
            sub = {k[len(f"plans.{i}."):]: v for k, v in tensors.items() if k.startswith(f"plans.{i}.")}
            where = f"{self.source} at precision {precision_name(p)}"
            if not isinstance(pc, dict):
                raise ValueError(f"{where}: a plan must be a JSON object, got {pc!r:.100}")
            if (p is None) != _cfg_flag(pc, "float", where, False):
                raise ValueError(f"{where}: plan kind does not match the precision")
            plans.append(_FloatPlan(pc, sub, weight_shape, where) if p is None else
                         _QuantPlan(pc, sub, weight_shape, where, p))
        self.plans = nn.ModuleList(plans)

    def _call(self):
        """(plan, the op's arguments after the input codes) of the current precision; built once, so that
        a forward does no attribute lookups on modules (it matters at batch 1)."""
        if self._calls is None:
            self._calls = [(p, None if isinstance(p, _FloatPlan) else self._op_args(p)) for p in self.plans]
        call = self._calls[self.precision_index]
        if call[1] is not None and not call[0].current():
            p = call[0]
            p._pack()
            call = self._calls[self.precision_index] = (p, self._op_args(p))
        return call

    def _forward(self, x, float_op, int_op):
        """The active precision's plan: ``float_op(x, plan)`` (+ ReLU) for a float plan, else ``int_op``
        on x's codes with the plan's cached arguments."""
        p, args = self._call()
        if args is None:
            y = float_op(x, p)
            return torch.relu_(y) if p.relu else y
        return int_op(p.input_codes(x), *args)

    def _base_config(self) -> dict:
        return {"kind": self.kind, "source": self.source, "precisions": [precision_name(p) for p in self.precisions],
                "plans": [p.config() for p in self.plans]}

    def nbytes(self, i: int) -> dict:
        """Bytes of precision ``i``'s plan: ``weight`` (codes at w_bits), ``float32_weight`` (the same
        weights in float32), ``scale`` (scales, zero points, folded BN), ``float`` (a float plan's
        weights), ``runtime_weight`` (the kernels' packed layout in memory, not saved)."""
        return self.plans[i].nbytes()

    @property
    def plan(self) -> nn.Module:
        """The plan of the current precision."""
        return self.plans[self.precision_index]


class IntConv2d(_IntLayer):
    """A quantized conv2d (groups 1, dilation 1, zero padding) with a plan per precision.

    Input: float32 [B, C, H, W] (quantized here with the plan's input scale and zero point) or codes
    [B, C, H, W] already at the plan's input quantization (uint8 for a_bits <= 8, else int32), best
    channels-last. Output: channels-last float32 [B, O, OH, OW], or codes for the next quantized layer.
    """

    kind = "int_conv2d"

    def __init__(self, cfg: dict, tensors: Tensors):
        where = cfg.get("source", "")
        self.in_channels, self.out_channels = _cfg_int(cfg, "in_channels", where), _cfg_int(cfg, "out_channels", where)
        self.kernel_size = _cfg_pair(cfg, "kernel_size", where, 1)
        self.stride, self.padding = _cfg_pair(cfg, "stride", where, 1), _cfg_pair(cfg, "padding", where, 0)
        super().__init__(cfg, tensors, (self.out_channels, self.in_channels) + self.kernel_size)

    def config(self) -> dict:
        return dict(self._base_config(), in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=list(self.kernel_size), stride=list(self.stride), padding=list(self.padding))

    def _op_args(self, p):
        return (p.x_scale, p.x_zero_point, p.a_bits, p.w_packed, p.w_scale, self.kernel_size, self.stride,
                self.padding, p.affine_scale, p.affine_bias, p.relu, p.out_scale, p.out_zero_point, p.out_bits or 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Checked here, not in the op: the op would blame its packed weights (a wrong channel count) and
        # the float plan's F.conv2d takes an unbatched [C, H, W] that fails later, or not at all.
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"layer '{self.source}' (IntConv2d): expected input [N, {self.in_channels}, H, W], got "
                             f"shape {tuple(x.shape)}")
        return self._forward(x, lambda x, p: F.conv2d(x, p.weight, p.bias, self.stride, self.padding), ops.qconv2d)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, source={self.source!r}, precision={precision_name(self.precision)}")


class IntLinear(_IntLayer):
    """A quantized linear layer with a plan per precision. Input float32 [B, K] or codes [B, K];
    output float32 [B, N] or codes."""

    kind = "int_linear"

    def __init__(self, cfg: dict, tensors: Tensors):
        where = cfg.get("source", "")
        self.in_features, self.out_features = _cfg_int(cfg, "in_features", where), _cfg_int(cfg, "out_features", where)
        super().__init__(cfg, tensors, (self.out_features, self.in_features))

    def config(self) -> dict:
        return dict(self._base_config(), in_features=self.in_features, out_features=self.out_features)

    def _op_args(self, p):
        return (p.x_scale, p.x_zero_point, p.a_bits, p.w_packed, p.w_scale, p.affine_scale, p.affine_bias, p.relu,
                p.out_scale, p.out_zero_point, p.out_bits or 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:  # (one message at every precision, naming the layer)
            raise ValueError(f"layer '{self.source}' (IntLinear): expected input [..., {self.in_features}], got "
                             f"shape {tuple(x.shape)}")
        return self._forward(x, lambda x, p: F.linear(x, p.weight, p.bias), ops.qlinear)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, source={self.source!r}, "
                f"precision={precision_name(self.precision)}")


class FloatAffine(_ArgCache, PrecisionModule):
    """A batch norm kept in float: ``y = scale[i] * x + bias[i]`` per channel for precision ``i`` of the
    set (one row per precision: a switchable BN's branches, or the same plain BN repeated), optional
    ReLU, then float32 out or, where ``out_bits[i]`` is set, the codes of the one quantized layer it feeds.

    x: float32 [B, C, H, W]. Buffers: ``scale``, ``bias`` float32 [P, C]; with codes out also
    ``out_scale`` float32 [P] and ``out_zero_point`` int32 [P] (rows of float precisions unused).
    """

    kind = "affine"

    def __init__(self, cfg: dict, tensors: Tensors):
        super().__init__()
        self.source = cfg.get("source", "")
        self._init_precision(_pset(cfg["precisions"]))
        self.channels, self.relu = _cfg_int(cfg, "channels", self.source), _cfg_flag(cfg, "relu", self.source)
        n = len(self.precisions)
        out_bits = cfg.get("out_bits", [None] * n)
        if not isinstance(out_bits, list) or len(out_bits) != n:
            raise ValueError(f"{self.source}: out_bits must be a list of {n} entries (one per precision), "
                             f"got {out_bits!r}")
        # codes for the next quantized layer at that precision's activation bits; none at full precision
        self.out_bits = []
        for p, b in zip(self.precisions, out_bits):
            where = f"{self.source} at precision {precision_name(p)}"
            if p is None and b is not None:
                raise ValueError(f"{where}: out_bits must be null (no codes at full precision), got {b!r}")
            self.out_bits.append(None if p is None else _cfg_bits(b, "out_bits", where, p[1], "activation bits",
                                                                  allow_none=True))
        self.register_buffer("scale", _take(tensors, "scale", torch.float32, [n, self.channels], self.source))
        self.register_buffer("bias", _take(tensors, "bias", torch.float32, [n, self.channels], self.source))
        if any(b is not None for b in self.out_bits):
            self.register_buffer("out_scale", _take(tensors, "out_scale", torch.float32, [n], self.source))
            self.register_buffer("out_zero_point", _take(tensors, "out_zero_point", torch.int32, [n], self.source))
            for i, (p, b) in enumerate(zip(self.precisions, self.out_bits)):
                if b is not None:
                    _check_qparams(self.out_scale[i:i + 1], self.out_zero_point[i:i + 1], b,
                                   f"{self.source} at precision {precision_name(p)} (out_scale, out_zero_point)")
        else:
            self.out_scale = self.out_zero_point = None

    def config(self) -> dict:
        return {"kind": self.kind, "source": self.source, "precisions": [precision_name(p) for p in self.precisions],
                "channels": self.channels, "relu": self.relu, "out_bits": self.out_bits}

    def nbytes(self, i: int) -> dict:
        n = len(self.precisions)
        return {"weight": 0, "float32_weight": 0, "scale": 0, "runtime_weight": 0,
                "float": (_nbytes(self.scale, self.bias) + _nbytes(self.out_scale, self.out_zero_point)) // n}

    def codes_args(self):
        """``affine_quantize_act``'s arguments after x at the current precision (scale, bias, relu,
        out_scale, out_zero_point, bits), or None where this precision's output is float."""
        ids = buffer_ids(self)  # (the cached rows are views: a replaced buffer would not be read)
        if self._calls is None or ids != self._calls_from:  # (per precision; None at float ones)
            self._calls = [None if b is None else (self.scale[j], self.bias[j], self.relu, self.out_scale[j:j + 1],
                                                   self.out_zero_point[j:j + 1], b) for j, b in enumerate(self.out_bits)]
            self._calls_from, self._calls_refs = ids, tuple(self._buffers.values())
        return self._calls[self.precision_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = self.codes_args()
        if args is None:
            i = self.precision_index
            y = torch.addcmul(self.bias[i].view(1, -1, 1, 1), x, self.scale[i].view(1, -1, 1, 1))
            return torch.relu_(y) if self.relu else y
        return ops.affine_quantize_act(x, *args)  # one pass: y never goes to memory

    def extra_repr(self) -> str:
        out = "float" if all(b is None for b in self.out_bits) else "codes"
        return (f"{self.channels}, relu={self.relu}, out={out}, source={self.source!r}, "
                f"precision={precision_name(self.precision)}")


class _FloatWeights:
    """Weights (and bias) of a layer kept in float, read from the artifact's tensors; no gradient.

    The torch layer is built on the meta device (no memory, no initialization) and then takes the
    file's tensors: a description declaring a huge layer is refused by the shape check, not after
    allocating and initializing the declared size."""

    def _load_weights(self, cfg: dict, tensors: Tensors) -> None:
        self.weight = nn.Parameter(_take(tensors, "weight", torch.float32, self.weight.shape, self.source),
                                   requires_grad=False)
        if self.bias is not None:
            self.bias = nn.Parameter(_take(tensors, "bias", torch.float32, self.bias.shape, self.source),
                                     requires_grad=False)

    def nbytes(self, i: int) -> dict:
        return {"weight": 0, "float32_weight": 0, "scale": 0, "runtime_weight": 0,
                "float": _nbytes(self.weight, self.bias)}


class FloatConv2d(_FloatWeights, nn.Conv2d):
    """A conv2d kept in float (``nn.Conv2d`` rebuilt from its JSON config)."""

    kind = "conv2d"

    def __init__(self, cfg: dict, tensors: Tensors):
        where = cfg.get("source", "")
        c_in, c_out = _cfg_int(cfg, "in_channels", where), _cfg_int(cfg, "out_channels", where)
        groups = _cfg_int(cfg, "groups", where)
        if c_in % groups or c_out % groups:
            raise ValueError(f"{where}: groups {groups} must divide in_channels {c_in} and out_channels {c_out}")
        super().__init__(c_in, c_out, _cfg_pair(cfg, "kernel_size", where, 1), _cfg_pair(cfg, "stride", where, 1),
                         _cfg_pair(cfg, "padding", where, 0), _cfg_pair(cfg, "dilation", where, 1), groups,
                         _cfg_flag(cfg, "bias", where), device="meta")
        self.source = where
        self._load_weights(cfg, tensors)

    def config(self) -> dict:
        return {"kind": self.kind, "source": self.source, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation), "groups": self.groups,
                "bias": self.bias is not None}


class FloatLinear(_FloatWeights, nn.Linear):
    """A linear layer kept in float (``nn.Linear`` rebuilt from its JSON config)."""

    kind = "linear"

    def __init__(self, cfg: dict, tensors: Tensors):
        where = cfg.get("source", "")
        super().__init__(_cfg_int(cfg, "in_features", where), _cfg_int(cfg, "out_features", where),
                         _cfg_flag(cfg, "bias", where), device="meta")
        self.source = where
        self._load_weights(cfg, tensors)

    def config(self) -> dict:
        return {"kind": self.kind, "source": self.source, "in_features": self.in_features,
                "out_features": self.out_features, "bias": self.bias is not None}


class FloatNormalize(nn.Module):
    """``(x - mean) / std`` per channel, as ``dwq.models.Normalize``. Buffers ``mean``, ``std`` float32 [C]."""

    kind = "normalize"

    def __init__(self, cfg: dict, tensors: Tensors):
        super().__init__()
        self.source = cfg.get("source", "")
        c = _cfg_int(cfg, "channels", self.source)
        self.register_buffer("mean", _take(tensors, "mean", torch.float32, [c], self.source))
        self.register_buffer("std", _take(tensors, "std", torch.float32, [c], self.source))
        bad = ~(torch.isfinite(self.std) & (self.std != 0)) | ~torch.isfinite(self.mean)
        if bool(bad.any()):  # (x - mean) / std would be NaN or infinite at every precision
            i = int(bad.nonzero()[0])
            raise ValueError(f"{self.source}: mean and std must be finite and std nonzero, got mean[{i}] = "
                             f"{self.mean[i].item()}, std[{i}] = {self.std[i].item()}")

    def nbytes(self, i: int) -> dict:
        return {"weight": 0, "float32_weight": 0, "scale": 0, "runtime_weight": 0,
                "float": _nbytes(self.mean, self.std)}

    def config(self) -> dict:
        return {"kind": self.kind, "source": self.source, "channels": self.mean.numel()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.numel():
            raise ValueError(f"expected input [N, {self.mean.numel()}, H, W], got {tuple(x.shape)}")
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


LAYER_KINDS = {cls.kind: cls for cls in (IntConv2d, IntLinear, FloatAffine, FloatConv2d, FloatLinear, FloatNormalize)}


def layer_from_config(cfg: dict, tensors: Tensors) -> nn.Module:
    """Builds a layer of kind ``cfg["kind"]`` from its config and its tensors (keys relative to the layer)."""
    cls = LAYER_KINDS.get(cfg.get("kind"))
    if cls is None:
        raise ValueError(f"unknown layer kind {cfg.get('kind')!r}; known: {sorted(LAYER_KINDS)}")
    return cls(cfg, tensors)


def quant_plan_tensors(codes: torch.Tensor, w_scale, w_zero_point, w_bits: int, x_scale, x_zero_point,
                       affine_scale: Optional[torch.Tensor] = None, affine_bias: Optional[torch.Tensor] = None,
                       out_scale=None, out_zero_point=None) -> Tensors:
    """The buffers of a quantized plan from its operands (codes int32 in the weight's shape)."""
    t = {"w_codes": pack_bits(codes, w_bits).to(w_scale.device), "w_scale": w_scale.float(),
         "w_zero_point": w_zero_point.int(), "x_scale": x_scale.float(), "x_zero_point": x_zero_point.int()}
    if affine_scale is not None:
        t["affine_scale"] = affine_scale.float()
    if affine_bias is not None:
        t["affine_bias"] = affine_bias.float()
    if out_scale is not None:
        t["out_scale"], t["out_zero_point"] = out_scale.float(), out_zero_point.int()
    return t


def normalize_names(precisions) -> list:
    """The one spelling of each precision of a set (JSON form)."""
    return [precision_name(normalize_precision(p)) for p in precisions]

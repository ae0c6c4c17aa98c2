"""MACs and BitOPs of a model, per precision and for a precision set (the paper's cost column).

The multiply-accumulates (MACs) of every convolution (1-, 2- and 3-D, transposed ones too) and linear
layer are counted once, by forward hooks on a private copy of the model (the model itself is not touched). BitOPs then follow
from the bit widths, without running the model again:

* a **quantized** layer (a conv/linear that carries a precision set, i.e. ``dwq.nn.QConv2d`` /
  ``dwq.nn.QLinear``) costs ``MACs * w_bits * a_bits`` at precision ``(w_bits, a_bits)`` and
  ``MACs * 32 * 32`` at full precision (``None``);
* a **full-precision** layer (plain ``nn.Conv2d`` / ``nn.Linear``) always costs ``MACs * 32 * 32``.

The cost of a precision *set* (Random Precision Inference draws one precision per forward, uniformly)
is the mean over the set.

Reproducing the paper's numbers
-------------------------------
The paper's PreActResNet18 figures (569.9G at full precision, 21.2G for RPI over 4-8 bits, 63.5G over
4-16 bits, 32x32 input) are ``0.5565 G x mean(b^2)``: they charge **every** layer at the drawn bit
width (also the first conv, the 1x1 shortcuts and the classifier, which the reference keeps in full
precision), and the 0.5565 G includes the batch norms at 2 operations per output element (the
convention of the ``thop`` profiler: conv/linear 555.42 M + BN 1.11 M = 556.54 M; 556.54 M x 1024
= 569.9 G exactly). ``uniform=True, include_bn=True`` selects that accounting; the default accounting
(``uniform=False, include_bn=False``) is the honest one for our models: 29.1 G for RPI 4-8 bits.
Measured with the paper's accounting: 569.89 G, 21.15 G and 63.45 G (the paper prints 569.9, 21.2 and
63.5; the last two are 0.2% and 0.1% off, within the rounding of its 0.5565 G).

Example::

    >>> from dwq.models import preact_resnet18
    >>> from dwq.quant.cost import profile
    >>> report = profile(preact_resnet18(precisions=list(range(4, 17))), (1, 3, 32, 32))
    >>> round(report.mean_bitops(range(4, 9), uniform=True, include_bn=True) / 1e9, 1)
    21.1
"""
import copy
import math
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from dwq._index import index_or_none
from dwq.quant.precision import normalize_precision, normalize_set
from dwq.quant.untrained import untrained_quiet

__all__ = [
    "LayerCost",
    "CostReport",
    "profile",
    "count_macs",
    "bitops",
    "mean_bitops",
    "bitops_summary",
    "FULL_PRECISION_BITS",
]

FULL_PRECISION_BITS = 32  # a float32 multiply-accumulate counts as a 32 x 32-bit operation

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class LayerCost:
    """One counted layer. ``macs`` is per input sample; ``kind`` is "conv", "linear" or "bn"."""

    name: str
    kind: str
    macs: int
    quantized: bool


def _pair_bits(precision) -> Tuple[int, int]:
    p = normalize_precision(precision)
    if p is None:
        return FULL_PRECISION_BITS, FULL_PRECISION_BITS
    return int(p[0]), int(p[1])


@dataclass
class CostReport:
    """Per-layer MACs of a model for one input size; computes BitOPs for any precision.

    Attributes: ``layers`` (list of :class:`LayerCost`, in execution order), ``input_size``.
    """

    layers: List[LayerCost]
    input_size: Tuple[int, ...] = field(default=())

    def macs(self, include_bn: bool = False) -> int:
        """Total MACs per sample of conv and linear layers (plus BN ops with ``include_bn``)."""
        return sum(l.macs for l in self.layers if include_bn or l.kind != "bn")

    def bitops(self, precision, *, uniform: bool = False, include_bn: bool = False) -> float:
        """BitOPs per sample at one precision (None, int b or (w_bits, a_bits)).

        ``uniform=False``: quantized layers at ``precision``, full-precision layers at 32x32 bits.
        ``uniform=True``: every counted layer at ``precision`` (the paper's accounting).
        ``include_bn``: count batch norms (2 ops per output element) like the paper does; they are
        full-precision layers unless ``uniform``.
        ``precision`` need not be in the model's set: the profile prices its layers at any widths (to
        compare sets before training one); check membership with ``dwq.nn.precision_set`` if it matters.
        """
        w, a = _pair_bits(precision)
        full = FULL_PRECISION_BITS * FULL_PRECISION_BITS
        total = 0
        for layer in self.layers:
            if layer.kind == "bn" and not include_bn:
                continue
            quantized = layer.quantized or uniform
            total += layer.macs * (w * a if quantized else full)
        return float(total)

    def mean_bitops(self, precisions: Iterable, *, uniform: bool = False,
                    include_bn: bool = False) -> float:
        """Mean BitOPs per sample over a precision set (each precision equally likely, as in RPI)."""
        # a repeat weighed one precision twice (4 and "4" too); list("48") was the set [4, 8]
        precisions = normalize_set(precisions, "mean_bitops: precisions")
        costs = [self.bitops(p, uniform=uniform, include_bn=include_bn) for p in precisions]
        return sum(costs) / len(costs)

    def table(self) -> str:
        """A plain-text table of the layers (name, kind, MACs, quantized)."""
        width = max([len(l.name) for l in self.layers] + [5])
        lines = [f"{'layer':<{width}}  {'kind':<6}  {'MACs':>14}  quantized"]
        for l in self.layers:
            lines.append(f"{l.name:<{width}}  {l.kind:<6}  {l.macs:>14,d}  {'yes' if l.quantized else 'no'}")
        lines.append(f"{'total':<{width}}  {'':<6}  {self.macs(include_bn=True):>14,d}")
        return "\n".join(lines)


def _is_quantized(module: nn.Module) -> bool:
    # dwq.nn layers carry their precision set; dwq.quant sits below dwq.nn, so no import of it here.
    precisions = getattr(module, "precisions", None)
    if precisions is None:
        return False
    return any(normalize_precision(p) is not None for p in precisions)


def _conv_macs(name: str, module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    taps = math.prod(module.kernel_size)
    if inp.dim() == len(module.kernel_size) + 1:
        # torch runs a conv on one unbatched sample; "per sample" would divide by its channel count
        raise ValueError(f"profile: {name!r} got an input without a batch dimension, shape {list(inp.shape)}: "
                         f"input_size must be a batch's shape, e.g. {(1, *inp.shape)}")
    if module.transposed:  # each input element meets out_channels/groups x taps weights
        return inp[0].numel() * (module.out_channels // module.groups) * taps
    return out[0].numel() * (module.in_channels // module.groups) * taps


_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
               "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


def profile(model: nn.Module, input_size: Union[Sequence[int], torch.Tensor] = (1, 3, 32, 32)) -> CostReport:
    """Count the MACs of every conv, linear and batch-norm layer of ``model`` for one input.

    input_size: the shape of a batch (e.g. ``(1, 3, 32, 32)``) or an example input tensor. Counts are
    per sample. The forward pass runs on a deep copy in eval mode under ``torch.no_grad()`` at the
    model's current precision (MACs do not depend on the precision), without the model's own hooks and
    with a floating example cast to the model's dtype, so ``model`` (and what its hooks record) is left
    unchanged.
    Only modules are counted (functional calls such as ``F.avg_pool2d`` are free, like in ``thop``).
    The global RNGs (CPU, and the model's CUDA device) are left as they were.
    """
    if isinstance(input_size, torch.Tensor):
        example = input_size.detach()
    else:
        given = input_size
        try:  # (int() took 28.9 as 28 and read "1,1,28,28" character by character)
            if isinstance(given, (str, bytes)):
                raise TypeError
            input_size = tuple(index_or_none(s) for s in given)
            if None in input_size:  # (a bool: (True, 3, 32, 32) read as a batch of 1)
                raise TypeError
        except TypeError:
            raise ValueError(f"profile: input_size must be a batch's shape as ints, e.g. (1, 3, 32, 32), or an "
                             f"example input tensor, got {given!r}") from None
        if len(input_size) < 2:
            raise ValueError(f"profile: input_size must include the batch dimension, got {input_size}")
        if any(s < 1 for s in input_size[1:]):  # (a batch of 0 has its own message below)
            raise ValueError(f"profile: input_size must be sizes >= 1, got {input_size}")
        example = None
    for name, m in model.named_modules():
        if getattr(m, "integer_layer", False):  # its conv/linear would drop out of the count silently
            raise ValueError(f"profile counts fake-quant models: {name!r} is a layer of an integer model "
                             f"(dwq.deploy); profile the model it was converted from")
    work = copy.deepcopy(model)
    work.eval()
    for m in work.modules():  # the copy's hooks are the user's callables: they would see the profiling forward
        for attr in _HOOK_DICTS:
            getattr(m, attr, {}).clear()
    try:
        param = next(work.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    if example is None:
        shape = input_size
    else:
        # (a float64 example into a float32 model failed in the first conv; MACs do not depend on the dtype)
        example = example.to(device, dtype) if example.is_floating_point() else example.to(device)
        shape = tuple(example.shape)
    batch = shape[0] if shape else 0
    if batch < 1:  # (per-sample counts divide by it; an empty batch failed inside a hook with an IndexError)
        raise ValueError(f"profile: input_size must hold at least one sample, got shape {list(shape)}")

    layers: List[LayerCost] = []
    handles = []

    def hook_for(name: str, module: nn.Module):
        def hook(mod, inputs, out):
            if isinstance(mod, _CONV_TYPES):
                macs, kind = _conv_macs(name, mod, inputs[0], out), "conv"
            elif isinstance(mod, nn.Linear):
                macs, kind = out.numel() // batch * mod.in_features, "linear"
            else:  # batch norm: thop's convention, 2 ops (scale and shift) per output element
                macs, kind = 2 * out.numel() // batch, "bn"
            layers.append(LayerCost(name, kind, int(macs), _is_quantized(mod) and kind != "bn"))
        return hook

    for name, module in work.named_modules():
        if isinstance(module, _CONV_TYPES + (nn.Linear,) + _BN_TYPES):
            handles.append(module.register_forward_hook(hook_for(name, module)))
    # The random input and any draw of the forward (RandomPrecision without a seed) come from the global
    # RNGs: restored afterwards, so a seeded run is the same whether or not it profiled its model first.
    try:
        # counting MACs reads no statistic nor range: an untrained branch or quantizer is not worth a warning
        with torch.random.fork_rng([device] if device.type == "cuda" else []), \
                torch.no_grad(), untrained_quiet():
            work(torch.rand(shape, device=device, dtype=dtype) if example is None else example)
    finally:
        for h in handles:
            h.remove()
    return CostReport(layers, shape)


def count_macs(model: nn.Module, input_size=(1, 3, 32, 32), include_bn: bool = False) -> int:
    """Total MACs per sample of the conv and linear layers (plus BN with ``include_bn``)."""
    return profile(model, input_size).macs(include_bn=include_bn)


def bitops(model: nn.Module, precision, input_size=(1, 3, 32, 32), *, uniform: bool = False,
           include_bn: bool = False) -> float:
    """BitOPs per sample of ``model`` at one precision; see :meth:`CostReport.bitops`."""
    return profile(model, input_size).bitops(precision, uniform=uniform, include_bn=include_bn)


def mean_bitops(model: nn.Module, precisions: Optional[Iterable] = None, input_size=(1, 3, 32, 32), *,
                uniform: bool = False, include_bn: bool = False) -> float:
    """Mean BitOPs per sample over a precision set (default: what the model draws from, a
    ``dwq.RandomPrecision``'s choices, else the set its layers share); see :meth:`CostReport.mean_bitops`."""
    if precisions is None:
        precisions = _model_precisions(model)
    return profile(model, input_size).mean_bitops(precisions, uniform=uniform, include_bn=include_bn)


def _model_precisions(model: nn.Module) -> list:
    # What the model draws from: a RandomPrecision's choices (often a subset of its layers' set), else
    # the set its layers share (the first layer's set was taken, mixed sets averaged silently)
    from dwq.nn.control import RandomPrecision, precision_set  # (lazy: dwq.nn imports dwq.quant)

    drawn = next((m for m in model.modules() if isinstance(m, RandomPrecision)), None)
    if drawn is not None:
        return list(drawn.choices)
    try:
        return precision_set(model)
    except ValueError as e:
        raise ValueError(f"mean_bitops: {e}; pass `precisions`") from None


def bitops_summary(model: nn.Module, input_size: Sequence[int], precisions: Iterable) -> dict:
    """The report entry of a model's cost: BitOPs per image at each precision (keyed by its one
    spelling, e.g. "fp", "4"), their mean over the RPI set, and the accounting used.

    input_size: one image's (C, H, W)."""
    from dwq.quant.precision import precision_name

    # (a repeat was one key of per_precision but two terms of rpi_mean)
    precisions = normalize_set(precisions, "bitops_summary: precisions")
    rep = profile(model, (1, *input_size))
    return {"per_precision": {precision_name(p): rep.bitops(p) for p in precisions},
            "rpi_mean": rep.mean_bitops(precisions), "input_size": list(input_size),
            "accounting": "quantized convs at w_bits*a_bits, full-precision layers at 32*32, per image"}

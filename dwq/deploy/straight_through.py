"""Attacking the integer model: its outputs, the fake-quant twin's gradients.

The integer ops are inference only, so a gradient attack needs a differentiable stand-in. The
straight-through wrapper returns the integer model's logits in the forward pass and backpropagates
through the fake-quant model at the same precision (``y_fq + (y_int - y_fq).detach()``), the usual
treatment of a non-differentiable deployed model. The evaluation protocols of ``dwq.eval`` accept it
wherever they accept a model.
"""
import torch
from torch import nn

from dwq.deploy.integer_model import IntegerModel
from dwq.nn.modes import kept_modes
from dwq.nn.control import get_precision, precision, precision_set

__all__ = ["StraightThrough"]


class StraightThrough(nn.Module):
    """``forward(x)`` = ``int_model(x)``; gradient w.r.t. ``x`` = that of ``fake_quant_model`` at the same precision.

    int_model: from :func:`dwq.deploy.convert` of ``fake_quant_model`` (its precision set may be a subset
    of the twin's); a twin whose layers, weight codes or activation ranges are not the integer model's
    is refused (ValueError): another run's model would attack with gradients of other weights. A twin
    trained on after this check keeps its place (the forward values stay the integer model's). The precision controls (``dwq.set_precision``, ``dwq.precision``,
    ``dwq.RandomPrecision``) see only the integer model's layers; the twin follows at every forward.
    The twin is kept out of the module tree (``.twin``), so ``.to()`` moves only the integer model.
    When no gradient is needed (``torch.no_grad()`` or an input that does not require grad) only the
    integer model runs. The twin runs in eval mode (the function the integer model computes: no batch
    statistics, no range or BN updates), whatever mode it is in; its modes and precision are restored
    after each forward.
    """

    def __init__(self, int_model: IntegerModel, fake_quant_model: nn.Module):
        super().__init__()
        if not isinstance(int_model, IntegerModel):
            raise TypeError(f"StraightThrough: int_model must be a dwq.deploy.IntegerModel, got "
                            f"{type(int_model).__name__}")
        from dwq.quant.precision import normalize_precision, precision_name

        # (an IntegerModel twin has no gradient at quantized precisions: every attack failed there with
        # "element 0 of tensors does not require grad"; None failed in precision_set, naming no argument)
        if not isinstance(fake_quant_model, nn.Module) or any(isinstance(m, IntegerModel)
                                                              for m in fake_quant_model.modules()):
            raise TypeError(f"StraightThrough: fake_quant_model must be the fake-quant (dwq.nn) model the integer "
                            f"model was converted from, got {type(fake_quant_model).__name__}")
        twin_set = [normalize_precision(p) for p in precision_set(fake_quant_model)]
        missing = [precision_name(p) for p in int_model.precisions if normalize_precision(p) not in twin_set]
        if missing:  # (else the first forward at such a precision blamed "the model's precision set")
            raise ValueError(f"StraightThrough: precision(s) {', '.join(missing)} of the integer model are not in "
                             f"the fake-quant model's set [{', '.join(map(precision_name, twin_set))}]")
        _check_converted_from(int_model, fake_quant_model)
        self.int_model = int_model
        self.__dict__["twin"] = fake_quant_model  # not a submodule: its precision set may be larger

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y_int = self.int_model(x.detach())
        if not (torch.is_grad_enabled() and x.requires_grad):
            return y_int
        # (its precision and modes come back after: the user may train it, or use it at its own precision)
        with kept_modes(self.twin), precision(self.twin, get_precision(self.int_model)):
            y_fq = self.twin.eval()(x)
        # y_int's values exactly (y_fq + (y_int - y_fq) rounds: ulps off once the twin drifts), y_fq's gradient
        return y_int + (y_fq - y_fq.detach())


def _check_converted_from(int_model: IntegerModel, twin: nn.Module) -> None:
    """ValueError unless each quantized layer of ``int_model`` has its source layer in ``twin`` with the
    same weight codes (at its first quantized precision) and the same input quantization (at each)."""
    from dwq.deploy.layers import _IntLayer, _QuantPlan
    from dwq.deploy.operands import act_qparams, weight_codes
    from dwq.nn import QConv2d, QLinear
    from dwq.quant.precision import precision_name

    def refuse(why):
        raise ValueError(f"StraightThrough: fake_quant_model is not the model int_model was converted from: {why}; "
                         f"pass that model, or convert this one (dwq.deploy.convert)")

    for layer in (m for m in int_model.modules() if isinstance(m, _IntLayer)):
        name = layer.source
        try:
            src = twin.get_submodule(name)
        except AttributeError:
            refuse(f"it has no layer {name!r}")
        first = layer.plans[0]
        shape = tuple(first.weight_shape if isinstance(first, _QuantPlan) else first.weight.shape)
        if not isinstance(src, (QConv2d, QLinear)) or tuple(src.weight.shape) != shape:
            refuse(f"its layer {name!r} is not a dwq.nn layer of weight shape {list(shape)}, as the integer model's")
        quantized = [(p, plan) for p, plan in zip(layer.precisions, layer.plans) if isinstance(plan, _QuantPlan)]
        with torch.no_grad():
            if quantized:  # (the codes alone: weights scaled or shifted per channel have the same)
                p, plan = quantized[0]
                codes, sw, zw = (t.cpu() for t in weight_codes(src, p, f"layer '{name}'")[:3])
                differ = int((codes != plan.codes().cpu()).sum())
                if differ or not (torch.equal(sw, plan.w_scale.cpu()) and torch.equal(zw, plan.w_zero_point.cpu())):
                    refuse(f"layer {name!r} has other weights at precision {precision_name(p)} (" +
                           (f"{differ} of {codes.numel()} codes differ)" if differ else "other scales)"))
            for p, plan in quantized:
                sx, zx, _ = act_qparams(src, p, f"layer '{name}'")
                if not (torch.equal(sx.cpu(), plan.x_scale.cpu()) and torch.equal(zx.cpu(), plan.x_zero_point.cpu())):
                    refuse(f"layer {name!r} quantizes its input with another range at precision {precision_name(p)}")

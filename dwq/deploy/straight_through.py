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
    of the twin's). The precision controls (``dwq.set_precision``, ``dwq.precision``,
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

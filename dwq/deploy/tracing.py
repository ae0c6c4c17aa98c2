"""The model's forward as an ``fx`` graph for :func:`dwq.deploy.convert`, and what tracing cannot see.

fx runs no module hooks and records a subclass by its base class's kind, and ``h += y`` on a tensor
becomes an out-of-place add: eager PyTorch and the graph then compute different things. These are
refused here, by name, rather than converted silently wrong.
"""
import dis
import operator
import os
import sys

import torch
import torch.fx as fx
from torch import nn

from dwq._errors import typed_first_line
from dwq.deploy.operands import ConversionError
from dwq.models.common import Normalize
from dwq.nn import RandomPrecision
from dwq.nn.control import PrecisionModule

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
INPLACE_ADD = "dwq_inplace_add"  # node.meta key: the add was written `a += b` (eager mutates a)


def _inplace_add_here() -> bool:
    """Whether the innermost frame outside torch and this file is executing ``+=`` (BINARY_OP +=, or
    INPLACE_ADD before Python 3.11): fx's Proxy has no ``__iadd__``, so ``a += b`` reaches the tracer as
    ``a + b``."""
    f = sys._getframe(1)
    while f is not None and (f.f_code.co_filename.startswith(_TORCH_DIR) or f.f_code.co_filename == __file__):
        f = f.f_back
    if f is None:
        return False
    ins = next((i for i in dis.get_instructions(f.f_code) if i.offset == f.f_lasti), None)
    return ins is not None and (ins.opname == "INPLACE_ADD" or (ins.opname == "BINARY_OP" and ins.argrepr == "+="))


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (PrecisionModule, Normalize)) or not any(True for _ in m.children()) \
            or super().is_leaf_module(m, qualname)

    def create_proxy(self, kind, target, args, kwargs, *rest, **kw):
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        if kind == "call_function" and target in (operator.add, torch.add) and _inplace_add_here():
            proxy.node.meta[INPLACE_ADD] = True
        return proxy


def _check_traceable(model: nn.Module) -> None:
    # (torch.compile's wrapper, by name: torch._dynamo is not imported to ask)
    compiled = type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module)
    if compiled or isinstance(model, (RandomPrecision, nn.DataParallel, nn.parallel.DistributedDataParallel)):
        attr = "model" if isinstance(model, RandomPrecision) else "_orig_mod" if compiled else "module"
        raise ConversionError(f"convert takes the model itself, not a {type(model).__name__} wrapping it: convert "
                              f"its .{attr} ({type(getattr(model, attr)).__name__})")
    from torch.nn.modules import module as torch_module

    if getattr(torch_module, "_global_forward_hooks", None) or getattr(torch_module, "_global_forward_pre_hooks", None):
        raise ConversionError("global module forward hooks are registered (torch.nn.modules.module."
                              "register_module_forward_hook / _pre_hook), which the traced graph does not run; remove "
                              "them (handle.remove()) before converting")
    for name, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            raise ConversionError(f"cannot convert {'the model' if not name else repr(name)} "
                                  f"({type(m).__name__}): it has forward hooks, which the traced graph does not run; "
                                  "remove them (handle.remove()) before converting")


def trace(model: nn.Module) -> fx.GraphModule:
    """The model's forward as an fx graph with the ``dwq.nn`` layers kept whole (ConversionError if it
    cannot be traced, e.g. control flow on tensor values, or holds what tracing would drop: hooks)."""
    _check_traceable(model)
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for untraceable code
        raise ConversionError(f"cannot trace {type(model).__name__}.forward for conversion "
                              f"({typed_first_line(e)})") from None
    return fx.GraphModule(model, graph)


# The methods a supported layer's forward runs: a subclass that overrides one (a weight-standardised
# conv's _conv_forward) computes something the converted layer would not.
_FORWARD_PATH = ("forward", "_conv_forward", "quant_input", "quant_weight", "_check_input_dim")


def forward_override(m: nn.Module, base: type):
    """None if ``m`` computes what ``base`` (a class it is an instance of) does, else what differs."""
    if "forward" in vars(m):
        return "its forward, set on the instance"
    for name in _FORWARD_PATH:
        if getattr(type(m), name, None) is not getattr(base, name, None):
            return f"{base.__name__}.{name}"
    return None

"""dwq: Double-Win Quant — random-precision quantized networks that are fast and robust.

Quickstart::

    import dwq, torch
    model = dwq.models.preact_resnet18(precisions=list(range(4, 17)))
    with dwq.precision(model, 4):
        y = model(torch.rand(2, 3, 32, 32))
    rpi = dwq.RandomPrecision(model, bits=[4, 5, 6, 7, 8], seed=0)  # a precision per forward
"""
from dwq import ops, quant
from dwq._version import __version__
from dwq.nn import (
    QConv2d,
    QLinear,
    RandomPrecision,
    SwitchableBatchNorm2d,
    get_precision,
    precision,
    precision_set,
    set_precision,
)

def __getattr__(name):
    # Higher layers load on first use, so `import dwq` stays light.
    import importlib

    if name in ("models", "attacks", "data", "train", "eval", "deploy", "cli", "memory"):
        return importlib.import_module(f"dwq.{name}")
    raise AttributeError(f"module 'dwq' has no attribute {name!r}")

__all__ = [
    "QConv2d",
    "QLinear",
    "RandomPrecision",
    "SwitchableBatchNorm2d",
    "get_precision",
    "ops",
    "precision",
    "precision_set",
    "quant",
    "set_precision",
]

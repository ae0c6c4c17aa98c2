"""Precision-switchable layers and the precision controls."""
from dwq.nn.control import (
    PrecisionModule,
    RandomPrecision,
    get_precision,
    precision,
    precision_set,
    set_precision,
)
from dwq.nn.modes import kept_modes
from dwq.nn.qlayers import QConv2d, QLinear
from dwq.nn.sbn import SwitchableBatchNorm2d

__all__ = [
    "PrecisionModule",
    "QConv2d",
    "QLinear",
    "RandomPrecision",
    "SwitchableBatchNorm2d",
    "get_precision",
    "kept_modes",
    "precision",
    "precision_set",
    "set_precision",
]

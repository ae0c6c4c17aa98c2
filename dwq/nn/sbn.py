"""Switchable batch norm: one complete BatchNorm2d (statistics and affine) per precision."""
from typing import Iterable

import torch
from torch import nn

from dwq.nn.precision import PrecisionModule
from dwq.quant.precision import precision_name


class SwitchableBatchNorm2d(PrecisionModule):
    """``bn[i]`` serves ``precisions[i]``; the current precision picks the branch.

    The parent has no parameters of its own, so the state_dict holds only ``bn.<i>.*`` (the
    reference code's key layout, e.g. ``layer1.0.bn1.bn.3.weight``) and ``precision_set``.

    >>> sbn = SwitchableBatchNorm2d(16, precisions=[4, 8])
    >>> sbn.set_precision(4); y = sbn(torch.randn(2, 16, 5, 5))  # uses sbn.bn[0]
    """

    def __init__(self, num_features: int, precisions: Iterable, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self._init_precision(precisions)
        self.num_features = num_features
        self.bn = nn.ModuleList(
            nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=affine,
                           track_running_stats=track_running_stats)
            for _ in self.precisions
        )

    @property
    def active(self) -> nn.BatchNorm2d:
        """The BatchNorm2d of the current precision."""
        return self.bn[self.precision_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, branches={len(self.bn)}, precision={precision_name(self.precision)}"

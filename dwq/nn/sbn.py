"""Switchable batch norm: one complete BatchNorm2d (statistics and affine) per precision."""
import warnings
from typing import Iterable

import torch
from torch import nn

from dwq.nn.control import PrecisionModule
from dwq.quant.precision import precision_name
from dwq.quant.untrained import quiet


class SwitchableBatchNorm2d(PrecisionModule):
    """``bn[i]`` serves ``precisions[i]``; the current precision picks the branch.

    The parent has no parameters of its own, so the state_dict holds only ``bn.<i>.*`` (the
    reference code's key layout, e.g. ``layer1.0.bn1.bn.3.weight``) and ``precision_set``.

    >>> sbn = SwitchableBatchNorm2d(16, precisions=[4, 8])
    >>> sbn.set_precision(4); y = sbn(torch.randn(2, 16, 5, 5))  # uses sbn.bn[0]

    A branch that never saw a training batch (a precision RPT never drew, or a model trained at
    one precision and evaluated at another) would normalize with its initial statistics (mean 0,
    variance 1): in eval mode that warns once per precision instead of silently giving a poor model
    (eager forwards only; see :func:`mark_trained` for compiled training).
    """

    def __init__(self, num_features: int, precisions: Iterable, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        self._init_precision(precisions)
        self.num_features = num_features
        self.bn = nn.ModuleList(
            nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=affine,
                           track_running_stats=track_running_stats, device=device, dtype=dtype)
            for _ in self.precisions
        )
        if device is not None:  # (as QConv2d: the set beside the branches, e.g. all on the meta device)
            self.precision_set = self.precision_set.to(device)
        # Kept on the host (set by training forwards and by load_state_dict from num_batches_tracked),
        # so that the eval check never reads a device counter (no host synchronisation per forward).
        self._trained = [False] * len(self.precisions)

    def reset_parameters(self) -> None:
        """Every branch's BatchNorm2d reset, none of them trained."""
        for bn in self.bn:
            bn.reset_parameters()
        self._trained = [False] * len(self.precisions)

    @property
    def active(self) -> nn.BatchNorm2d:
        """The BatchNorm2d of the current precision."""
        return self.bn[self.precision_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = self.precision_index
        # (ModuleList's own lookup, without its index checks nor Module.__getattr__: host time per forward)
        bn = self._modules["bn"]._modules[str(i)]
        # Not while compiling: reading the host flag would be a guard (a recompile per precision) and a
        # warning a graph break; compiled training is marked by mark_trained (dwq.train calls it).
        if bn.track_running_stats and not torch.compiler.is_compiling():
            if self.training:
                y = bn(x)
                # after the call, and not for an empty batch: a batch BatchNorm refused, or none, left the
                # statistics initial while the branch counted as trained (no eval warning)
                if x.shape[0] > 0:
                    self._trained[i] = True
                return y
            if not self._trained[i] and not quiet():
                warnings.warn(f"SwitchableBatchNorm2d: the branch of precision {precision_name(self.precision)} "
                              f"has never seen a training batch, so eval normalizes with its initial statistics "
                              f"(mean 0, variance 1)")
        return bn(x)

    def untrained_precisions(self) -> list:
        """The precisions (one spelling each) whose branch never saw a training batch."""
        return [precision_name(p) for p, done, bn in zip(self.precisions, self._trained, self.bn)
                if bn.track_running_stats and not done]

    def _load_from_state_dict(self, state_dict, prefix, *args):
        super()._load_from_state_dict(state_dict, prefix, *args)
        for i in range(len(self.bn)):
            if f"{prefix}bn.{i}.running_mean" not in state_dict:
                # Nothing loaded into this branch (load_state_dict(..., strict=False) of a partial state_dict):
                # it is as trained as it was, not marked trained, which silenced the eval warning.
                continue
            n = state_dict.get(f"{prefix}bn.{i}.num_batches_tracked")
            # A state_dict without the counter (written before torch had it) or on meta is taken as trained.
            self._trained[i] = n is None or n.device.type == "meta" or int(n) > 0

    def extra_repr(self) -> str:
        return f"{self.num_features}, branches={len(self.bn)}, precision={precision_name(self.precision)}"


def mark_trained(model: nn.Module) -> None:
    """Records that every switchable BN of ``model`` trains its current precision's branch. A compiled
    training forward does not record it itself; a training loop that compiles the model calls this
    after each precision switch (dwq.train does), so that eval does not warn about those branches."""
    for m in model.modules():
        if isinstance(m, SwitchableBatchNorm2d):
            m._trained[m.precision_index] = True

"""Train/eval modes of a model's modules, kept across work that switches them."""
from __future__ import annotations

import contextlib

from torch import nn

__all__ = ["kept_modes"]


@contextlib.contextmanager
def kept_modes(model: nn.Module):
    """Each module's ``training`` flag as it was on entry, restored on exit (also on error): the
    block may switch the model to eval mode. Per module, not ``model.train(was)``, which would set
    every submodule alike (a model with a frozen, eval-mode part would lose it)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training

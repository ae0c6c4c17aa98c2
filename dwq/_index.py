"""What an int argument is (a count, a seed, a width, an axis, a size): an int of any kind, read with
``operator.index``, but never a bool. ``operator.index`` takes ``True`` and ``torch.tensor(True)`` as 1
and ``torch.tensor([3])`` as 3; such a value then ran as an int while the object itself was kept (an
evaluation's steps ran, and its report failed at json.dump after the whole evaluation)."""
from __future__ import annotations

import operator
from typing import Optional

import torch

__all__ = ["index_or_none", "is_bool"]


def is_bool(v) -> bool:
    """A Python or torch bool, which ``operator.index`` takes as 0 / 1: ``axis=True`` or ``stride=True``
    ran as 1, silently. (numpy's bool has no ``__index__``.)"""
    return isinstance(v, bool) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool)


def index_or_none(v) -> Optional[int]:
    """``v`` as a Python int when it is one of any kind (Python's, numpy's, a 0-d integer tensor), else
    None: a bool of any kind, a float, a string, a tensor with dimensions."""
    if is_bool(v) or (isinstance(v, torch.Tensor) and v.dim() != 0):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None

"""Argument parsing helpers shared by the dwq commands (glue only)."""
from __future__ import annotations

import argparse
import os
from fractions import Fraction


class CLIError(Exception):
    """A user error: printed as ``dwq: error: ...`` with exit status 2."""


def fraction(text: str) -> float:
    """Parse ``8/255`` or ``0.0314``; must lie in [0, 1] (pixel units)."""
    try:
        v = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or fraction such as 8/255") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text} is outside [0, 1]; ε and step sizes are in pixel units of images in [0, 1] "
            f"(write 8/255, not 8)")
    return v


def positive_fraction(text: str) -> float:
    """Like :func:`fraction`, but 0 is refused: an attack radius or step must be in (0, 1]."""
    v = fraction(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1] (pixel units of images in [0, 1], e.g. 8/255)")
    return v


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


positive_int = _int_at_least(1)
nonneg_int = _int_at_least(0)


def precision_arg(text: str):
    """``fp`` -> None (full precision), ``4`` -> 4, ``4w8a`` -> (4, 8): dwq.quant's one spelling."""
    from dwq.quant.precision import parse_precision

    try:
        return parse_precision(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def precision_set_from_args(precisions, schedule, extra_fp=False):
    """``--precisions`` wins; else ``--num-bits-schedule LO HI`` -> LO..HI."""
    if precisions:
        out = list(precisions)
    elif schedule:
        lo, hi = schedule
        if not (2 <= lo <= hi <= 16):
            raise CLIError(f"--num-bits-schedule needs 2 <= LO <= HI <= 16, got {lo} {hi}")
        out = list(range(lo, hi + 1))
    else:
        return None
    if len(set(map(str, out))) != len(out):
        raise CLIError(f"precisions repeat: {out}")
    return out


def fresh_dir(path: str, create: bool = True, hint: str = "") -> str:
    """Refuse to write into a folder that already holds something (no overwriting).
    ``create=False`` only checks (so that a later error leaves nothing behind)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{path} exists and is not a folder")
    if os.path.isdir(path) and os.listdir(path):
        raise CLIError(f"{path} already exists and is not empty; choose another --out{hint}")
    if create:
        os.makedirs(path, exist_ok=True)
    return path

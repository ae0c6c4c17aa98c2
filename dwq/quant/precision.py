"""Precision values, their one spelling, and their validation.

A precision is ``None`` (full precision), an int ``b`` (weights and activations at b bits) or a
pair ``(w_bits, a_bits)``. Internally every precision is normalized to ``None`` or a pair.

The same precision is written the same way everywhere (command line, Python API, JSON, messages):
``"fp"`` (full precision), ``"4"`` (4-bit weights and activations) and ``"4w8a"`` (4-bit weights,
8-bit activations). Every function that takes a precision also takes that string form.
"""
import re
from typing import Iterable, Optional, Tuple, Union

Precision = Union[None, int, Tuple[int, int]]
Normalized = Optional[Tuple[int, int]]

MIN_BITS, MAX_BITS = 2, 16


def _is_int(v) -> bool:
    """A Python or numpy integer, not a bool."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(v, np.integer)


def check_bits(bits, name: str = "bits", none_ok: bool = True) -> int:
    """Returns ``bits`` as an int if it is an integer in 2..16, else raises ValueError; ``none_ok``: the
    caller takes None for full precision, which the message then offers."""
    if not _is_int(bits):
        fp = " (or None for full precision)" if none_ok else ""
        raise ValueError(f"{name} must be an int in {MIN_BITS}..{MAX_BITS}{fp}, got {bits!r}")
    bits = int(bits)
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{name} must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return bits


FULL_PRECISION_NAMES = ("fp", "none", "float", "32")


def parse_precision(text: str) -> Precision:
    """The user spelling of a precision -> ``None``, ``b`` or ``(w, a)``.

    ``"fp"`` (also ``"none"``, ``"float"``, ``"32"``) is full precision, ``"4"`` is 4 bits,
    ``"4w8a"`` (also the W-first order ``"w4a8"``) is 4-bit weights with 8-bit activations.
    ValueError naming the text otherwise.
    """
    t = str(text).strip().lower()
    if t in FULL_PRECISION_NAMES:
        return None
    m = re.fullmatch(r"(\d+)w(\d+)a?", t) or re.fullmatch(r"w(\d+)a(\d+)", t)
    try:
        if m:
            return (check_bits(int(m.group(1)), "w_bits"), check_bits(int(m.group(2)), "a_bits"))
        if re.fullmatch(r"\d+", t):
            if int(t) == 0:  # (the reference code's full precision: say what ours is)
                raise ValueError(f"precision must be in {MIN_BITS}..{MAX_BITS}, got 0; full precision is 'fp'")
            return check_bits(int(t), "precision")
    except ValueError as e:
        raise ValueError(f"bad precision {text!r}: {e}") from None
    raise ValueError(f"bad precision {text!r}: use fp (full precision), an int {MIN_BITS}..{MAX_BITS}, "
                     f"or WwAa such as 4w8a")


def normalize_precision(p: Precision) -> Normalized:
    """``None``/"fp" -> None, ``b``/"b" -> (b, b), ``(w, a)``/"WwAa" -> (w, a); ValueError otherwise."""
    if p is None:
        return None
    if isinstance(p, str):
        return normalize_precision(parse_precision(p))
    if isinstance(p, (tuple, list)):
        if len(p) != 2:
            raise ValueError(f"a precision pair must be (w_bits, a_bits), got {p!r}")
        if any(b is None for b in p):
            # check_bits would say "or None for full precision", which a pair does not take.
            raise ValueError(f"a precision pair (w_bits, a_bits) takes two ints in {MIN_BITS}..{MAX_BITS}; "
                             f"full precision is None (or 'fp') for the whole precision, got {p!r}")
        # (no "or None" in the message: a pair does not take it)
        return (check_bits(p[0], "w_bits", none_ok=False), check_bits(p[1], "a_bits", none_ok=False))
    if _is_int(p) and int(p) in (0, 32):  # (numpy's 0 and 32 too)
        # The reference code writes full precision as 0 (and "32" is our CLI's alias for "fp"); an int
        # means bits here, so say which value is meant instead of only "must be in 2..16".
        raise ValueError(f"precision must be in {MIN_BITS}..{MAX_BITS}, got {int(p)}; full precision is None (or 'fp')")
    b = check_bits(p, "precision")
    return (b, b)


def user_precision(p: Normalized) -> Precision:
    """The short form of a normalized precision: None, b when w == a, else (w, a)."""
    if p is None:
        return None
    return p[0] if p[0] == p[1] else p


def precision_list(precisions, name: str = "precisions") -> list:
    """``precisions`` as a list; ValueError for None, a lone precision or a string, which ``list()``
    would take apart silently ("48" became the set [4, 8]), and for a set, whose order is its hashes'
    (the set's order decides each precision's BN branch, range slot and a state_dict's fit)."""
    if precisions is None or isinstance(precisions, (int, str)) or not isinstance(precisions, Iterable):
        raise ValueError(f"{name} must be a list of precisions such as [4, 8, None], got {precisions!r}")
    if isinstance(precisions, (set, frozenset)):
        raise ValueError(f"{name} must be a list or tuple, in the order wanted (a set has none), got {precisions!r}")
    return list(precisions)


def normalize_set(precisions: Iterable[Precision], name: str = "precisions") -> Tuple[Normalized, ...]:
    """Normalizes a precision set; it must be non-empty and free of repeats. ``name``: the
    argument the caller's user gave, for the messages."""
    precisions = precision_list(precisions, name)
    try:
        out = tuple(normalize_precision(p) for p in precisions)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat, got {list(precisions)!r}")
    return out


def precision_name(p) -> str:
    """The one spelling of a precision: 'fp', '4', or '4w8a' (keys in reports, logs, messages).
    Takes any precision form."""
    p = normalize_precision(p)
    if p is None:
        return "fp"
    return str(p[0]) if p[0] == p[1] else f"{p[0]}w{p[1]}a"

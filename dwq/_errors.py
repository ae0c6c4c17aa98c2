"""How dwq quotes another library's exception inside its own one-line errors: torch, fx and the
file readers put their details on later lines (or say nothing at all), and a message we build must
neither run over many lines nor fail itself on an empty one."""
from __future__ import annotations

__all__ = ["first_line", "typed_first_line"]


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message, or its type's name when the message is empty
    (``RuntimeError()``): never an IndexError of our own in place of the error being reported."""
    lines = str(e).strip().splitlines()
    return lines[0].rstrip() if lines else type(e).__name__


def typed_first_line(e: BaseException) -> str:
    """``"TypeName: first line"``, or just ``"TypeName"`` when the message is empty: for sites that
    catch many exception types, where the type is part of what went wrong."""
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__

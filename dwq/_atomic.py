"""Atomic file replacement, shared by every writer whose file a later run reads (checkpoints,
config.json, metrics.jsonl, integer-model artifacts)."""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Open ``<path>.tmp`` for writing; when the block ends, flush, fsync and rename it over ``path``
    (atomic on POSIX). A kill leaves the previous ``path`` intact; an error or Ctrl-C in the block or
    the write also removes ``<path>.tmp``, which would otherwise stay beside the file for good."""
    tmp = os.fspath(path) + ".tmp"  # (a pathlib.Path has no "+")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise

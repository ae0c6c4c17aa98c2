"""Keeping freed memory for reuse (glibc, Linux).

glibc hands out an allocation above its mmap threshold as fresh pages from the kernel, and gives
freed memory at the top of its heap back beyond its trim threshold. Both thresholds move with what
the process does, and a model's forward frees and allocates tensors of tens of MB each step, so most
of its large tensors land on new pages: each page zeroed by the kernel and faulted in on first touch,
a pass over the memory that no kernel of the model asked for. :func:`keep_freed_memory` fixes the
thresholds so that freed memory is reused instead (what it does to whole models on the 2-core CPU:
docs/cpu_engine.md, "Whole integer models"; ``benchmarks/bench_models.py --malloc``).

The ``dwq`` command calls it at start (``DWQ_MALLOC=default`` leaves glibc's defaults); a program that
imports dwq decides for itself, since it sets the allocator of the whole process.
"""
import ctypes
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD_MAX"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# glibc's largest M_MMAP_THRESHOLD on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX): allocations up to
# this size come from the heap; larger ones are always fresh pages.
MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory(trim_bytes: int = 1 << 30) -> bool:
    """Serve allocations up to 32 MiB from the heap and keep up to ``trim_bytes`` of freed memory at
    its top for reuse (glibc's ``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), for the whole
    process. Returns True when glibc took both settings, False where there is no glibc ``mallopt``
    (another C library or OS): nothing changes then. The process may keep up to ``trim_bytes`` more
    memory than it uses at a time."""
    if isinstance(trim_bytes, bool) or not isinstance(trim_bytes, int) or not 0 <= trim_bytes < 2 ** 31:
        raise ValueError(f"keep_freed_memory: trim_bytes must be an int in 0..2^31-1, got {trim_bytes!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # (mmap first: setting it stops glibc moving the thresholds itself)
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and mallopt(_M_TRIM_THRESHOLD, trim_bytes) == 1

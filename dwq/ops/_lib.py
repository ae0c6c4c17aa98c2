"""Loads the compiled operator library ``dwq._C`` once.

Importing dwq never fails because the extension is missing: ``HAS_EXT`` says whether the
``torch.ops.dwq.*`` kernels exist, and every wrapper falls back to its pure-PyTorch reference.
``DWQ_REQUIRE_EXT=1`` (set by CI) turns a missing extension into an ImportError, so a broken
build cannot hide behind the fallback.
"""
import os

import torch  # noqa: F401  (loads libc10/libtorch, which dwq._C links against)

try:
    from dwq import _C  # noqa: F401  (registers torch.ops.dwq.*)

    HAS_EXT = True
    EXT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    HAS_EXT = False
    EXT_ERROR = e
    if os.environ.get("DWQ_REQUIRE_EXT", "0") == "1":
        raise ImportError(f"dwq._C could not be imported and DWQ_REQUIRE_EXT=1: {e}") from e


def has_kernel(name: str, device_type: str = "cpu") -> bool:
    """Whether torch.ops.dwq.<name> has an implementation for ``device_type`` ("cpu" or "cuda")."""
    if not HAS_EXT:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}[device_type]
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"dwq::{name}", key)

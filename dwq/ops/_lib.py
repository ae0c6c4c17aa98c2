"""Loads the compiled operator library ``dwq._C`` once.

Importing dwq never fails because the extension is missing: ``HAS_EXT`` says whether the
``torch.ops.dwq.*`` kernels exist. The fake-quant, quantize and residual wrappers then fall back to
their pure-PyTorch references (a fake-quant model trains and evaluates); the packed-weight integer ops
(``pack_weight``, ``qgemm_acc``, ``qlinear``, ``qconv2d``, ...) need the extension and say so.
``DWQ_REQUIRE_EXT=1`` (set by CI) turns a missing extension into an ImportError, so a broken
build cannot hide behind the fallback.
"""
import os

import torch  # (first: loads libc10/libtorch, which dwq._C links against)

try:
    from dwq import _C  # noqa: F401  (registers torch.ops.dwq.*)

    HAS_EXT = True
    EXT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    HAS_EXT = False
    EXT_ERROR = e
    if os.environ.get("DWQ_REQUIRE_EXT", "0") == "1":
        raise ImportError(f"dwq._C could not be imported and DWQ_REQUIRE_EXT=1: {e}") from e


_KERNELS = {}


def fake_same_device(name, main, main_name, **others):
    """For the fake (meta) impls: every tensor in ``others`` (None skipped) is on ``main``'s device.
    A meta tensor among CPU ones sends the whole call to the fake impl (Meta outranks CPU in
    dispatch): without this check it would return an uninitialized tensor on the main input's device."""
    for arg, t in others.items():
        if t is not None:
            torch._check(t.device == main.device, lambda: f"dwq.{name}: {arg} must be on {main.device} like "
                         f"{main_name}, got device {t.device}")


def _lookup(name: str, device_type: str) -> bool:
    if not HAS_EXT or device_type not in ("cpu", "cuda"):
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}[device_type]
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"dwq::{name}", key)


def has_kernel(name: str, device_type: str = "cpu") -> bool:
    """Whether torch.ops.dwq.<name> has an implementation for ``device_type`` (False for device
    types other than "cpu" and "cuda"). Asked per forward, so the answers are cached; every dwq op
    is looked up at import, so a compiled model's trace finds a plain dict (no dispatcher query)."""
    hit = _KERNELS.get((name, device_type))
    if hit is None:
        hit = _KERNELS[(name, device_type)] = _lookup(name, device_type)
    return hit


if HAS_EXT:
    for _op in torch._C._dispatch_get_all_op_names():
        if _op.startswith("dwq::"):
            _name = _op[len("dwq::"):].split(".")[0]
            for _dev in ("cpu", "cuda"):
                _KERNELS[(_name, _dev)] = _lookup(_name, _dev)

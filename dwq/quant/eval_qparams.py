"""Eval-mode activation qparams kept between forwards (issue 10: on GPUs the eager eval forward is
bound by the host, and every quantized layer asked ``act_qparams`` for the same scale and zero point
at every forward: an op call, a memset and a launch for two numbers).

In eval mode a quantizer whose range was tracked quantizes with that range: its (scale, zero point)
is a function of the running buffers alone, and may be kept until they change (their version
counters, which every in-place write bumps). A quantizer whose range was never tracked uses each
batch's own range, which must not be kept. Which slots are tracked is device data; reading it in a
forward would be a host sync. So the host keeps a lower bound of the flags: read where a sync is
harmless (construction, a move to another device, ``load_state_dict``, ``set_range``), and raised
after each train-mode forward of the fused op, which tracks its slots or fails (on CUDA a
device-side assert). A write the host did not see bumps the flags' version, and then nothing is
known until the next read: the forward recomputes, as without this cache. Edits through ``.data``
bypass the version counters and are not seen (as for :func:`dwq.quant.reuse_quantized_weights`).
Inference tensors (made under ``torch.inference_mode()``) have no version counter: buffers that are
ones are never known nor kept. Nor do a CUDA graph's replays bump any: a quantizer whose train-mode
forward was captured keeps nothing from then on (``ActQuantizer._may_keep``).
"""
from typing import Optional, Tuple

import torch

from dwq.ops.quantizer_fused import FUSED_DTYPES


class TrackedSlots:
    """A host-side lower bound of an ``initialized`` buffer: ``known(t, i)`` is True only if slot i
    of ``t`` is set."""

    def __init__(self):
        self._buffer, self._version, self._flags = None, None, ()

    def read(self, t: torch.Tensor) -> None:
        """Takes ``t``'s flags as they are (a host sync on accelerators: not for forwards)."""
        if t.is_inference():
            self.forget()
            return
        flags = [False] * t.numel() if t.device.type == "meta" else [bool(v) for v in t.tolist()]
        self._buffer, self._version, self._flags = t, t._version, tuple(flags)

    def valid(self, t: torch.Tensor) -> bool:
        return self._buffer is t and not t.is_inference() and self._version == t._version

    def raised(self, t: torch.Tensor, was_valid: bool, slots=()) -> None:
        """After a write of ``t`` that set ``slots`` and cleared none (``was_valid``: ``valid(t)``
        just before it): the flags as they were, if known, with ``slots`` set."""
        if t.is_inference():
            self.forget()
            return
        if was_valid and all(self._flags[i] for i in slots):  # (every train-mode forward after the first)
            self._buffer, self._version = t, t._version
            return
        flags = list(self._flags) if was_valid else [False] * t.numel()
        for i in slots:
            flags[i] = True
        self._buffer, self._version, self._flags = t, t._version, tuple(flags)

    def known(self, t: torch.Tensor, i: int) -> bool:
        return self.valid(t) and self._flags[i]

    def forget(self) -> None:
        self._buffer, self._version, self._flags = None, None, ()


class EvalQparams:
    """(scale, zero point) per call (``(bits, precision)`` as the caller spelled them) of an
    eval-mode quantizer, each with the identity and version of the three buffers it was computed
    from. ``get`` is the whole check a kept result needs: it runs at every eval forward of every
    layer, so it reads the buffers from the module's own dict and compares attributes, nothing more."""

    __slots__ = ("_kept",)

    def __init__(self):
        self._kept = {}

    def get(self, buffers: dict, call: tuple, x: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The kept (scale, zero point) of ``call``, if ``buffers`` (the quantizer's ``_buffers``) still
        hold the tensors it was computed from, unchanged, and the fused op serves ``x`` as it did."""
        hit = self._kept.get(call)
        if hit is None:
            return None
        a, b, c, va, vb, vc, scale, zp, cuda, inference = hit
        if (buffers["running_min"] is not a or buffers["running_max"] is not b or buffers["initialized"] is not c
                or a._version != va or b._version != vb or c._version != vc):
            return None
        if not x.numel() or x.dtype not in FUSED_DTYPES or not (x.is_cuda if cuda else x.is_cpu):
            return None  # (the quantizer's own forward decides: an empty x, another dtype or device)
        if inference and not torch.is_inference_mode_enabled():
            return None  # (kept under torch.inference_mode(): autograd refuses inference tensors outside it)
        return scale, zp

    def put(self, call: tuple, buffers, scale: torch.Tensor, zero_point: torch.Tensor) -> None:
        # The buffers themselves are held too, so that they (and their ids) stay what the entry names.
        a, b, c = buffers
        try:
            versions = a._version, b._version, c._version
        except RuntimeError:  # an inference tensor: no version counter, nothing can be kept
            return
        self._kept[call] = (a, b, c, *versions, scale, zero_point, scale.is_cuda, scale.is_inference())

    def clear(self) -> None:
        self._kept = {}

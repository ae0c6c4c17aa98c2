"""SHA-256 of named tensors (name, dtype, shape and bytes of each): what an integer-model file checks
on load (:mod:`dwq.deploy.artifact`) and what ties an evaluation's saved stages to its model and
images (:mod:`dwq.eval.stages`)."""
from __future__ import annotations

import hashlib
from typing import Dict

import torch


def tensor_digest(tensors: Dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        h.update(f"{name}|{str(t.dtype)}|{list(t.shape)}|".encode())
        # (flattened: a 0-d tensor, which only a foreign file holds, has no byte view; read in place, not
        # copied: an evaluation's images can be gigabytes)
        if t.numel():
            h.update(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()

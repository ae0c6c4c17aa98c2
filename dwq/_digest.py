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
        # (a name's own "|" and "\\" escaped: unescaped, {"a|torch.float32|[0]|b": t} read the same as
        # {"a": an empty float32, "b": t}; names without either, all of a state_dict's, hash as before)
        key = name.replace("\\", "\\\\").replace("|", "\\|")
        h.update(f"{key}|{str(t.dtype)}|{list(t.shape)}|".encode())
        # (flattened: a 0-d tensor, which only a foreign file holds, has no byte view; read in place, not
        # copied: an evaluation's images can be gigabytes)
        if t.numel():
            h.update(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()

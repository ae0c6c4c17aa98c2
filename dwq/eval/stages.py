"""The finished stages of an evaluation on disk, so that an interrupted one resumes where it stopped.

An evaluation is a sequence of stages (clean accuracy, the chosen attack at each precision, EOT-PGD,
AutoAttack); each draws its randomness from a generator seeded for that stage alone, so a stage read
back from disk is exactly the one a run without the interruption computes. ``stage_dir`` holds
``evaluation.json`` (the settings, digests of the model's state, of its layers' options and of the
images and labels) and
one ``<stage>.pt`` per finished stage, written atomically. A folder made for another evaluation is
refused, naming what differs: reading its stages would mix two evaluations.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Callable, Optional

import torch

from dwq._digest import tensor_digest
from dwq._torch_file import torch_load, torch_save_atomic

__all__ = ["StageStore", "StageDirError", "evaluation_identity"]

IDENTITY = "evaluation.json"


class StageDirError(ValueError):
    """A stage folder that belongs to another evaluation, or one that cannot be read."""


def evaluation_identity(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: dict) -> dict:
    """What an evaluation's figures depend on: its settings (JSON-ready), the model's class and state,
    and the images and labels."""
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    from dwq._version import __version__

    settings = dict(settings, dwq_version=__version__)  # another dwq may compute other figures
    return {"settings": json.loads(json.dumps(settings, sort_keys=True, default=repr)),
            "model": f"{type(model).__name__} {tensor_digest(state)}",
            "layers": _layers_digest(model),
            "data": tensor_digest({"x": x, "y": y})}


def _layers_digest(model: torch.nn.Module) -> str:
    """A digest of what the state does not hold but the figures depend on: each layer's options (a
    quantizer's zero-point mode or range EMA, a conv's stride). The current precision is left out (every
    stage sets its own), and so are object addresses, which differ from process to process."""
    text = re.sub(r"precision=[^,)\s]*", "precision=*", repr(model))
    return hashlib.sha256(re.sub(r"0x[0-9a-fA-F]+", "0x*", text).encode()).hexdigest()


def _differences(theirs: dict, ours: dict) -> list:
    out = []
    kinds = [str(d.get("model", "")).split(" ")[0] for d in (theirs, ours)]
    if kinds[0] != kinds[1]:  # e.g. dwq eval --integer (a StraightThrough) against the fake-quant model
        out.append(f"the model: a {kinds[0] or '?'} there, a {kinds[1]} here")
    elif theirs.get("model") != ours["model"]:
        out.append("the model's weights or state")
    elif theirs.get("layers") != ours["layers"]:
        out.append("the model's layer or quantizer options (e.g. zero_point=, act_ema=)")
    if theirs.get("data") != ours["data"]:
        out.append("the images or labels")
    ts, os_ = theirs.get("settings") or {}, ours["settings"]
    out += [f"{k} {ts.get(k)!r} there, {os_.get(k)!r} here" for k in sorted(set(ts) | set(os_))
            if ts.get(k) != os_.get(k)]
    return out


class StageStore:
    """``run(name, fn)``: ``fn()`` once; its result is saved under ``name`` and read back by a later
    store on the same folder and identity instead of running ``fn`` again."""

    def __init__(self, folder: Optional[str], identity: Optional[dict] = None, device=None):
        self.folder, self.device = folder, device
        if folder is None:
            return
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, IDENTITY)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    theirs = json.load(f)
            except (OSError, ValueError) as e:
                raise StageDirError(f"{path}: not readable ({e}); remove {folder} to evaluate from the start") from None
            diff = _differences(theirs if isinstance(theirs, dict) else {}, identity)
            if diff:
                raise StageDirError(f"{folder} holds the stages of another evaluation: " + "; ".join(diff))
        else:
            from dwq.eval.report import save_json

            save_json(identity, path)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".pt")

    def run(self, name: str, fn: Callable):
        if self.folder is None:
            return fn()
        path = self._path(name)
        if os.path.isfile(path):
            try:
                saved = torch_load(path, StageDirError, "saved evaluation stage", "a file written by dwq.eval",
                                   map_location=self.device)
                return saved["result"]
            except (StageDirError, KeyError, TypeError) as e:  # a disk error, not a kill (writes are atomic)
                why = e if isinstance(e, StageDirError) else f"{path} holds no stage result"
                raise StageDirError(f"{why}; remove {path} to run that stage again") from None
        result = fn()
        torch_save_atomic(path, {"stage": name, "result": result})
        return result

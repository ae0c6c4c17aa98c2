"""The finished stages of an evaluation on disk, so that an interrupted one resumes where it stopped.

An evaluation is a sequence of stages (clean accuracy, the chosen attack at each precision, EOT-PGD,
AutoAttack); each draws its randomness from a generator seeded for that stage alone, so a stage read
back from disk is exactly the one a run without the interruption computes. ``stage_dir`` holds
``evaluation.json`` (the settings, digests of the model's state, of its layers' options and of the
images and labels) and one ``<stage>.pt`` per finished stage, written atomically. A folder made for
another evaluation is refused, naming what differs: reading its stages would mix two evaluations.

Inside a stage, the batch loops of the attacks run through :func:`resumable_map`: each batch's result
is saved as it finishes (``<stage>.parts/``), with the states of the generators the stage draws from,
so a stage killed half-way (an AutoAttack run of hours) resumes at its first unfinished batch.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
import shutil
from typing import Callable, Iterable, Optional, Sequence

import torch

from dwq._digest import tensor_digest
from dwq._torch_file import torch_load, torch_save_atomic
from dwq.eval.attacks import CW_ATTACKS, REFERENCE_CW_STEPS

__all__ = ["StageStore", "StageDirError", "evaluation_identity", "resumable_map"]

IDENTITY = "evaluation.json"
# The stage being run, so that the protocols' batch loops find where to save their batches without a
# folder argument on every public function (dwq.eval.protocols).
_STAGE = contextvars.ContextVar("dwq_eval_stage", default=None)


class StageDirError(ValueError):
    """A stage folder that belongs to another evaluation, or one that cannot be read."""


def kernel_identity(device) -> dict:
    """Which float kernels computed the figures, beyond the device type: torch's version and the CPU's
    kernel level (torch picks AVX-512, AVX2 or plain code at start) or the GPU's model. A resume requeued
    onto another machine mixed two kernel sets into a report that matched neither run."""
    dev = torch.device(device)
    kernels = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
               else f"cpu {torch.backends.cpu.get_cpu_capability()}")
    return {"torch": torch.__version__, "kernels": kernels}


# settings compared only where a folder recorded them (folders of dwq before 2026-12-04 did not)
ADDED_LATER = tuple(kernel_identity("cpu"))


def evaluation_identity(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: dict) -> dict:
    """What an evaluation's figures depend on: its settings (JSON-ready), the model's class and state,
    and the images and labels."""
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    twin = getattr(model, "twin", None)  # a StraightThrough's gradients are its twin's, kept out of its state
    if isinstance(twin, torch.nn.Module):
        state.update({f"twin.{k}": v for k, v in twin.state_dict().items() if isinstance(v, torch.Tensor)})
    from dwq._version import __version__

    # another dwq, torch or machine may compute other figures
    settings = dict(settings, dwq_version=__version__, **kernel_identity(y.device))
    return {"settings": json.loads(json.dumps(settings, sort_keys=True, default=repr)),
            "model": f"{type(model).__name__} {tensor_digest(state)}",
            "layers": _layers_digest(model),
            "data": tensor_digest({"x": x, "y": y})}


def _layers_digest(model: torch.nn.Module) -> str:
    """A digest of what the state does not hold but the figures depend on: each layer's options (a
    quantizer's zero-point mode or range EMA, a conv's stride). The current precision is left out (every
    stage sets its own), and so are object addresses, which differ from process to process."""
    twin = getattr(model, "twin", None)
    text = re.sub(r"precision=[^,)\s]*", "precision=*", repr(model) + (repr(twin) if twin is not None else ""))
    return hashlib.sha256(re.sub(r"0x[0-9a-fA-F]+", "0x*", text).encode()).hexdigest()


# settings that folders of earlier versions recorded and no stage depends on, or that a stage's name now
# holds (dwq.eval.run)
_NOT_IDENTITY = ("protocols", "paper_batch", "autoattack_n", "autoattack_steps", "eot_iter")
# a PGD's settings, None where no stage of that run used a PGD (a folder of an earlier dwq recorded a
# placeholder there): compared only when both runs use them
_PGD_ONLY = ("alpha", "steps", "restarts")


# the dwq eval flag behind a setting, named beside it: the keys alone left a user who changed --reference
# reading "pgd_options None there, {...} here"
_EVAL_FLAG = {"precisions": "--precisions", "attack": "--attack", "epsilon": "--epsilon", "alpha": "--alpha",
              "steps": "--steps", "restarts": "--restarts", "seed": "--seed", "batch_size": "--batch-size",
              "cw_tau": "--cw-tau", "cw_steps": "--cw-steps", "bandits_queries": "--bandits-queries",
              "bandits_tile": "--bandits-tile",
              "pgd_options": "--reference", "device": "--device"}


def _differences(theirs: dict, ours: dict) -> list:
    out = []
    kinds = [str(d.get("model", "")).split(" ")[0] for d in (theirs, ours)]
    if kinds[0] != kinds[1]:  # e.g. dwq eval --integer (a StraightThrough) against the fake-quant model
        integer = " (dwq eval --integer evaluates a StraightThrough)" if "StraightThrough" in kinds else ""
        out.append(f"the model: a {kinds[0] or '?'} there, a {kinds[1]} here{integer}")
    elif theirs.get("model") != ours["model"]:
        out.append("the model's weights or state")
    elif theirs.get("layers") != ours["layers"]:
        out.append("the model's layer or quantizer options (e.g. zero_point=, act_ema=)")
    if theirs.get("data") != ours["data"]:
        out.append("the images or labels (dwq eval: another --n-test or --data-dir)")
    ts, os_ = theirs.get("settings"), ours["settings"]
    ts = ts if isinstance(ts, dict) else {}  # (a hand-edited file: every setting then differs, named)
    if "attack" in ts and "cw_steps" not in ts:  # a folder of dwq before --cw-steps: its CW attacks ran 100
        ts = dict(ts, cw_steps=REFERENCE_CW_STEPS if ts["attack"] in CW_ATTACKS else None)
    out += [f"{k} {ts.get(k)!r} there, {os_.get(k)!r} here"
            + (f" (dwq eval {_EVAL_FLAG[k]})" if k in _EVAL_FLAG else "") for k in sorted(set(ts) | set(os_))
            if ts.get(k) != os_.get(k) and k not in _NOT_IDENTITY and (k in ts or k not in ADDED_LATER)
            and not (k in _PGD_ONLY and None in (ts.get(k), os_.get(k)))]
    return out


def _save_identity(identity: dict, path: str):
    from dwq.eval.report import save_json

    save_json(identity, path)


class StageStore:
    """``run(name, fn)``: ``fn()`` once; its result is saved under ``name`` and read back by a later
    store on the same folder and identity instead of running ``fn`` again."""

    def __init__(self, folder: Optional[str], identity: Optional[dict] = None, device=None):
        self.folder, self.device = folder, device
        # what this store took from an earlier, interrupted run: stages whole, and finished batches
        self.read_back, self.batches_read_back = [], 0
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
                raise StageDirError(f"{folder} holds the stages of another evaluation: " + "; ".join(diff)
                                    + f". Give the interrupted evaluation's settings again to continue it, or remove "
                                      f"{folder} to evaluate from the start")
            # The PGD settings a run without a PGD left None join the record once a resume uses them:
            # left None, every later resume was free to change them and read back a stage made with these
            filled = {k: identity["settings"][k] for k in _PGD_ONLY
                      if theirs["settings"].get(k) is None and identity["settings"].get(k) is not None}
            if filled:
                _save_identity(dict(theirs, settings=dict(theirs["settings"], **filled)), path)
        else:
            _save_identity(identity, path)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".pt")

    def refuse_others(self, name: str, kind: str, flags: str) -> None:
        """StageDirError if the folder holds a stage (or its finished batches) whose name starts with
        ``kind`` but is not ``name``: a stage whose settings are in its name, which a resume with other
        ``flags`` would run afresh beside, and then discard with the folder (hours of AutoAttack)."""
        if self.folder is None:
            return
        ours, prefix = (os.path.basename(self._path(n))[:-len(".pt")] for n in (name, kind))
        for entry in sorted(os.listdir(self.folder)):
            stem = re.sub(r"\.(pt|parts)$", "", entry)
            if stem != entry and stem.startswith(prefix) and stem != ours:
                raise StageDirError(f"{os.path.join(self.folder, entry)} holds {kind} with other settings than "
                                    f"this evaluation's ({name[len(kind):].lstrip(', ')}); give the interrupted "
                                    f"evaluation's {flags} again to continue it, or remove that file to run the stage "
                                    f"with these")

    def run(self, name: str, fn: Callable, generators: Sequence[torch.Generator] = ()):
        """``fn()``'s result, or the saved one; ``generators``: the ones every batch of the stage draws
        from, saved with each finished batch (:func:`resumable_map`)."""
        if self.folder is None:
            return fn()
        path = self._path(name)
        if os.path.isfile(path):
            self.read_back.append(name)
            result, stage = _read(path, "stage", self.device, "stage")
            if stage != name:  # (a file copied or renamed by hand: another stage's result, a traceback later)
                raise StageDirError(f"{path} holds the result of stage {stage!r}, not {name!r}; remove {path} to "
                                    f"run that stage again")
            return result
        parts = _Parts(path[:-len(".pt")] + ".parts", self.device, generators)
        token = _STAGE.set(parts)
        try:
            result = fn()
        finally:
            _STAGE.reset(token)
            self.batches_read_back += parts.read_back
        torch_save_atomic(path, {"stage": name, "result": result})
        shutil.rmtree(parts.folder, ignore_errors=True)  # the stage file holds it all now
        return result


class _Parts:
    """The finished batches of the stage in progress: ``<call>.<batch>.pt`` for the n-th
    :func:`resumable_map` of the stage (a stage runs its maps in a fixed order)."""

    def __init__(self, folder: str, device, generators: Sequence[torch.Generator]):
        self.folder, self.device, self.generators, self.calls = folder, device, list(generators), 0
        self.read_back = 0

    def map(self, fn: Callable, items: Iterable, generators: Sequence[torch.Generator]) -> list:
        call, self.calls = self.calls, self.calls + 1
        generators = self.generators + list(generators)
        out, computing = [], False
        for i, item in enumerate(items):
            path = os.path.join(self.folder, f"{call}.{i}.pt")
            if not computing and os.path.isfile(path):
                result, states = _read(path, "batch", self.device, "generators")
                if len(states) != len(generators):
                    raise StageDirError(f"{path} holds {len(states)} generator state(s), this stage draws from "
                                        f"{len(generators)}; remove {self.folder} to run the stage again")
                # the generators as that batch left them: what runs next draws where it left off
                for g, st in zip(generators, states):
                    g.set_state(st.cpu())  # (loaded onto the evaluation's device; a state is a CPU byte tensor)
                out.append(result)
                self.read_back += 1
                continue
            computing = True
            out.append(fn(*item))
            os.makedirs(self.folder, exist_ok=True)
            torch_save_atomic(path, {"result": out[-1], "generators": [g.get_state() for g in generators]})
        return out


def _read(path: str, what: str, device, *extra: str) -> list:
    """The saved ``result`` (and ``extra`` entries) of a stage or batch file, or StageDirError saying
    what to remove: a damaged file is a disk error, not a kill (the writes are atomic)."""
    try:
        saved = torch_load(path, StageDirError, f"saved evaluation {what}", "a file written by dwq.eval",
                           map_location=device)
        return [saved[k] for k in ("result",) + extra]
    except (StageDirError, KeyError, TypeError) as e:
        why = e if isinstance(e, StageDirError) else f"{path} holds no {what} result"
        raise StageDirError(f"{why}; remove {path} to run that {what} again") from None


def resumable_map(fn: Callable, items: Iterable, generators: Sequence[torch.Generator] = ()) -> list:
    """``[fn(*item) for item in items]``. Run inside a stage of a :class:`StageStore` with a folder,
    each result is saved as it finishes, with the states of ``generators`` (the ones ``fn`` draws from);
    the same stage run again reads the finished results back and restores those states before the
    first unfinished item, so the results are the uninterrupted run's."""
    parts = _STAGE.get()
    if parts is None:
        return [fn(*item) for item in items]
    return parts.map(fn, items, list(generators))

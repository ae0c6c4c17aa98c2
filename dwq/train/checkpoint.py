"""Atomic checkpoints that resume exactly and load without executing pickled code.

A checkpoint is a ``torch.save`` dict of tensors, numbers, strings, lists and
dicts only, so ``torch.load(..., weights_only=True)`` reads it. It holds the
model, optimizer and scheduler states, the epoch/step counters, the run config,
and every RNG state the loop uses (torch CPU/CUDA, numpy, Python ``random`` and
the loop's own generator).
Writing goes to a temporary ``<path>.<host tag>.<random>.tmp`` then ``os.replace`` (atomic on
POSIX), so a kill during the write leaves the previous checkpoint intact; an error or Ctrl-C during
it also removes the temporary file (a SIGKILL cannot: a later completed save removes it once it is a minute old).
"""
from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

from dwq._digest import tensor_digest
from dwq._errors import first_line
from dwq._torch_file import torch_load, torch_save_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "load_trained_model", "rng_state", "set_rng_state",
           "CheckpointError"]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, foreign or of another run: the message names the file."""


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every RNG state a run draws from (torch CPU and CUDA, numpy, Python's, and ``generator``'s), as a
    checkpoint keeps it; :func:`set_rng_state` puts it back."""
    np_state = np.random.get_state()
    st = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": _py_state_to_list(random.getstate()),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def _py_state_to_list(s):
    return [s[0], list(s[1]), s[2]]


def set_rng_state(st: dict, generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` returned (CUDA states for the GPUs this machine has)."""
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was loaded with.
    torch.set_rng_state(st["torch"].cpu())
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = st["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in st and torch.cuda.is_available():
        # One state per GPU of the machine that saved it; a resume on a machine with fewer GPUs sets
        # those it has (torch raises an IndexError on the first missing one, or defers it to CUDA's start).
        torch.cuda.set_rng_state_all([t.cpu() for t in st["cuda"][:torch.cuda.device_count()]])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"].cpu())


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` atomically to ``path`` (tmp file + fsync + os.replace). A failed or
    interrupted write leaves the previous ``path`` and no temporary file. The state gets its digests
    (:func:`with_digests`), which :func:`load_checkpoint` checks."""
    torch_save_atomic(path, with_digests(state))


def _tensors_only(model) -> bool:
    return isinstance(model, dict) and bool(model) and all(isinstance(v, torch.Tensor) for v in model.values())


_DIGESTS = ("model_sha256", "state_sha256")


def _state_tensors(state: dict) -> dict:
    """Every tensor of a checkpoint outside its model (optimizer moments, RNG states, free training's
    perturbation, ...), named by its path in the state."""
    out = {}

    def walk(v, path):
        if isinstance(v, torch.Tensor):
            out[path] = v
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    for k, v in state.items():
        if k != "model" and k not in _DIGESTS:
            walk(v, str(k))
    return out


def with_digests(state: dict) -> dict:
    """``state`` with ``model_sha256``, the digest of its ``model`` state_dict (unless its model is not a
    dict of tensors), and ``state_sha256``, that of every other tensor it holds (a resume reads the
    optimizer's moments and the RNG states too); a state that has them (saved to several files) is
    digested once."""
    if "state_sha256" in state:
        return state
    out = {**state, "state_sha256": tensor_digest(_state_tensors(state))}
    if "model_sha256" not in state and _tensors_only(state.get("model")):
        out["model_sha256"] = tensor_digest(state["model"])
    return out


def _check_digests(path: str, ck: dict) -> None:
    # torch.load does not check the zip's CRCs: damaged bytes inside a tensor loaded as other weights
    # (or another optimizer state, which a resume went on with). A checkpoint of before the digests has
    # none (or only the model's): it loads as it did.
    want = ck.get("model_sha256")
    if want is not None and _tensors_only(ck.get("model")) and tensor_digest(ck["model"]) != want:
        raise CheckpointError(f"{path} is corrupt: its model's tensors do not match the digest stored when it was "
                              f"saved (model_sha256)")
    want = ck.get("state_sha256")
    if want is not None and tensor_digest(_state_tensors(ck)) != want:
        raise CheckpointError(f"{path} is corrupt: its tensors other than the model's (optimizer, RNG states) do not "
                              f"match the digest stored when it was saved (state_sha256)")


def _refuse_safetensors(path: str) -> None:
    """CheckpointError naming a safetensors file (what ``dwq deploy`` writes) given as a checkpoint.
    torch.load reads some of them as a bare dict of tensors (a header length whose first byte is 0x80
    looks like a pickle), which was then called a reference-code checkpoint, and others not at all."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # (safetensors' own error types) not a safetensors file: torch.load decides
        return
    if "dwq" not in meta:
        raise CheckpointError(f"{path} is a safetensors file, not a dwq checkpoint (a torch.save file written by "
                              f"dwq train)")
    try:
        source = json.loads(meta["dwq"])["model"]["info"]["checkpoint"]
    except (ValueError, KeyError, TypeError):
        source = None
    raise CheckpointError(f"{path} is a dwq integer model (written by dwq deploy), not a checkpoint of dwq train; "
                          f"give the best.pt or last.pt it was converted from"
                          + (f" ({source})" if isinstance(source, str) else ""))


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear error if missing or not ours."""
    if os.path.isdir(path):  # a run folder, named for its checkpoint ("does not exist" would be wrong)
        raise CheckpointError(f"checkpoint {path} is a folder; give a checkpoint file in it, e.g. "
                              f"{os.path.join(path, 'best.pt')} or {os.path.join(path, 'last.pt')}")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    _refuse_safetensors(path)
    ck = torch_load(path, CheckpointError, "dwq checkpoint", "a torch.save file written by dwq train",
                    map_location)
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck:
        raise CheckpointError(f"{path} is not a dwq checkpoint (no 'model'/'config' entries; a reference-code "
                              f"checkpoint loads with dwq.models.load_reference_state_dict)")
    # (every reader takes the config and its notes for dicts: a hand-made file's list was an AttributeError)
    cfg = ck["config"]
    if not isinstance(cfg, dict) or not isinstance(cfg.get("extra", {}), dict):
        what = (f"a {type(cfg).__name__}" if not isinstance(cfg, dict)
                else f"a dict whose 'extra' is a {type(cfg['extra']).__name__}")
        raise CheckpointError(f"{path} is not a dwq checkpoint: its 'config' entry is {what}, not a run's config "
                              f"(a dict, its 'extra' a dict)")
    _check_digests(path, ck)
    return ck


def load_trained_model(path: str, device="cpu"):
    """``(model, checkpoint)`` from a ``best.pt``/``last.pt`` written by ``dwq train`` (or ``dwq demo``):
    the network is rebuilt from the checkpoint's own config (architecture, dataset, precision set,
    switchable BN, width, quantizer policy, ``--reference``), its weights loaded, and the model put in eval mode on
    ``device``. ``checkpoint["config"]`` is the run's config.json (``extra.flags``: every ``dwq train``
    flag of the run); ``checkpoint["epoch"]`` the epochs it had trained.

    CheckpointError (one line) for a missing or corrupt file, a file not written by ``dwq train`` or
    weights that do not fit the architecture the config names.

    Example::

        model, ck = dwq.train.load_trained_model("runs/x/best.pt")
        with dwq.precision(model, 4):
            logits = model(images)          # images: float32 [N, C, H, W] in [0, 1]
    """
    from dwq.models import build_model
    from dwq.models.common import QuantPolicy
    from dwq.quant import normalize_precision, parse_precision

    ck = load_checkpoint(path, map_location="cpu")
    ex = ck["config"].get("extra", {})  # (load_checkpoint checked both are dicts)
    lacks = [k for k in ("network", "dataset", "model_precisions") if k not in ex]
    if lacks:
        raise CheckpointError(f"{path} does not say which network it holds: its config's extra lacks "
                              f"{', '.join(lacks)} (dwq train writes them; a Trainer of the Python API writes "
                              f"what TrainConfig.extra holds)")
    try:
        # "fp"/"4"/"4w8a" (one spelling); checkpoints of before it hold None, ints and [w, a] lists
        precisions = [parse_precision(p) if isinstance(p, str) else (tuple(p) if isinstance(p, list) else p)
                      for p in ex["model_precisions"]]
        [normalize_precision(p) for p in precisions]
        policy = ex.get("policy")
        if policy is not None and not isinstance(policy, dict):  # (was ignored: the default policy built)
            raise TypeError(f"its policy must be a dict of QuantPolicy fields, got {type(policy).__name__}")
        policy = QuantPolicy(**policy) if policy is not None else None
    except (ValueError, TypeError) as err:  # a damaged or foreign config: name the file, not a traceback
        raise CheckpointError(f"{path}: its config does not describe a dwq model ({err})") from None
    try:
        # (a Trainer of the Python API may not record it: read from the weights, every model's default
        # being switchable BN, which the old default False refused to load)
        sbn = ex["switchable_bn"] if "switchable_bn" in ex else _has_switchable_bn(ck["model"])
        # (likewise the reference's quantizer: a model built with reference=True by a Trainer of one's
        # own was rebuilt with dwq's and refused, "missing ... running_max")
        ref = ex["reference"] if "reference" in ex else _has_reference_quantizer(ck["model"])
        model, _ = build_model(ex["network"], ex["dataset"], precisions, sbn,
                               ex.get("width", 32), policy=policy, reference=bool(ref))
    except (RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: the weights do not fit a {ex['network']} "
                              f"({first_line(err)})") from None
    if not isinstance(ck["model"], dict):
        raise CheckpointError(f"{path}: 'model' holds a {type(ck['model']).__name__}, expected a state_dict")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, ValueError, TypeError) as err:
        why = first_line(err)
        if why.startswith("Error(s) in loading state_dict"):  # the details are on the lines that follow
            why = _state_dict_mismatch(model.state_dict(), ck["model"]) or why
        raise CheckpointError(f"{path}: the weights do not fit the {ex['network']} its config describes "
                              f"({_describe(ex, precisions)}): {why}") from None
    return model.to(device).eval(), ck


def _has_switchable_bn(state) -> bool:
    """Whether a state_dict holds SwitchableBatchNorm2d branches (``<layer>.bn.<i>.running_mean``)."""
    return isinstance(state, dict) and any(re.search(r"(^|\.)bn\.\d+\.running_mean$", str(k)) for k in state)


def _has_reference_quantizer(state) -> bool:
    """Whether a state_dict holds the reference code's activation quantizers (float zero point: a
    ``<layer>.input_quant.running_range``, where dwq's hold ``running_min`` and ``running_max``)."""
    return isinstance(state, dict) and any(str(k).endswith("input_quant.running_range") for k in state)


def _describe(ex: dict, precisions) -> str:
    from dwq.quant import precision_name

    sbn = ", switchable BN" if ex.get("switchable_bn") else ""
    width = f" width {ex['width']}" if ex.get("network") == "small_cnn" and "width" in ex else ""
    return f"{ex['dataset']}{width}, precisions {' '.join(precision_name(p) for p in precisions)}{sbn}"


def _state_dict_mismatch(want: dict, got: dict):
    """One line naming the keys and shapes that differ (torch's own message spans many lines and
    its first says only "Error(s) in loading state_dict"), or None when they agree."""
    def few(keys):
        keys = sorted(keys)
        return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")

    parts = []
    odd = sorted(k for k, v in got.items() if not isinstance(v, torch.Tensor))
    if odd:  # (torch's first line says nothing of them)
        parts.append(f"{odd[0]} is a {type(got[odd[0]]).__name__}, not a tensor"
                     + (f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""))
    missing, unexpected = set(want) - set(got), set(got) - set(want)
    if missing:
        parts.append(f"missing {few(missing)}")
    if unexpected:
        parts.append(f"unexpected {few(unexpected)}")
    shapes = [k for k in sorted(set(want) & set(got))
              if isinstance(got[k], torch.Tensor) and tuple(got[k].shape) != tuple(want[k].shape)]
    if shapes:
        k = shapes[0]
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        parts.append(f"{k} has shape {list(got[k].shape)} in the checkpoint, {list(want[k].shape)} in the model{more}")
    return "; ".join(parts) or None

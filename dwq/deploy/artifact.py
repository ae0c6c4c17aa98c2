"""An integer model on disk: one safetensors file, tensors plus JSON metadata, and its size report.

The metadata (safetensors' ``__metadata__``, key ``"dwq"``) is JSON: ``format`` ("dwq-integer-model"),
``format_version``, ``dwq_version``, ``model`` (the layer configs, the program, ``info``: the source
architecture, precision set, quantizer settings, and ``precision``: the one the model was at, where
it loads again), ``sha256`` (digest of every tensor's name, dtype,
shape and bytes) and ``model_sha256`` (digest of ``model``'s canonical JSON: a changed stride or
padding would load as another model; files written before it are read without that check). Loading parses JSON and raw tensor bytes only: no pickle, no code. Weights are codes
at exactly their bit width (:mod:`dwq.deploy.bitpack`); the kernels' layout is rebuilt on load.

Writes go to a temporary file of their own beside ``path`` (``<path>.<host tag>.<random>.tmp``),
are fsynced, then renamed over ``path`` (atomic on POSIX, :func:`dwq._atomic.atomic_open`): an
interrupted save never replaces a good file, one that fails or is cut by Ctrl-C leaves no ``.tmp``
behind, and two processes saving one path leave one whole file, the later one's.
"""
import hashlib
import json
import os
from typing import List, Optional

import torch

from dwq._atomic import atomic_open
from dwq._digest import tensor_digest as _digest
from dwq._errors import first_line, typed_first_line
from dwq._version import __version__
from dwq.deploy.integer_model import IntegerModel
from dwq.quant.precision import precision_name

__all__ = ["ArtifactError", "FORMAT", "FORMAT_VERSION", "save", "load", "read_metadata", "size_report",
           "format_size_report"]

FORMAT = "dwq-integer-model"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A file that is not a loadable dwq integer model (missing, corrupt, truncated, other format version);
    the message is one line naming the file and the problem."""


def _model_digest(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(model: IntegerModel, path: str, overwrite: bool = True) -> None:
    """Writes ``model`` (from :func:`dwq.deploy.convert` or :func:`load`) and its current precision to
    ``path`` atomically; ``overwrite=False``: FileExistsError if ``path`` exists, before any work or (written
    meanwhile) when the write ends, never replacing it."""
    from safetensors.torch import save as st_save

    if not isinstance(model, IntegerModel):
        raise TypeError(f"save: expected a dwq.deploy.IntegerModel, got {type(model).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # (else the error would name the temporary file)
        raise FileNotFoundError(f"save: the folder of {path} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path} is a folder; give a file path, e.g. {os.path.join(path, 'model.safetensors')}")
    if not overwrite and os.path.lexists(path):  # (else it said so only after the whole serialisation, as a race)
        raise FileExistsError(f"save: {path} exists and overwrite=False")
    tensors, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        # safetensors stores each buffer once: copy tensors that share one
        if v.numel() and v.untyped_storage().data_ptr() in seen:
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        tensors[k] = v
    cfg = json.loads(json.dumps(model.config(), allow_nan=False))  # the digest of what load will read back
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "dwq_version": __version__,
            "model": cfg, "sha256": _digest(tensors), "model_sha256": _model_digest(cfg)}
    data = st_save(tensors, metadata={"dwq": json.dumps(meta)})
    with atomic_open(path, "wb", exclusive=not overwrite) as f:
        f.write(data)


def _torch_save_file(head: bytes) -> bool:
    """Whether a file's first 9 bytes are torch.save's: a zip archive, or (legacy) a pickle of protocol 2..5
    (0x80 and the protocol). A safetensors file starts with its header's length (8 bytes, little-endian)
    and the header's "{": its first byte is 0x80 for 1 header length in 32, so that byte alone misnamed
    a truncated artifact a PyTorch checkpoint."""
    if head[8:9] == b"{":
        return False
    pickle = len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5
    return pickle or head.startswith(b"PK\x03\x04")


def read_metadata(path: str) -> dict:
    """The JSON metadata of an artifact (no tensor is read); ArtifactError if the file is not one."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise ArtifactError(f"{path} is a directory, not an artifact file" if os.path.isdir(path)
                            else f"{path} does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            raw = (f.metadata() or {}).get("dwq")
    except Exception as e:  # safetensors raises its own error types for bad headers / truncation
        try:
            with open(path, "rb") as f:
                head = f.read(9)
        except OSError:
            head = b""
        if _torch_save_file(head):
            raise ArtifactError(f"{path} is a PyTorch checkpoint (torch.save), not a dwq integer model; "
                                f"convert a dwq train checkpoint with dwq deploy (dwq.deploy.convert, save)") from None
        raise ArtifactError(f"{path} is not a readable safetensors file (corrupt or truncated: "
                            f"{first_line(e)})") from None
    if raw is None:
        raise ArtifactError(f"{path} is a safetensors file but not a dwq integer model (no 'dwq' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: its dwq metadata is not valid JSON ({e})") from None
    except RecursionError:  # (a description nested deeper than Python's recursion limit)
        raise ArtifactError(f"{path}: its dwq metadata is JSON nested too deeply to read (a dwq model description "
                            f"is a few levels deep)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ArtifactError(f"{path} is not a dwq integer model (format {fmt!r})")
    if type(meta.get("format_version")) is not int or meta["format_version"] != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format version {meta.get('format_version')!r} (written by dwq "
                            f"{meta.get('dwq_version', '?')}); this dwq {__version__} reads version {FORMAT_VERSION}")
    return meta


def load(path: str, device="cpu") -> IntegerModel:
    """Reads an artifact written by :func:`save` into an :class:`IntegerModel` on ``device`` (eval mode), at
    the precision it was saved at (a file written without one, by an earlier dwq: the set's last).
    ArtifactError (one line) for a missing, corrupt or truncated file or another format version;
    ValueError, before the file is read, for a ``device`` that is no device or not available here."""
    from safetensors import safe_open

    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError, ValueError):
        raise ValueError(f"load: device must be a torch.device or a name such as 'cpu', 'cuda' or 'cuda:0', "
                         f"got {device!r}") from None
    if dev.type == "meta":  # (no data: the weights' unpacking fails later, far from the cause)
        raise ValueError("load: device 'meta' holds no data; give a device that computes, such as 'cpu' or 'cuda'")
    try:
        torch.empty(0, device=dev)
    except Exception as e:  # (no driver, no such index, a backend torch was built without: torch's own wording)
        raise ValueError(f"load: device {device!r} is not available here ({typed_first_line(e)})") from None
    meta = read_metadata(path)
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ArtifactError(f"{path}: cannot read its tensors (corrupt or truncated: {str(e).strip()[:200]})") from None
    if _digest(tensors) != meta.get("sha256"):
        raise ArtifactError(f"{path} is corrupt: its tensors do not match the digest stored at save time")
    if "model_sha256" in meta and _model_digest(meta.get("model")) != meta["model_sha256"]:
        raise ArtifactError(f"{path} is corrupt: its model description (layers, program) does not match the "
                            f"digest stored at save time")
    try:
        model = IntegerModel.from_config(meta["model"], tensors)
    except Exception as e:  # any way a damaged description fails is one line naming the file
        raise ArtifactError(f"{path}: the model description is invalid or does not fit its tensors "
                            f"({typed_first_line(e)})") from None
    return model.to(dev).eval()


# ----------------------------------------------------------------------------- size report
def size_report(model: IntegerModel, float_checkpoint_bytes: Optional[int] = None) -> List[dict]:
    """Bytes per precision, against float32.

    One row per precision: ``weight_bytes`` (the quantized layers' weight codes at their bit width),
    ``float32_weight_bytes`` (the same weights in float32) and their ``ratio`` (= w_bits/32 up to one
    byte per layer), ``scale_bytes`` (per-channel weight scales and zero points, input/output
    quantization, folded BN), ``float_layer_bytes`` (layers kept in float, their share for this
    precision), ``total_bytes`` (what a model of this one precision needs) and ``runtime_bytes`` (in
    memory: the kernels' packed 8-bit-limb weights instead of the codes); ``float_checkpoint_bytes``
    (the float model's float32 state, from ``model.info`` unless given) for reference.
    """
    if float_checkpoint_bytes is None:
        float_checkpoint_bytes = model.info.get("float_checkpoint_bytes")
    rows = []
    for i, p in enumerate(model.precisions):
        t = {"weight": 0, "float32_weight": 0, "scale": 0, "float": 0, "runtime_weight": 0}
        for m in model.layers.values():
            for k, v in m.nbytes(i).items():
                t[k] += v
        rows.append({"precision": precision_name(p), "weight_bytes": t["weight"],
                     "float32_weight_bytes": t["float32_weight"],
                     "ratio": t["weight"] / t["float32_weight"] if t["float32_weight"] else None,
                     "scale_bytes": t["scale"], "float_layer_bytes": t["float"],
                     "total_bytes": t["weight"] + t["scale"] + t["float"],
                     "runtime_bytes": t["runtime_weight"] + t["scale"] + t["float"],
                     "float_checkpoint_bytes": float_checkpoint_bytes})
    return rows


def format_size_report(rows: List[dict], file_bytes: Optional[int] = None) -> str:
    """The size report as a plain-text table (MB = 1e6 bytes)."""
    mb = lambda b: f"{b / 1e6:9.3f}" if b is not None else f"{'-':>9}"  # noqa: E731
    lines = [f"{'precision':>9} {'weights MB':>10} {'of fp32':>8} {'scales MB':>9} {'float MB':>9} {'total MB':>9} "
             f"{'in RAM MB':>9}"]
    for r in rows:
        ratio = f"{r['ratio']:.4f}" if r["ratio"] is not None else "-"
        lines.append(f"{r['precision']:>9} {mb(r['weight_bytes']):>10} {ratio:>8} {mb(r['scale_bytes'])} "
                     f"{mb(r['float_layer_bytes'])} {mb(r['total_bytes'])} {mb(r['runtime_bytes'])}")
    fc = rows[0].get("float_checkpoint_bytes") if rows else None
    tail = []
    if fc:
        tail.append(f"float32 model state {fc / 1e6:.3f} MB")
    if file_bytes is not None:
        tail.append(f"artifact file (all precisions) {file_bytes / 1e6:.3f} MB")
    if tail:
        lines.append("; ".join(tail))
    return "\n".join(lines)

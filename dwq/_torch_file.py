"""Reading a ``torch.save`` file without running pickled code, with one-line errors naming the file:
dwq checkpoints (``dwq.train``), an evaluation's saved stages (``dwq.eval``) and the torchvision
weights ResNet-50 starts from (``dwq.models``); and writing one atomically."""
from __future__ import annotations

import re
import zipfile

import torch

from dwq._atomic import atomic_open
from dwq._errors import typed_first_line


def torch_save_atomic(path: str, obj) -> None:
    """``torch.save(obj)`` to a temporary file beside ``path``, fsynced and renamed over ``path``: a failed or interrupted
    write leaves the previous ``path``; a full disk raises its OSError."""
    with atomic_open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:
            # torch's zip writer, closed after a write failed (a full disk), raises "unexpected pos" over
            # the OSError that says why; that one is what a caller can name and act on
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


def torch_load(path: str, error: type, what: str, expected: str, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; ``error`` (an exception class) with one line naming
    ``path``, what was found and ``expected`` for a file that is not a torch.save file, is damaged or
    holds pickled code. ``what`` names the kind of file for the messages ("dwq checkpoint")."""
    _check_map_location(map_location, error, path)
    with open(path, "rb") as f:
        head = f.read(8)
    # torch.save writes a zip archive ("PK"; legacy: a pickle, "\x80"); anything else makes torch.load
    # fail with a bare KeyError or EOFError that says nothing about the file
    if not head.startswith((b"PK", b"\x80")):
        found = "an empty file" if not head else f"a file starting with {head!r}"
        raise error(f"{path} is not a loadable {what} (found {found}; expected {expected})")
    if head.startswith(b"PK"):
        _check_zip(path, error, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file or pickled code; torch's own message runs over many lines
        msg = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if found:
            raise error(f"{path} holds pickled Python objects ({found.group(1)}; e.g. a whole "
                        f"torch.save(model)), not a {what}; dwq never runs pickled code: save "
                        f"model.state_dict() instead") from None
        found = re.search(r"WeightsUnpickler error:\s*(.+)", msg)
        why = f"{type(e).__name__}: {found.group(1).strip()}" if found else typed_first_line(e)
        raise error(f"{path} is not a loadable {what} ({why})") from None


def _check_zip(path: str, error: type, what: str) -> None:
    # torch.load checks no CRC: a flipped bit in the pickled part (a checkpoint's config: the ε dwq eval
    # takes from it) loaded as another value, and a truncated file said "OSError: Invalid argument".
    # Every member of torch.save's zip has a CRC32; checking them is one read of the file.
    # A member whose stored CRC is 0 is not checked: torch.serialization.set_crc32_options(False) writes
    # 0 for all (a real CRC of 0 is a 2^-32 chance).
    part = None
    try:
        with zipfile.ZipFile(path) as z:  # (BadZipFile when truncated: no end record)
            for info in z.infolist():
                if info.CRC != 0:
                    part = info.filename
                    with z.open(info) as f:
                        while f.read(1 << 22):
                            pass
    except Exception as e:  # BadZipFile (its CRC message, or a damaged header), zlib, EOF
        if part is not None and isinstance(e, zipfile.BadZipFile) and "CRC" in str(e):
            raise error(f"{path} is corrupt: its part {part!r} does not match the CRC stored when it was written "
                        f"(damaged bytes)") from None
        raise error(f"{path} is not a loadable {what} (truncated or damaged: {typed_first_line(e)})") from None


def _check_map_location(map_location, error: type, path: str) -> None:
    # A device this machine lacks made torch.load fail, and the message blamed the file
    if not isinstance(map_location, (str, torch.device)):
        return  # (a dict or a function: torch's to interpret)
    try:
        dev = torch.device(map_location)
    except RuntimeError as e:
        raise error(f"map_location={map_location!r} is not a device ({typed_first_line(e)}); {path} was not read") \
            from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        have = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA device"
        raise error(f"map_location={map_location!r}: this machine has {have}; {path} was not read "
                    f"(load it with map_location='cpu')")

"""Atomic file replacement, shared by every writer whose file a later run reads (checkpoints,
config.json, metrics.jsonl, integer-model artifacts)."""
from __future__ import annotations

import contextlib
import glob
import os
import secrets
import socket


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def tmp_name(path) -> str:
    """``<path>.<host>.<pid>.<random>.tmp``: a name of its own per write, so that two processes
    saving the same path (two runs given one output) never write into one temporary file, which
    left a mix of both under ``path``. Every such name ends in ``.tmp``."""
    return f"{os.fspath(path)}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def is_tmp_of(name: str, target: str) -> bool:
    """Whether the file name ``name`` is a temporary file of a write to ``target`` (a file name, no
    folder): this module's names, and the fixed ``<target>.tmp`` of dwq before 2026-12."""
    return name.startswith(target + ".") and name.endswith(".tmp")


def _remove_dead_writers_tmps(path: str) -> None:
    """Remove what killed writers of ``path`` on this host left (their process is gone): a kill during
    a write leaves its temporary file, and with a name per write those would pile up. A live writer's
    file, or one of another host (a shared file system), is left alone."""
    host = _host()
    for tmp in glob.glob(glob.escape(path) + f".{glob.escape(host)}.*.*.tmp"):
        pid = tmp[len(path) + len(host) + 2:].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        except OSError:  # (alive, another user's)
            pass


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Open a temporary file beside ``path`` (:func:`tmp_name`) for writing; when the block ends,
    flush, fsync and rename it over ``path`` (atomic on POSIX), then fsync the folder. A kill leaves the previous ``path``
    intact; an error or Ctrl-C in the block or the write also removes the temporary file, and the
    next completed write removes what killed writers left."""
    path = os.fspath(path)
    tmp = tmp_name(path)
    try:
        # (O_EXCL: never another's file; mode 0o666 less the umask, as open() gives)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(os.path.dirname(os.path.abspath(path)))
    _remove_dead_writers_tmps(path)


def _fsync_folder(folder: str) -> None:
    """The rename is on disk only once the folder is: without this a power cut after "wrote <path>" (or
    after the checkpoint a resume starts from) could bring back the previous file, or none."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # (a platform or file system without folder handles)
        return
    try:
        os.fsync(fd)
    except OSError:  # (one that cannot sync a folder: EINVAL)
        pass
    finally:
        os.close(fd)

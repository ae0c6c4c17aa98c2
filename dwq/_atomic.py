"""Atomic file replacement, shared by every writer whose file a later run reads (checkpoints,
config.json, metrics.jsonl, integer-model artifacts)."""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import secrets
import socket
import time

try:
    import fcntl
except ImportError:  # (no flock: temporary files of killed writers are then left in place)
    fcntl = None

# A temporary file is swept only once it is older than this: a writer creates its file, then locks it,
# and in between the file is unlocked.
_SWEEP_AGE_S = 60.0


def _host_tag() -> str:
    """8 hex digits of the host name: a host name of up to 64 characters in every temporary name
    made valid file names too long for the file system."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def tmp_name(path) -> str:
    """``<path>.<host tag>.<random>.tmp``: a name of its own per write, so that two processes saving
    the same path (two runs given one output) never write into one temporary file, which left a mix
    of both under ``path``. Every such name ends in ``.tmp``; it is 22 characters longer than the
    file's, so a file name of over 233 characters cannot be written. (Leftovers of the
    ``<path>.<host>.<pid>.<random>.tmp`` names of dwq before 2026-12-04 are not swept.)"""
    return f"{os.fspath(path)}.{_host_tag()}.{secrets.token_hex(4)}.tmp"


def check_name_length(path) -> None:
    """OSError(ENAMETOOLONG) naming ``path`` where its temporary file's name (:func:`tmp_name`) would be
    too long for its folder's file system: so that a command can refuse the name before its work,
    not when it writes the result."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (a missing folder, a platform without pathconf)
        limit = 255
    n = len(os.fsencode(os.path.basename(path)))
    extra = len(os.fsencode(tmp_name("")))  # (what tmp_name appends)
    if n + extra > limit:
        raise OSError(errno.ENAMETOOLONG, f"file name too long ({n} bytes; at most {limit - extra} here, the "
                      f"temporary file adds {extra})", path)


def is_tmp_of(name: str, target: str) -> bool:
    """Whether the file name ``name`` is a temporary file of a write to ``target`` (a file name, no
    folder): this module's names, and the fixed ``<target>.tmp`` of dwq before 2026-12."""
    return name.startswith(target + ".") and name.endswith(".tmp")


def _remove_dead_writers_tmps(path: str) -> None:
    """Remove what killed writers of ``path`` on this host left: a kill during a write leaves its
    temporary file, and with a name per write those would pile up. A writer holds an exclusive flock
    on its file until the rename, so a file whose lock can be taken has no live writer, whatever
    process (or PID namespace) made it. Files of another host (a shared file system, where flock may
    not reach across machines), files just created and files on a file system without flock are left."""
    if fcntl is None:
        return
    now = time.time()
    for tmp in glob.glob(glob.escape(path) + f".{_host_tag()}.*.tmp"):
        try:
            # the age first: a sweep that locked a fresh file, even for a moment, could meet its
            # writer's flock and leave that writer unlocked
            if now - os.stat(tmp).st_mtime <= _SWEEP_AGE_S:
                continue
            # (read-write: where flock is emulated by POSIX locks, NFS, an exclusive lock needs it)
            fd = os.open(tmp, os.O_RDWR)
        except OSError:  # (gone meanwhile; another user's)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.remove(tmp)
        except OSError:  # (locked: a live writer; no flock here; removed meanwhile)
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", exclusive: bool = False):
    """Open a temporary file beside ``path`` (:func:`tmp_name`) for writing; when the block ends,
    flush, fsync and rename it over ``path`` (atomic on POSIX), then fsync the folder. A kill leaves
    the previous ``path`` intact; an error or Ctrl-C in the block or the write also removes the
    temporary file, and a later completed write removes what killed writers left (a minute old).
    ``exclusive``: never replace a file, FileExistsError if ``path`` exists when the block ends (two
    commands given one new file: the second one's write fails, where a rename let it replace the
    first one's file); the file is then published by a hard link, atomic too."""
    path = os.fspath(path)
    tmp = tmp_name(path)
    # (O_EXCL: never another's file; mode 0o666 less the umask, as open() gives)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:  # named for the file being written: the temporary name is nothing a user knows
        raise _named(e, path) from None
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):  # (a file system without flock: no sweeping there either)
                fcntl.flock(fd, fcntl.LOCK_EX)  # (a sweep never locks a file this young: no wait)
        # the descriptor stays open past the file object's close (closefd=False), so that the lock
        # covers the rename: unlocked before it, the file could be swept by another writer (and where
        # flock is emulated by POSIX locks, closing any descriptor of the file releases the lock)
        with os.fdopen(fd, mode, closefd=False) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            _publish(tmp, path, exclusive)
        except OSError as e:
            raise _named(e, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        os.close(fd)
    _fsync_folder(os.path.dirname(os.path.abspath(path)))
    _remove_dead_writers_tmps(path)


def _publish(tmp: str, path: str, exclusive: bool) -> None:
    if not exclusive:
        os.replace(tmp, path)
        return
    exists = FileExistsError(errno.EEXIST, "exists already (written meanwhile by another process?)", path)
    try:
        os.link(tmp, path)  # (fails with EEXIST where path exists: no check-then-rename race)
    except FileExistsError:
        raise exists from None
    except OSError as e:  # a file system without hard links (vfat, some FUSE): the check races, rarely
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise exists from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def _named(e: OSError, path: str) -> OSError:
    return type(e)(e.errno, e.strerror, path)


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

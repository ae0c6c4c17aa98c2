"""dwq._atomic: the writer every checkpoint, report and artifact goes through."""
import fcntl
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from dwq._atomic import atomic_open, check_name_length, is_tmp_of, tmp_name


def test_two_writers_of_one_path_leave_one_whole_file(tmp_path):
    """Both wrote into one fixed <path>.tmp: the second open truncated the first's file, both wrote
    into it and the first rename put a mix of the two under path (the second's rename then failed)."""
    path = tmp_path / "last.pt"
    with atomic_open(path, "wb") as a:
        a.write(b"A" * 1000)
        with atomic_open(path, "wb") as b:
            b.write(b"B" * 10)
            a.write(b"A" * 1000)
        assert path.read_bytes() == b"B" * 10
    assert path.read_bytes() == b"A" * 2000  # the later rename wins, whole
    assert os.listdir(tmp_path) == ["last.pt"]


def test_mode_is_what_open_gives(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "c.json") as f:
            f.write("{}")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "c.json").st_mode) == 0o644  # (not mkstemp's 0o600)
    assert (tmp_path / "c.json").read_text() == "{}"


def _aged(path, seconds=600):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_completed_write_removes_what_killed_writers_left(tmp_path):
    path = str(tmp_path / "m.safetensors")
    left = tmp_name(path)  # a killed writer's: unlocked, old
    alive = tmp_name(path)  # a live writer's: locked
    fresh = tmp_name(path)  # just created, not locked yet
    other_host = path + ".elsewhere.00000000.tmp"
    for f in (left, alive, fresh, other_host):
        open(f, "w").write("half")
    for f in (left, alive, other_host):
        _aged(f)
    held = os.open(alive, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with atomic_open(path) as f:
            f.write("whole")
    finally:
        os.close(held)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (path, alive, fresh, other_host))
    assert is_tmp_of(os.path.basename(left), "m.safetensors") and is_tmp_of("m.safetensors.tmp", "m.safetensors")
    assert not is_tmp_of("m.safetensors", "m.safetensors") and not is_tmp_of("n.safetensors.1.tmp", "m.safetensors")


@pytest.mark.parametrize("spelling", ["plain", "double_slash"])
def test_a_live_writers_file_survives_another_writers_sweep(tmp_path, spelling):
    """The sweep decided liveness by the pid in the name: read from the wrong offset when the path was
    spelled with '//' (glob returns it with one), and meaningless for a writer in another PID namespace
    (a container sharing the host name and folder); the live writer's file was removed and its rename
    failed. Now a writer holds a lock on its file until the rename, in a process of its own here."""
    path = tmp_path / "ckpt"
    other = str(tmp_path) + "//ckpt" if spelling == "double_slash" else str(path)
    code = ("import sys, time; from dwq._atomic import atomic_open\n"
            "with atomic_open(sys.argv[1], 'w') as f:\n"
            "    f.write('A'); f.flush(); print('writing', flush=True); sys.stdin.readline(); f.write('A')\n")
    a = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert a.stdout.readline() == "writing\n"
        (tmp,) = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        _aged(tmp_path / tmp)  # (as a long write: old enough to be swept if its writer were gone)
        with atomic_open(other) as b:
            b.write("B")
        assert path.read_text() == "B" and tmp in os.listdir(tmp_path)
        a.stdin.write("\n")
        a.stdin.flush()
        assert a.wait(30) == 0
    finally:
        a.kill()
    assert path.read_text() == "AA" and os.listdir(tmp_path) == ["ckpt"]


def test_the_sweep_never_locks_a_fresh_file_and_a_writer_keeps_its_lock_to_the_rename(tmp_path, monkeypatch):
    """The sweep locked every file before looking at its age: a writer whose own flock met it (non-
    blocking) went on unlocked, and its file could be swept once a minute old. And the lock must cover
    the rename: a writer whose file was unlocked before it could lose it to a sweep."""
    path = str(tmp_path / "ckpt")
    fresh = tmp_name(path)
    open(fresh, "w").write("half")  # another writer's, between its create and its flock
    locked, flock = [], fcntl.flock

    def logged(fd, op):
        locked.append(os.readlink(f"/proc/self/fd/{fd}"))
        flock(fd, op)

    def probed_replace(src, dst):
        probe = os.open(src, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # still locked at the rename
                flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
        replace(src, dst)

    replace = os.replace
    monkeypatch.setattr(fcntl, "flock", logged)
    monkeypatch.setattr(os, "replace", probed_replace)
    with atomic_open(path) as f:
        f.write("whole")
        mine = locked[-1]
        probe = os.open(mine, os.O_RDWR)  # (another open file description: the lock is seen)
        with pytest.raises(BlockingIOError):
            flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(probe)
    assert fresh not in locked and locked == [mine]
    assert open(path).read() == "whole" and os.path.exists(fresh)


def test_a_name_near_the_file_systems_limit_is_written(tmp_path, monkeypatch):
    """The temporary name carried the whole host name (up to 64 characters) and the pid: a valid
    name of about 180 characters failed with 'File name too long'."""
    monkeypatch.setattr(socket, "gethostname", lambda: "node-" + "x" * 59)
    path = tmp_path / ("r" * 225 + ".json")
    with atomic_open(path) as f:
        f.write("{}")
    assert path.read_text() == "{}"


@pytest.mark.parametrize("relative", [False, True])
def test_the_rename_is_synced_through_the_folder(tmp_path, monkeypatch, relative):
    """The file was fsynced but not its folder, so after a power cut the rename could be lost; a relative
    path's folder is the working directory (its dirname is '', which cannot be opened)."""
    if relative:
        monkeypatch.chdir(tmp_path)
    synced = []
    fsync = os.fsync

    def logged(fd):
        synced.append(os.path.samestat(os.fstat(fd), os.stat(tmp_path)))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", logged)
    with atomic_open("config.json" if relative else tmp_path / "config.json") as f:
        f.write("{}")
    assert synced == [False, True]  # the file, then its folder
    assert (tmp_path / "config.json").read_text() == "{}"


def test_an_exclusive_write_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    """Two commands given one new file each checked it was absent, then both renamed over it: the
    second replaced the first one's result and both said "wrote"."""
    path = tmp_path / "model.safetensors"
    with pytest.raises(FileExistsError) as e:
        with atomic_open(path, "w", exclusive=True) as f:
            f.write("mine")
            path.write_text("theirs")  # the other command finished first
    assert e.value.filename == str(path) and "another process" in str(e.value)
    assert path.read_text() == "theirs" and sorted(os.listdir(tmp_path)) == ["model.safetensors"]
    with atomic_open(tmp_path / "new.json", "w", exclusive=True) as f:
        f.write("{}")
    assert (tmp_path / "new.json").read_text() == "{}" and sorted(os.listdir(tmp_path)) == ["model.safetensors", "new.json"]


def test_a_name_whose_temporary_file_cannot_exist_is_refused_before_the_write(tmp_path):
    """A name of 234-255 bytes is valid, but its temporary file's is not: a command learnt so only when
    it wrote its result, after the work."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    fits = tmp_path / ("a" * (limit - 22))
    check_name_length(fits)
    with atomic_open(fits) as f:
        f.write("x")
    too_long = tmp_path / ("b" * (limit - 21))
    with pytest.raises(OSError, match="file name too long") as e:
        check_name_length(too_long)
    assert e.value.filename == str(too_long)
    with pytest.raises(OSError):  # what the check predicts
        with atomic_open(too_long) as f:
            f.write("x")


def test_an_exclusive_write_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with atomic_open(tmp_path / "a.json", exclusive=True) as f:
        f.write("{}")
    assert (tmp_path / "a.json").read_text() == "{}"
    with pytest.raises(FileExistsError):
        with atomic_open(tmp_path / "a.json", exclusive=True) as f:
            f.write("[]")
    assert (tmp_path / "a.json").read_text() == "{}" and os.listdir(tmp_path) == ["a.json"]

"""dwq._atomic: the writer every checkpoint, report and artifact goes through."""
import os
import stat
import subprocess
import sys

from dwq._atomic import atomic_open, is_tmp_of, tmp_name


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


def test_a_completed_write_removes_what_killed_writers_left(tmp_path):
    path = str(tmp_path / "m.safetensors")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = tmp_name(path).rsplit(".", 3)[0] + f".{dead}.00000000.tmp"  # (this host, a finished process)
    alive = tmp_name(path).rsplit(".", 3)[0] + f".{os.getppid()}.00000000.tmp"  # a writer still running
    other_host = path + ".elsewhere.1.00000000.tmp"
    for f in (left, alive, other_host):
        open(f, "w").write("half")
    with atomic_open(path) as f:
        f.write("whole")
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (path, alive, other_host))
    assert is_tmp_of(os.path.basename(left), "m.safetensors") and is_tmp_of("m.safetensors.tmp", "m.safetensors")
    assert not is_tmp_of("m.safetensors", "m.safetensors") and not is_tmp_of("n.safetensors.1.tmp", "m.safetensors")


def test_the_rename_is_synced_through_the_folder(tmp_path, monkeypatch):
    """The file was fsynced but not its folder, so after a power cut the rename could be lost."""
    synced = []
    fsync = os.fsync

    def logged(fd):
        synced.append(os.path.samestat(os.fstat(fd), os.stat(tmp_path)))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", logged)
    with atomic_open(tmp_path / "config.json") as f:
        f.write("{}")
    assert synced == [False, True]  # the file, then its folder

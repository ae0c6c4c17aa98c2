"""One-line errors for the files dwq writes and reads, naming the file a user knows and what to do."""
import errno
import json
import os

import pytest

from dwq._atomic import atomic_open
from dwq.cli.common import CLIError, folder_lock, path_arg
from dwq.train.checkpoint import CheckpointError
from dwq.train.run_folder import check_run_checkpoint


def test_a_failed_write_names_the_file_not_its_temporary(tmp_path):
    """A missing folder or no inode left said 'nodir/last.pt.5bce98f7.774d682e.tmp', a name nobody knows."""
    path = str(tmp_path / "nodir" / "last.pt")
    with pytest.raises(FileNotFoundError) as e:
        with atomic_open(path, "wb") as f:
            f.write(b"x")
    assert e.value.filename == path and e.value.errno == errno.ENOENT
    assert not os.path.exists(tmp_path / "nodir")


def test_a_folder_that_cannot_be_locked_warns_and_runs(tmp_path, monkeypatch, capsys):
    """flock failing for another reason than "held" (ENOLCK on some NFS) was a traceback, and the command
    had already made its folder."""
    import fcntl

    def flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", flock)
    ran = []
    with folder_lock(str(tmp_path)):
        ran.append(True)
    assert ran == [True]
    err = capsys.readouterr().err
    assert f"dwq: warning: --out {tmp_path}: the folder cannot be locked (No locks available)" in err, err

    def held(fd, op):
        raise BlockingIOError(errno.EWOULDBLOCK, "held")

    monkeypatch.setattr(fcntl, "flock", held)
    with pytest.raises(CLIError, match="another process"):
        with folder_lock(str(tmp_path)):
            pass


def test_a_path_flag_expands_the_home_folder():
    """bash expands no ~ after '=': --out=~/x made a folder named '~' in the current one."""
    assert path_arg("~/x") == os.path.join(os.path.expanduser("~"), "x")
    assert path_arg("a/~b") == "a/~b"


def test_a_config_json_with_trailing_junk_says_so_and_what_to_do(tmp_path):
    """It was called "not a JSON object" and blamed on a checkpoint copied from another run."""
    (tmp_path / "config.json").write_text(json.dumps({"run_id": "r"}) + "xx\n")
    ck = {"config": {"run_id": "r"}, "epoch": 1}
    with pytest.raises(CheckpointError, match=r"config.json is not a run's config \(not JSON: Extra data: line 1 "
                                              r"column 16 .*\); .*restore it, or remove it"):
        check_run_checkpoint(str(tmp_path), ck)

"""dwq.cli.common's folder handling on folders made in the test (found by a second mutation audit): which
failed writes write_failure names and how, fresh_dir on an empty folder and with create=False, the lock of
a folder (exclusive, and released after an error in its block), a stage line's seconds, resume files that
are links, and the checkpoints existing_checkpoint names beside a missing one."""
import errno
import os
import re
import types

import pytest

from dwq.cli import common
from dwq.cli.common import (CLIError, StageLog, existing_checkpoint, folder_lock, fresh_dir, remove_resume_files,
                            write_failure)


def test_write_failure_names_the_file_or_for_a_full_disk_the_folder():
    assert write_failure(PermissionError(errno.EACCES, "Permission denied", "/r/last.pt"), "/r") == \
        "/r/last.pt: Permission denied"
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        assert write_failure(OSError(code, os.strerror(code)), "/r") == f"/r: {os.strerror(code)}"
    assert write_failure(OSError(errno.EINVAL, "Invalid argument"), "/r") is None  # a bug: shown in full
    assert write_failure(OSError("no errno"), "/r") is None


def test_fresh_dir_takes_an_empty_folder_and_only_checks_without_create(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fresh_dir(str(empty)) == str(empty)
    new = tmp_path / "a" / "b"
    assert fresh_dir(str(new), create=False) == str(new) and not (tmp_path / "a").exists()
    assert fresh_dir(str(new)) == str(new) and new.is_dir() and os.listdir(new) == []
    (new / "x").write_text("")
    with pytest.raises(CLIError, match=re.escape(f"{new} already exists and is not empty; choose another --out; hint")):
        fresh_dir(str(new), hint="; hint")


def test_a_locked_folder_is_refused_to_a_second_lock_and_freed_after_an_error(tmp_path):
    with folder_lock(str(tmp_path)):
        with pytest.raises(CLIError, match="another process"):
            with folder_lock(str(tmp_path), name="--x"):
                pass
    with pytest.raises(ValueError):
        with folder_lock(str(tmp_path)):
            raise ValueError("the command failed")
    with folder_lock(str(tmp_path)):  # no lock left behind by the error
        pass


def test_a_stage_line_says_its_seconds_to_a_tenth(capsys, monkeypatch):
    now = iter([100.0, 102.26, 102.26, 102.5])
    monkeypatch.setattr(common, "time", types.SimpleNamespace(time=lambda: next(now)))  # (this module's clock only)
    log = StageLog(progress=False, indent="  ")
    log("clean", 0, 2)
    log("pgd", 1, 2)
    log.close()
    assert capsys.readouterr().out.splitlines() == [f"  {'clean':<44}     2.3 s", f"  {'pgd':<44}     0.2 s"]
    assert log.seconds == pytest.approx({"clean": 2.26, "pgd": 0.24})


def test_a_resume_file_that_links_to_a_folder_is_removed_not_what_it_links_to(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.json").write_text("{}")
    run = tmp_path / "run"
    run.mkdir()
    (run / "stages_x").symlink_to(other)
    assert remove_resume_files(str(run), ["stages_*"]) == ["stages_x"]
    assert os.listdir(run) == [] and (other / "keep.json").is_file()


def test_a_missing_checkpoint_names_every_checkpoint_its_folder_holds(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best_test_reference.pt"):
        (run / name).write_bytes(b"x")
    with pytest.raises(CLIError, match=re.escape(f"checkpoint {run}/best.pt does not exist; {run} holds "
                                                 f"{run}/last.pt, {run}/best_test_reference.pt") + "$"):
        existing_checkpoint(str(run / "best.pt"))
    (tmp_path / "last.pt").write_bytes(b"x")  # (the parent's checkpoints are not this folder's)
    os.remove(run / "last.pt")
    os.remove(run / "best_test_reference.pt")
    with pytest.raises(CLIError, match=re.escape(f"checkpoint {run}/best.pt does not exist") + "$"):
        existing_checkpoint(str(run / "best.pt"))
    existing_checkpoint(str(tmp_path / "last.pt"))


def test_the_stage_bar_is_one_bar_over_all_stages_closed_at_the_end(capsys, monkeypatch):
    import tqdm

    made = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.n, self.descriptions, self.closed = kw, 0, [], False
            made.append(self)

        def set_description(self, text):
            self.descriptions.append((self.n, text))

        def clear(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    log = StageLog(progress=True, indent="> ")
    for i, stage in enumerate(("clean", "pgd", "aa")):
        log(stage, i, 3)
    assert len(made) == 1 and not made[0].closed
    log.close()
    bar = made[0]
    assert bar.closed and bar.kw["total"] == 3 and bar.descriptions == [(0, "> clean"), (1, "> pgd"), (2, "> aa")]
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["clean", "pgd", "aa"]

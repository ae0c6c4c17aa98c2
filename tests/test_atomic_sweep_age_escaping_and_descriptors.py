"""dwq._atomic's sweep of dead writers' temporary files, pinned where the suite left it open: a leftover a few
minutes old is swept (the age limit is a minute, not longer), a path with glob characters in its folder is swept
too (the pattern is escaped), only names ending in ``.tmp`` count as a write's temporary files, and neither a
write nor its sweep leaves a file descriptor open."""
import os
import time

import pytest

from dwq._atomic import atomic_open, is_tmp_of, tmp_name


def _leftover(target, age_s: float) -> str:
    """A killed writer's temporary file of ``target`` (unlocked), last modified ``age_s`` seconds ago."""
    left = tmp_name(target)
    with open(left, "w") as f:
        f.write("half")
    t = time.time() - age_s
    os.utime(left, (t, t))
    return left


@pytest.mark.parametrize("age_s, swept", [(120, True), (20, False)])
def test_the_sweep_removes_a_dead_writers_file_once_it_is_a_minute_old(tmp_path, age_s, swept):
    """A leftover two minutes old is a dead writer's and goes; one 20 s old may be a writer between its
    create and its lock, and stays."""
    path = str(tmp_path / "last.pt")
    left = _leftover(path, age_s)
    with atomic_open(path) as f:
        f.write("whole")
    assert os.path.exists(left) != swept, f"a leftover {age_s} s old was {'kept' if swept else 'swept'}"
    assert open(path).read() == "whole"


def test_a_folder_with_glob_characters_is_swept(tmp_path):
    """The sweep's pattern is made from the path: unescaped, a folder named ``run[1]`` matched ``run1``,
    never itself, and its leftovers piled up."""
    folder = tmp_path / "run[1]*?"
    folder.mkdir()
    path = str(folder / "ckpt")
    left = _leftover(path, 600)
    with atomic_open(path) as f:
        f.write("x")
    assert os.listdir(folder) == ["ckpt"], f"{os.path.basename(left)} was not swept: {os.listdir(folder)}"


@pytest.mark.parametrize("name", ["last.pt.bak", "last.pt.1a2b3c4d.00ff00ff.tmp.old", "last.pt.json"])
def test_only_names_ending_in_tmp_are_a_writes_temporary_files(name):
    """A run folder's cleanup removes what is_tmp_of accepts: another file beside the target is no temporary."""
    assert not is_tmp_of(name, "last.pt"), f"{name!r} was taken for a temporary file of last.pt"


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("outcome", ["written", "failed"])
def test_a_write_and_its_sweep_leave_no_descriptor_open(tmp_path, outcome):
    """The temporary file's descriptor is kept open past the file object (for the lock) and each swept
    file is opened to lock it: both must be closed, on success and on failure, or a long run (a checkpoint
    per epoch) runs out of descriptors."""
    path = str(tmp_path / "metrics.jsonl")
    left = _leftover(path, 600)
    before = _open_fds()
    if outcome == "written":
        with atomic_open(path) as f:
            f.write("{}")
        assert not os.path.exists(left)
    else:
        with pytest.raises(RuntimeError):
            with atomic_open(path) as f:
                raise RuntimeError("in the block")
    assert _open_fds() == before, f"descriptors left open: {sorted(_open_fds() - before)}"

"""dwq._atomic (found by mutation): what the publish step (the rename, or the exclusive link) does when
it cannot put the file in place: the error names the file the user asked for, no temporary file is
left, and an exclusive write on a file system without hard links never replaces a symlink."""
import errno
import os

import pytest

from dwq._atomic import atomic_open


def test_a_rename_that_fails_names_the_file_and_leaves_no_temporary(tmp_path):
    """os.replace onto a folder fails after the data was written: the error named the temporary file
    (``x.json.<host>.<random>.tmp``), a name nobody knows."""
    path = tmp_path / "x.json"
    (path / "inside").mkdir(parents=True)  # a non-empty folder where the file should go
    with pytest.raises(OSError) as e:
        with atomic_open(path) as f:
            f.write("{}")
    assert e.value.filename == str(path) and not str(e.value).count(".tmp"), e.value
    assert sorted(os.listdir(tmp_path)) == ["x.json"] and os.listdir(path) == ["inside"]


def test_an_exclusive_write_without_hard_links_never_replaces_a_dangling_symlink(tmp_path, monkeypatch):
    """Where os.link is not supported the fallback checks for an existing name first: a symlink whose
    target is missing is a name that exists (lexists), and replacing it is what exclusive forbids."""
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "model.safetensors"
    os.symlink(tmp_path / "missing", path)
    with pytest.raises(FileExistsError) as e:
        with atomic_open(path, "w", exclusive=True) as f:
            f.write("mine")
    assert e.value.filename == str(path)
    assert os.path.islink(path) and os.readlink(path) == str(tmp_path / "missing")
    assert os.listdir(tmp_path) == ["model.safetensors"]

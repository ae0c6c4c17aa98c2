"""dwq._atomic's failure paths, pinned where the suite left them open: Ctrl-C in the block removes the temporary
file, a temporary name that exists already is never opened (O_EXCL) and the error names the user's file, every
errno of a file system without hard links falls back to the checked rename while any other link error is raised
(named, nothing left), and the name-length check assumes 255 bytes where the folder cannot be asked."""
import errno
import os
import secrets

import pytest

from dwq._atomic import atomic_open, check_name_length, tmp_name


def test_ctrl_c_in_the_block_removes_the_temporary_file(tmp_path):
    """KeyboardInterrupt is no Exception: a handler of Exception only left the half-written temporary file."""
    path = tmp_path / "last.pt"
    path.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["last.pt"], f"left behind: {os.listdir(tmp_path)}"
    assert path.read_text() == "previous"


def test_a_temporary_name_that_exists_already_is_never_opened(tmp_path, monkeypatch):
    """Without O_EXCL a (vanishingly rare) clash of random names wrote into another writer's temporary file;
    the refusal names the file being written, not the temporary name."""
    monkeypatch.setattr(secrets, "token_hex", lambda n: "00" * n)
    path = tmp_path / "config.json"
    theirs = tmp_name(path)
    with open(theirs, "w") as f:
        f.write("theirs")
    with pytest.raises(FileExistsError) as e:
        with atomic_open(path) as f:
            f.write("mine")
    assert e.value.filename == str(path), e.value
    assert open(theirs).read() == "theirs" and not path.exists()


@pytest.mark.parametrize("code", ["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "EMLINK"])
def test_every_no_hard_link_errno_falls_back_to_the_checked_rename(tmp_path, monkeypatch, code):
    """vfat, some FUSE file systems and a full link count refuse os.link with one of these: the exclusive write
    then publishes by a rename after checking the name is free."""
    def no_links(src, dst):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "model.json"
    with atomic_open(path, exclusive=True) as f:
        f.write("{}")
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["model.json"], os.listdir(tmp_path)


def test_another_link_error_is_raised_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """An I/O error of os.link is no 'no hard links here': it must not fall back to a rename (which would
    publish a file the disk just failed on) but fail, naming the user's file, with no temporary left."""
    def broken(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "link", broken)
    path = tmp_path / "model.json"
    with pytest.raises(OSError) as e:
        with atomic_open(path, exclusive=True) as f:
            f.write("{}")
    assert e.value.errno == errno.EIO and e.value.filename == str(path), e.value
    assert os.listdir(tmp_path) == [], f"left behind: {os.listdir(tmp_path)}"


@pytest.mark.parametrize("length, refused", [(233, False), (234, True)])
def test_a_folder_that_cannot_be_asked_is_taken_to_allow_255_bytes(tmp_path, length, refused):
    """pathconf fails on a missing folder: the check then assumes the common limit, 255 bytes, of which the
    temporary name takes 22."""
    path = tmp_path / "not_made_yet" / ("n" * length)
    if refused:
        with pytest.raises(OSError, match="at most 233 here") as e:
            check_name_length(path)
        assert e.value.errno == errno.ENAMETOOLONG
    else:
        check_name_length(path)

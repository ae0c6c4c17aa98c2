"""dwq._atomic: what the file's fsync covers, and which names count as a write's temporary file."""
import os

from dwq._atomic import atomic_open, is_tmp_of


def test_the_files_fsync_covers_every_byte_written(tmp_path, monkeypatch):
    """Bytes still in the file object's buffer at the fsync reach the disk only at some later flush:
    a power cut after "wrote" could leave a short file under the name."""
    sizes = []
    fsync = os.fsync

    def logged(fd):
        sizes.append(os.fstat(fd).st_size)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", logged)
    with atomic_open(tmp_path / "metrics.jsonl", "w") as f:
        f.write("x" * 100)  # (smaller than the buffer: nothing written to the file yet)
    assert sizes[0] == 100
    assert (tmp_path / "metrics.jsonl").read_text() == "x" * 100


def test_only_names_of_the_target_plus_a_dot_are_its_temporary_files():
    assert is_tmp_of("last.pt.1a2b3c4d.00ff00ff.tmp", "last.pt") and is_tmp_of("last.pt.tmp", "last.pt")
    # another file whose name merely starts with the target's
    assert not is_tmp_of("last.pt2.1a2b3c4d.00ff00ff.tmp", "last.pt")
    assert not is_tmp_of("last.ptx.tmp", "last.pt")

"""The embedded MNIST-5k file's checks beyond its labels: exactly 5000 rows, and pixels in 0..255 at both
ends; a file that breaks one is a one-line DatasetError naming it, not a dataset of other images."""
import gzip

import pytest

import dwq.data as D
from dwq.data import DatasetError, mnist5k_path


def _edited(tmp_path, monkeypatch, edit):
    rows = gzip.open(mnist5k_path(), "rt").read().splitlines()
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress("\n".join(edit(rows)).encode()))
    monkeypatch.setattr(D, "mnist5k_path", lambda: str(bad))
    return str(bad)


def _pixel(value):
    def edit(rows):
        cells = rows[7].split(",")
        cells[100] = str(value)
        rows[7] = ",".join(cells)
        return rows
    return edit


@pytest.mark.parametrize("edit, shape", [(_pixel(-1), "(5000, 785)"), (_pixel(256), "(5000, 785)"),
                                         (lambda rows: rows[:-1], "(4999, 785)")],
                         ids=["pixel_-1", "pixel_256", "4999_rows"])
def test_a_pixel_out_of_0_to_255_or_a_missing_row_is_refused(tmp_path, monkeypatch, edit, shape):
    bad = _edited(tmp_path, monkeypatch, edit)
    with pytest.raises(DatasetError) as e:
        D.load_mnist5k("train")
    assert str(e.value) == f"{bad}: expected 5000 rows of 784 pixels in 0..255 plus a label, got {shape}", str(e.value)


def test_pixels_at_0_and_255_are_accepted(tmp_path, monkeypatch):
    _edited(tmp_path, monkeypatch, lambda rows: _pixel(255)(_pixel(0)(rows)))
    assert len(D.load_mnist5k("test")) == 1000

"""dwq.deploy.save / load / size_report / format_size_report at the edges the round-trip tests do not reach:
save(overwrite=False) never replaces a file and save refuses what is no IntegerModel; a loaded model is in
eval mode and computes, at the edge widths 2 and 16 and at full precision, exactly what the saved one does;
the size report's fp row has no ratio; the table prints MB of 10^6 bytes, an artifact of 0 bytes included."""
import os

import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import convert, format_size_report, load, save, size_report
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 16, None]


@pytest.fixture(scope="module")
def int_model():
    torch.manual_seed(0)
    return convert(calibrated(small_cnn(precisions=SET, width=4), (8, 1, 28, 28)))


def test_save_without_overwrite_keeps_an_existing_file(int_model, tmp_path):
    """overwrite=False: FileExistsError where the path exists, the file's bytes untouched; a new path is written."""
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        save(int_model, str(path), overwrite=False)
    assert path.read_bytes() == b"keep me", "save(overwrite=False) replaced an existing file"
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"], "a temporary file was left beside it"
    save(int_model, str(tmp_path / "new.safetensors"), overwrite=False)
    assert load(str(tmp_path / "new.safetensors")).precisions == int_model.precisions


def test_save_refuses_a_model_that_is_not_an_integer_model(int_model, tmp_path):
    """Only an IntegerModel (of convert or load) is saved: a plain module is a TypeError naming its type, no file."""
    with pytest.raises(TypeError, match="save: expected a dwq.deploy.IntegerModel, got Sequential"):
        save(torch.nn.Sequential(*int_model.layers.values()), str(tmp_path / "m.safetensors"))
    assert os.listdir(tmp_path) == []


def test_a_loaded_model_is_in_eval_mode_and_computes_what_was_saved(int_model, tmp_path):
    """load returns the model in eval mode (every submodule), whatever mode the model was saved in, and its
    outputs at 2, 16 bits and full precision equal the saved model's bit for bit."""
    path = str(tmp_path / "m.safetensors")
    int_model.train()
    try:
        save(int_model, path)
    finally:
        int_model.eval()
    loaded = load(path)
    training = [name for name, m in loaded.named_modules() if m.training]
    assert training == [], f"load left modules in training mode: {training[:5]}"
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for p in SET:
        with torch.no_grad(), dwq.precision(int_model, p), dwq.precision(loaded, p):
            assert torch.equal(loaded(x), int_model(x)), f"precision {p}: the loaded model computes otherwise"


def test_the_size_reports_full_precision_row_has_no_ratio(int_model):
    """The fp row has no quantized weights: ratio None (printed '-'), weight bytes 0; the quantized rows' ratio
    is their weight bytes over float32's."""
    rows = {r["precision"]: r for r in size_report(int_model)}
    assert rows["fp"]["ratio"] is None and rows["fp"]["weight_bytes"] == 0, rows["fp"]
    for name in ("2", "16"):
        r = rows[name]
        assert r["ratio"] == r["weight_bytes"] / r["float32_weight_bytes"], r
    line = next(li for li in format_size_report(list(rows.values())).splitlines() if li.split()[0] == "fp")
    assert line.split()[2] == "-", line


def test_the_size_table_prints_megabytes_of_a_million_bytes():
    """Every byte column is in MB = 10^6 bytes with 3 decimals; the tail names the float32 state and the file's
    size, even a file size of 0."""
    row = {"precision": "4w8a", "weight_bytes": 1_500_000, "ratio": 0.125, "scale_bytes": 2_048_000,
           "float_layer_bytes": 250_000, "total_bytes": 3_798_000, "runtime_bytes": 5_298_000,
           "float_checkpoint_bytes": 12_000_000}
    lines = format_size_report([row], file_bytes=0).splitlines()
    assert lines[1].split() == ["4w8a", "1.500", "0.1250", "2.048", "0.250", "3.798", "5.298"], lines[1]
    assert lines[2] == "float32 model state 12.000 MB; artifact file (all precisions) 0.000 MB", lines[2]
    assert format_size_report([dict(row, float_checkpoint_bytes=None)]).splitlines()[-1].split()[0] == "4w8a"

"""benchmarks/records.py's shared pieces that every kernel/model benchmark's tables rest on: which fp32
layout stands for the float baseline, the conv shape spelling, what finish() prints and which files it
writes (--json / --png only where given), and the .png name check."""
import argparse
import json

import pytest
from test_benchmarks_cli import _script


def test_faster_layout_is_the_faster_fp32_layout_first_under_the_baseline_name():
    rec = _script("records")
    nchw = rec.record("conv3x3", "s", 32, "torch_fp32", 2.0, 1.0)
    cl = rec.record("conv3x3", "s", 32, "torch_fp32_cl", 1.5, 1.4)
    dwq4 = rec.record("conv3x3", "s", 4, "dwq", 0.5, 0.4)
    dwq8 = rec.record("conv3x3", "s", 8, "dwq", 0.7, 0.6)
    got = rec.faster_layout([dwq4, nchw, dwq8, cl])
    # the channels_last one by median (not NCHW's better min), renamed to the baseline, with its own min_ms
    assert got == [dict(cl, impl="torch_fp32"), dwq4, dwq8]
    assert got[0]["median_ms"] == 1.5 and got[0]["min_ms"] == 1.4
    # NCHW faster: it stands for fp32; the inputs are not changed
    nchw_fast = dict(nchw, median_ms=1.0)
    assert rec.faster_layout([cl, nchw_fast, dwq4]) == [nchw_fast, dwq4]
    assert cl["impl"] == "torch_fp32_cl"
    # no fp32 record: the records as they were
    assert rec.faster_layout([dwq4, dwq8]) == [dwq4, dwq8]
    # another baseline impl name
    half = rec.record("gemm", "s", 16, "torch_fp16_cl", 0.9, 0.8)
    assert rec.faster_layout([dwq4, half], impl="torch_fp16") == [dict(half, impl="torch_fp16"), dwq4]


def test_conv_shape_spells_batch_in_out_size_and_stride():
    assert _script("records").conv_shape(32, 3, 64, 28, 2) == "b32 3->64 28x28 s2"


def test_finish_prints_the_median_then_the_best_of_table_and_writes_only_what_is_asked(tmp_path, capsys):
    rec = _script("records")
    records = [rec.record("gemm", "8x8x8", 8, "dwq", 1.23456, 1.0),
               rec.record("gemm", "8x8x8", 32, "torch_fp32", 2.0, 1.5)]
    keys, plots = [], []

    def table(rs, key):
        keys.append(key)
        assert rs is records
        return f"TABLE<{key}>"

    def plot(rs, path):
        plots.append(path)

    path = tmp_path / "r.json"
    args = argparse.Namespace(json=str(path), png=None)
    rec.finish(records, args, table, plot, 0.0)
    out = capsys.readouterr().out
    assert keys == ["median_ms", "min_ms"]
    assert out.index("TABLE<median_ms>") < out.index("Best-of latencies") < out.index("TABLE<min_ms>")
    assert "| gemm | 8x8x8 | 8 | dwq | 1.235 | 1.000 |" in out
    assert json.loads(path.read_text()) == records and plots == []  # no --png: no plot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]

    png = tmp_path / "p.png"
    rec.finish(records, argparse.Namespace(json=None, png=str(png)), table, plot, 0.0)
    assert plots == [str(png)] and f"plot: {png}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no --json: nothing written


def test_png_name_check_takes_any_case_of_the_suffix(tmp_path):
    rec = _script("records")
    ap = argparse.ArgumentParser()
    for name in ("plot.PNG", "plot.Png", "plot.png"):
        rec.output_paths(ap, argparse.Namespace(png=str(tmp_path / name)), "png")  # no usage error
    with pytest.raises(SystemExit):
        rec.output_paths(ap, argparse.Namespace(png=str(tmp_path / "plot.jpg")), "png")

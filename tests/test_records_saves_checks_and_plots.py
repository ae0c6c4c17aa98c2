"""benchmarks/records.py: the finished run's save keeps the partial file until the full one is written,
output_paths refuses an unwritable folder and takes a bare file name in the working folder, finish()
prints with the digits asked for, latency_axis draws bits-sorted lines on a log axis with a baseline
per baseline record, and find_tool looks on PATH first, then the folders in the order given."""
import argparse
import json
import os

import pytest
from conftest import shell_script
from test_benchmarks_cli import _script


def test_interrupted_final_save_keeps_the_partial_records(tmp_path, monkeypatch):
    rec = _script("records")
    path = str(tmp_path / "t.json")
    rec.save_records(path, [{"a": 1}], done=False)

    def interrupt(obj, f, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(rec.json, "dump", interrupt)
    with pytest.raises(KeyboardInterrupt):
        rec.save_records(path, [{"a": 1}, {"b": 2}], done=True)
    assert json.loads(open(path + ".partial").read()) == [{"a": 1}] and not os.path.exists(path)


def test_output_paths_refuses_an_unwritable_folder_and_takes_a_bare_name(tmp_path, monkeypatch, capsys):
    import dwq.cli.common as common

    rec = _script("records")
    ap = argparse.ArgumentParser()
    monkeypatch.chdir(tmp_path)
    rec.output_paths(ap, argparse.Namespace(json="t.json"), "json")  # the working folder: no usage error

    def refuse(path, name):
        raise common.CLIError(f"{name} {path}: not writable")

    monkeypatch.setattr(common, "writable_dir", refuse)
    with pytest.raises(SystemExit):
        rec.output_paths(ap, argparse.Namespace(json=str(tmp_path / "t.json")), "json")
    assert "not writable" in capsys.readouterr().err


def test_finish_prints_both_columns_with_the_digits_asked_for(capsys):
    rec = _script("records")
    rec.finish([rec.record("gemm", "8x8x8", 8, "dwq", 1.23456, 1.06)], argparse.Namespace(json=None, png=None),
               lambda rs, key: "", None, 0.0, digits=1)
    assert "| gemm | 8x8x8 | 8 | dwq | 1.2 | 1.1 |" in capsys.readouterr().out


class _Ax:
    def __init__(self):
        self.lines, self.hlines, self.yscale = [], [], None

    def plot(self, x, y, style, label):
        self.lines.append((label, list(x), list(y)))

    def axhline(self, y, color, ls, label):
        self.hlines.append((label, y))

    def set_yscale(self, s):
        self.yscale = s

    def __getattr__(self, name):  # set_title, set_xlabel, set_ylabel, legend
        return lambda *a, **k: None


def test_latency_axis_sorted_lines_baselines_and_log_scale():
    rec = _script("records")
    rs = [rec.record("gemm", "s", 8, "dwq", 3.0), rec.record("gemm", "s", 4, "dwq", 2.0),
          rec.record("gemm", "s", 32, "torch_fp32", 5.0), rec.record("gemm", "s", 6, "dwq", 2.5)]
    ax = _Ax()
    rec.latency_axis(ax, rs, [("dwq", "o-")], [("torch_fp32", "k")], "t", "ms")
    assert ax.lines == [("dwq", [4, 6, 8], [2.0, 2.5, 3.0])]
    assert ax.hlines == [("torch_fp32", 5.0)] and ax.yscale == "log"


def test_find_tool_prefers_path_then_the_first_folder_that_has_it(tmp_path, monkeypatch):
    rec = _script("records")
    name = "fake-tool-xyz"
    for d in ("a", "b", "onpath"):
        shell_script(tmp_path / d / name)
    monkeypatch.setenv("PATH", str(tmp_path / "onpath"))
    assert rec.find_tool(name, str(tmp_path / "a")) == str(tmp_path / "onpath" / name)
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert rec.find_tool(name, str(tmp_path / "a"), str(tmp_path / "b")) == str(tmp_path / "a" / name)

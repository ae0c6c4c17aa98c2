"""benchmarks/records.py details the table and plot tests leave open: a record without a best-of time has
min_ms None (not its median), an empty string is a value env_vars sets (not an unset), latency_axis draws
an impl timed at one width only (bench_models --quick's Brevitas) and a baseline line per record, and
output_paths checks a relative name as the absolute path it will write."""
import argparse
import os

import pytest

from test_benchmarks_cli import _script
from test_records_saves_checks_and_plots import _Ax


def test_record_without_a_best_of_time_has_min_ms_none():
    """min_ms left out stays None: no best-of time is made up from the median."""
    r = _script("records").record("gemm", "8x8x8", 8, "dwq", 2.0, device="cpu")
    assert r == {"op": "gemm", "shape": "8x8x8", "bits": 8, "impl": "dwq", "median_ms": 2.0, "min_ms": None,
                 "device": "cpu"}


def test_env_vars_sets_an_empty_string(monkeypatch):
    """"" is a str, so it is set for the block (only None unsets); the old value comes back after."""
    monkeypatch.setenv("DWQ_TEST_A", "mine")
    with _script("records").env_vars(DWQ_TEST_A=""):
        assert os.environ.get("DWQ_TEST_A") == "", os.environ.get("DWQ_TEST_A")
    assert os.environ["DWQ_TEST_A"] == "mine"


def test_latency_axis_draws_a_single_width_and_every_baseline_record():
    """An impl with one record is still drawn (one point); each record of a baseline impl is a line."""
    rec = _script("records")
    rs = [rec.record("net", "s", 8, "brevitas", 4.0), rec.record("net", "s", 32, "torch_fp32", 5.0),
          rec.record("net", "s", 32, "torch_fp32", 6.0)]
    ax = _Ax()
    rec.latency_axis(ax, rs, [("dwq_int", "o-"), ("brevitas", "s--")], [("torch_fp32", "k")], "t", "ms")
    assert ax.lines == [("brevitas", [8], [4.0])], ax.lines
    assert ax.hlines == [("torch_fp32", 5.0), ("torch_fp32", 6.0)], ax.hlines


def test_output_paths_resolves_a_relative_name_from_the_working_folder(tmp_path, monkeypatch, capsys):
    """A relative --json is checked as the absolute path it writes: "gone/../r.json" is r.json here (accepted),
    and a missing folder is named by its absolute path."""
    rec = _script("records")
    ap = argparse.ArgumentParser()
    monkeypatch.chdir(tmp_path)
    rec.output_paths(ap, argparse.Namespace(json=os.path.join("gone", "..", "r.json")), "json")  # no usage error
    with pytest.raises(SystemExit):
        rec.output_paths(ap, argparse.Namespace(json=os.path.join("missing", "r.json")), "json")
    err = capsys.readouterr().err
    assert f"the folder {tmp_path / 'missing'} does not exist" in err, err

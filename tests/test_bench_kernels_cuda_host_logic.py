"""benchmarks/bench_kernels_cuda.py's host side on the CPU (the GPU calls stubbed): the records'
median/min and T(int-)ops/s, which engines a GPU runs, error records that let the run go on, the
engine switches each check and timing runs under (the caller's given back), the verified slice, the
CUDA-event median, the argument checks and what main writes."""
import json
import os

import pytest
import torch

from test_benchmarks_cli import _script


@pytest.fixture
def b(monkeypatch):
    b = _script("bench_kernels_cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "stub")
    monkeypatch.setattr(b, "OUT", {})
    monkeypatch.setattr(b, "WANTED", list(b.ENGINES))
    monkeypatch.setattr(b, "HANG_S", b.HANG_S)
    for var in ("DWQ_CUDA_GEMM", "DWQ_CUDA_WEIGHT_CACHE", "DWQ_CUDA_CHECKS"):
        monkeypatch.delenv(var, raising=False)
    return b


def test_emit_time_records_median_min_and_tops_at_the_median(b):
    records = []
    b.emit_time(records, "gemm", "8x8x8", 8, "dwq", (2.0, 1.0), 4e12, network="n")
    # 4e12 ops in 2 ms: 2000 T(int-)ops/s
    assert records == [b.record("gemm", "8x8x8", 8, "dwq", 2.0, 1.0, tops=2000.0, device="stub", network="n")]


def test_hopper_engines_only_on_compute_capability_9_0(b, monkeypatch):
    for cap, want in (((9, 0), list(b.ENGINES)), ((8, 0), ["mma", "auto", "auto_repack"]),
                      ((10, 0), ["mma", "auto", "auto_repack"])):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, cap=cap: cap)
        assert b.engines() == [(b.ENGINES[e], e) for e in want], cap


def test_failing_engines_get_error_records_and_the_run_goes_on(b, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(b, "cuda_time", lambda fn, reps: (fn(), (1.0, 0.5))[1])
    records = []

    def run():
        if engine() == "mma":
            raise RuntimeError("launch failed\nmore")

    def engine():
        return os.environ.get("DWQ_CUDA_GEMM")

    b.time_engines(records, "gemm", "8x8x8", 4, 1e9, lambda: engine() != "auto", run, 3)
    assert [(r["impl"], r["median_ms"], r.get("error")) for r in records] == [
        ("dwq", None, "raised: launch failed"), ("dwq_auto", None, "differs from the int64 reference")]
    assert all(r["device"] == "stub" and r["min_ms"] is None for r in records)


@pytest.mark.parametrize("bits", [8, 4])
def test_cuda_engines_check_with_value_checks_on_time_with_them_off_then_give_back(b, monkeypatch, bits):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(b, "cuda_time", lambda fn, reps: (fn(), (1.0, 0.5))[1])
    mine = {"DWQ_CUDA_GEMM": "wgmma", "DWQ_CUDA_CHECKS": "0", "DWQ_CUDA_WEIGHT_CACHE": "1"}
    for k, v in mine.items():
        monkeypatch.setenv(k, v)
    seen = []

    def env(step):
        seen.append((step, *(os.environ.get(k) for k in mine)))
        return True

    b.time_engines([], "gemm", "8x8x8", bits, 1e9, lambda: env("check"), lambda: env("run"), 3)
    want = [(step, engine, checks, None) for engine in ("mma", "auto")
            for step, checks in (("check", None), ("run", "0"))]
    if bits == 8:  # (the repacking engine: "auto" with the weight cache off, at 8 bits only)
        want += [("check", "auto", None, "0"), ("run", "auto", "0", "0")]
    assert seen == want
    assert {k: os.environ.get(k) for k in mine} == mine


def test_edges_are_the_first_and_last_k():
    b = _script("bench_kernels_cuda")
    assert b.edges(10, 2).tolist() == [0, 1, 8, 9]
    assert b.edges(4, 2).tolist() == [0, 1, 2, 3] and b.edges(3, 2).tolist() == [0, 1, 2]


def test_cuda_time_is_the_median_and_min_of_the_event_times(b, monkeypatch):
    times = iter([1.0, 9.0, 2.0, 7.0, 3.0])

    class Event:
        def __init__(self, enable_timing=False):
            pass

        def record(self):
            pass

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return next(times)

    monkeypatch.setattr(torch.cuda, "Event", Event)
    calls = []
    assert b.cuda_time(lambda: calls.append(1), reps=5, warmup=2) == (3.0, 1.0)
    assert len(calls) == 7


def test_empty_engines_is_a_usage_error(b, capsys):
    with pytest.raises(SystemExit) as e:
        b.main(["--engines", ","])
    assert e.value.code == 2 and "error: --engines" in capsys.readouterr().err.strip().splitlines()[-1]


def test_no_cuda_exits_2(b, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert b.main([]) == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_main_plan_and_its_files(b, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seen = []

    def gemm(M, N, K, bits, records, reps):
        seen.append(("gemm", (M, N, K), b.HANG_S, reps))
        b.emit(records, b.record("gemm", f"{M}x{N}x{K}", 8, "dwq", 1.0, 1.0, tops=1.0))

    monkeypatch.setattr(b, "bench_gemm", gemm)
    monkeypatch.setattr(b, "bench_conv", lambda *a: seen.append(("conv", a[:6], b.HANG_S, a[-1])))
    path = tmp_path / "k.json"
    assert b.main(["--quick", "--json", str(path), "--hang-s", "5", "--reps", "2"]) == 0
    assert seen == ([("gemm", g, 5.0, 2) for g in b.GEMMS] + [("conv", c, 5.0, 2) for c in b.QUICK_CONVS])
    assert len(b.QUICK_CONVS) < len(b.CONVS)
    # the finished run's file, no partial one left
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"] and len(json.loads(path.read_text())) == len(b.GEMMS)


def test_plot_leaves_out_the_error_records(b, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    recs = [b.record("gemm", "8x8x8", 8, "dwq", 1.0, 1.0, tops=3.0, device="stub"),
            b.record("gemm", "8x8x8", 8, "dwq_auto", None, error="raised: x", device="stub")]
    b.plot(recs, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 0

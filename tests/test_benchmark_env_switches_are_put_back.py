"""benchmarks/records.env_vars: the engine and packing switches a benchmark sets (DWQ_CUDA_GEMM,
DWQ_CUDA_CHECKS, DWQ_PACK_ZP_SHIFT) hold for their block only and give back the caller's values, also
after an error (bench_zp_shift's use: test_bench_cpu_ab_helpers.py)."""
import os

import pytest
from test_benchmarks_cli import _script


def test_set_and_unset_for_the_block_then_put_back(monkeypatch):
    env_vars = _script("records").env_vars
    monkeypatch.setenv("DWQ_TEST_A", "mine")
    monkeypatch.delenv("DWQ_TEST_B", raising=False)
    with env_vars(DWQ_TEST_A=None, DWQ_TEST_B="1"):
        assert "DWQ_TEST_A" not in os.environ and os.environ["DWQ_TEST_B"] == "1"
        with env_vars(DWQ_TEST_B="2"):
            assert os.environ["DWQ_TEST_B"] == "2"
        assert os.environ["DWQ_TEST_B"] == "1"  # (the inner block gives back the outer block's value)
    assert os.environ["DWQ_TEST_A"] == "mine" and "DWQ_TEST_B" not in os.environ


def test_put_back_after_an_error(monkeypatch):
    env_vars = _script("records").env_vars
    monkeypatch.setenv("DWQ_TEST_A", "mine")
    with pytest.raises(RuntimeError, match="launch"):
        with env_vars(DWQ_TEST_A="0"):
            raise RuntimeError("launch failed")
    assert os.environ["DWQ_TEST_A"] == "mine"


def test_ncu_target_gives_back_the_callers_engine(monkeypatch):
    monkeypatch.setenv("DWQ_CUDA_GEMM", "mma")
    monkeypatch.setenv("DWQ_CUDA_CHECKS", "1")
    _script("ncu_kernels").target("cpu", small=True)
    assert os.environ["DWQ_CUDA_GEMM"] == "mma" and os.environ["DWQ_CUDA_CHECKS"] == "1"


@pytest.mark.parametrize("bits", [8, 4])
def test_cuda_engines_check_with_value_checks_on_time_with_them_off_then_give_back(monkeypatch, bits):
    b = _script("bench_kernels_cuda")
    monkeypatch.setattr(b.torch.cuda, "get_device_name", lambda *a: "stub")
    monkeypatch.setattr(b.torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(b, "WANTED", list(b.ENGINES))
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

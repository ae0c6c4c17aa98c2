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

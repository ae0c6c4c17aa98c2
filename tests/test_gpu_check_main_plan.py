"""What benchmarks/gpu_check.py's main() asks of each step, checked on the CPU with the steps stubbed:
the environment each step gets (the build's target arch, synchronous smoke launches, memcheck without
the caching allocator), which -k expressions leave out a Hopper engine whose smoke test failed, which
steps run (--skip of a smoke test is no failure, the C++-error diagnostics only after a failure,
--full-suite), the exit status, and the resume record of a step the earlier run finished. A host-side
slip here costs the whole 15-minute GPU lease."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from test_gpu_check import _gpu_check

_real_run = subprocess.run  # (_plan stubs subprocess.run, gpu_check's capability probe)


def _plan(tmp_path, monkeypatch, argv=(), rcs=None, cc="9.0a"):
    """main() with every step stubbed: {step: (cmd, env)} in run order, and main's return value."""
    gc = _gpu_check()
    seen = {}

    def run(self, name, cmd, timeout=600, env=None):
        seen[name] = (list(cmd), dict(env or self.env))
        rc = (rcs or {}).get(name, 0)
        self.steps.append(dict(step=name, cmd=" ".join(cmd), rc="skipped (--skip)" if rc == "skipped" else rc))
        return rc

    monkeypatch.setattr(gc.Steps, "run", run)
    monkeypatch.setattr(gc.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, cc + "\n", ""))
    monkeypatch.setattr(gc, "find_tool", lambda name, *folders: f"/fake/{name}")
    monkeypatch.setattr(gc, "find_ncu", lambda: None)
    out = tmp_path / f"gc-plan-{os.getpid()}-{len(list(tmp_path.iterdir()))}"
    try:
        rc = gc.main(["--out", str(out), *argv])
    finally:
        shutil.rmtree(f"/tmp/{out.name}-nccl", ignore_errors=True)
    return seen, rc


def _k(cmd):
    return cmd[cmd.index("-k") + 1]


def _selects(expr, test_id, tmp_path):
    """Whether ``pytest -k EXPR`` runs a test of this id (name[params]) in tests/test_qgemm_cuda.py: asked
    of pytest itself, collecting a stand-in file of that name (its -k also matches the file's name)."""
    name, params = test_id[:-1].split("[")
    (tmp_path / "test_qgemm_cuda.py").write_text(
        f"import pytest\n\n\n@pytest.mark.parametrize('p', [0], ids=[{params!r}])\ndef {name}(p):\n    pass\n")
    r = _real_run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                   "-c", os.devnull, "-k", expr, "test_qgemm_cuda.py"], cwd=tmp_path, capture_output=True,
                  text=True, timeout=120, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode in (0, 5), r.stdout + r.stderr  # (5: nothing selected)
    return f"test_qgemm_cuda.py::{test_id}" in r.stdout.splitlines()


def test_steps_get_their_environment(tmp_path, monkeypatch):
    seen, rc = _plan(tmp_path, monkeypatch)
    assert rc == 0
    assert seen["build"][1]["DWQ_CUDA_ARCH"] == "9.0a"  # this GPU's target only
    assert all(seen[f"smoke_{e}"][1].get("CUDA_LAUNCH_BLOCKING") == "1" for e in ("wgmma", "wgmma_tma", "wgmma_pp"))
    assert seen["memcheck_qgemm_cuda"][1].get("PYTORCH_NO_CUDA_MEMORY_CACHING") == "1"
    assert seen["bench_train"][1].get("PYTORCH_NO_CUDA_MEMORY_CACHING") is None  # (only memcheck's)
    assert "DWQ_CUDA_GEMM" not in seen["bench_train"][1]
    assert "--engines" in seen["bench_kernels_cuda"][0]
    assert _k(seen["test_cuda"][0]) == "cuda"
    assert "cpp_error_needed" not in seen and "test_suite" not in seen  # (no C++-error failure, no --full-suite)


def test_a_failed_smoke_engine_is_left_out_of_test_cuda_and_memcheck(tmp_path, monkeypatch):
    seen, rc = _plan(tmp_path, monkeypatch, rcs={"smoke_wgmma_tma": 1})
    assert rc == 1  # a failed step: the command fails
    for step in ("test_cuda", "memcheck_qgemm_cuda"):
        k = _k(seen[step][0])
        assert not _selects(k, "test_tile_edges[wgmma_tma-129-129-65]", tmp_path), (step, k)
        assert not _selects(k, "test_qgemm_cuda_exact[cuda-wgmma_tma-8]", tmp_path), (step, k)
    # the engines that passed keep their tests
    assert _selects(_k(seen["test_cuda"][0]), "test_qgemm_cuda_exact[cuda-wgmma-8]", tmp_path)
    memcheck = _k(seen["memcheck_qgemm_cuda"][0])
    assert _selects(memcheck, "test_tile_edges[wgmma-129-129-65]", tmp_path)
    assert _selects(memcheck, "test_tile_edges[mma-129-129-65]", tmp_path)
    assert not _selects(memcheck, "test_tile_edges[mma-64-64-64]", tmp_path)


def test_a_skipped_smoke_test_keeps_its_engine_and_a_skipped_cpp_test_runs_no_diagnostics(tmp_path, monkeypatch):
    seen, rc = _plan(tmp_path, monkeypatch, rcs={"smoke_wgmma": "skipped", "test_cpp_errors": "skipped"})
    assert rc == 0  # skipped is not failed
    assert seen["bench_kernels_cuda"][0][-1] == "mma,wgmma,wgmma_tma,wgmma_pp,auto,auto_repack"
    assert "DWQ_CUDA_GEMM" not in seen["bench_train"][1] and _k(seen["test_cuda"][0]) == "cuda"
    assert "cpp_error_needed" not in seen
    seen, _ = _plan(tmp_path, monkeypatch, rcs={"test_cpp_errors": 1})
    assert seen["cpp_error_needed"][0][:2] == ["readelf", "-d"]


def test_full_suite_only_when_asked(tmp_path, monkeypatch):
    seen, _ = _plan(tmp_path, monkeypatch, argv=["--full-suite"])
    assert "test_suite" in seen and "--ignore=tests/test_brevitas.py" in seen["test_suite"][0]


def test_an_existing_out_is_refused_before_any_step(tmp_path, monkeypatch, capsys):
    gc = _gpu_check()
    monkeypatch.setattr(gc.Steps, "run", lambda *a, **k: pytest.fail("a step ran"))
    out = tmp_path / "old"
    out.mkdir()
    (out / "gpu_check.json").write_text("[]")
    with pytest.raises(SystemExit) as e:
        gc.main(["--out", str(out)])
    assert e.value.code == 2 and "exists; dwq never overwrites a run" in capsys.readouterr().err
    assert (out / "gpu_check.json").read_text() == "[]"


def test_a_step_the_earlier_run_finished_is_recorded_at_once_even_if_skipped_now(tmp_path):
    gc = _gpu_check()
    out = tmp_path / "second"
    out.mkdir()
    done = {"bench_train": dict(step="bench_train", cmd="x", rc=3, seconds=1.0)}
    st = gc.Steps(str(out), None, budget=30, done=done, skip=["bench_train"])
    assert st.run("bench_train", [sys.executable, "-c", "raise SystemExit(9)"]) == 3
    # saved right away (a kill before the next step keeps it), with its earlier outcome
    assert json.loads((out / "gpu_check.json").read_text()) == [dict(done["bench_train"], earlier_run=True)]
    assert st.failed() == ["bench_train"]


def test_the_probe_binary_is_beside_the_first_calls_out_also_when_the_second_is_elsewhere(tmp_path, monkeypatch):
    """A second call (--resume-from) takes the first call's probe build as done and runs its binary: beside
    the first call's --out, not the second's (a second --out in another folder found no binary)."""
    seen, _ = _plan(tmp_path, monkeypatch)
    assert seen["wgmma_probe"][0] == [str(tmp_path / "dwq-wgmma-probe")]
    earlier = tmp_path / "first" / "gpu"
    earlier.mkdir(parents=True)
    seen, _ = _plan(tmp_path, monkeypatch, ["--resume-from", str(earlier)])
    assert seen["wgmma_probe"][0] == [str(tmp_path / "first" / "dwq-wgmma-probe")]
    assert str(tmp_path / "first" / "dwq-wgmma-probe") in seen["wgmma_probe_build"][0]

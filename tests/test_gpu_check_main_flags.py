"""benchmarks/gpu_check.py's main() with its real step runner and every process stubbed (no GPU, no
build): the order of the steps, what the flags leave out (--skip-build, --no-profile, --no-sanitizer,
--skip with spaces and a trailing comma), --resume-from and --skip reaching the runner, which steps
depend on an earlier one (the probe on its build and a Hopper, the backtrace on a debugger, the default
engine on both Hopper smoke tests, the NCCL metrics on the run), the environment of every step, a
relative --out, and the Steps the SIGTERM handler ends. A host-side slip here costs the whole GPU lease."""
import json
import os
import pathlib
import subprocess

import pytest
from test_gpu_check import _gpu_check


def _main(tmp_path, monkeypatch, argv=(), rcs=None, cc="9.0a", tools=True, out=None, nccl_metrics=False):
    """main() with the real Steps.run and a stub for every process: (module, {step: (cmd, env)} in run
    order, main's return value, OUT)."""
    gc = _gpu_check()
    ran = {}

    class Step:  # subprocess.Popen of a step that ends at once with rcs.get(step, 0)
        def __init__(self, cmd, stdout=None, env=None, **kwargs):
            self.name = os.path.basename(stdout.name)[:-len(".log")]
            ran[self.name] = (list(cmd), dict(env))
            self.pid = -1
            if nccl_metrics and self.name == "torchrun_nccl_amp":
                ddp = cmd[cmd.index("--out") + 1]
                os.makedirs(ddp, exist_ok=True)
                with open(os.path.join(ddp, "metrics.jsonl"), "w") as f:
                    f.write('{"epoch": 0}\n')

        def wait(self, timeout=None):
            return (rcs or {}).get(self.name, 0)

    monkeypatch.setattr(gc.subprocess, "Popen", Step)
    monkeypatch.setattr(gc.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, cc + "\n", ""))
    monkeypatch.setattr(gc, "find_tool", lambda name, *folders: f"/fake/{name}" if tools else None)
    monkeypatch.setattr(gc, "find_ncu", lambda: "/fake/ncu" if tools else None)
    monkeypatch.setattr(gc.shutil, "which", lambda name: f"/fake/{name}" if tools else None)
    out = out or str(tmp_path / f"gc-flags-{os.getpid()}-{len(list(tmp_path.iterdir()))}")
    rc = gc.main(["--out", out, *argv])
    return gc, ran, rc, os.path.abspath(out)


def test_the_steps_run_in_the_documented_order_and_a_failed_build_stops_none(tmp_path, monkeypatch):
    """The order is what a short lease most needs: the compiles (bench_train_compiled, bench_compile)
    last, where a second call finishes them; STEPS lists them in that order. A failing step (the build
    too: the extension may be there already) is recorded and the later ones still run."""
    gc, ran, rc, _ = _main(tmp_path, monkeypatch, ["--full-suite"], rcs={"build": 1, "test_cpp_errors": 1})
    assert rc == 1
    assert list(ran) == list(gc.STEPS)


def test_the_flags_leave_out_their_steps_and_nothing_else(tmp_path, monkeypatch):
    gc, ran, rc, _ = _main(tmp_path, monkeypatch, ["--skip-build", "--no-profile", "--no-sanitizer"])
    assert rc == 0
    gone = {"build", "profile_rpt", "ncu_kernels", "memcheck_qgemm_cuda",
            "cpp_error_needed", "cpp_error_backtrace", "test_suite"}  # (no C++-error failure, no --full-suite)
    assert list(ran) == [s for s in gc.STEPS if s not in gone]


def test_skip_and_resume_from_reach_the_step_runner(tmp_path, monkeypatch):
    """--skip with spaces and a trailing comma (as typed in a device command) names its steps; an earlier
    run's finished steps keep their record, the one the budget cut and the skipped one run again."""
    gc = _gpu_check()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "gpu_check.json").write_text(json.dumps([
        dict(step="toolchain", cmd="x", rc=0, seconds=1.0), dict(step="build", cmd="x", rc=2, seconds=9.0),
        dict(step="cuda_kernels_built", cmd="x", rc=gc.CUT, seconds=60.0),
        dict(step="bench_train", cmd="x", rc="skipped (budget)", seconds=0)]))
    gc, ran, rc, out = _main(tmp_path, monkeypatch,
                             ["--resume-from", str(earlier), "--skip", "bench_epoch, bench_compile,"])
    assert rc == 1  # the earlier run's failed build stands
    assert "toolchain" not in ran and "build" not in ran
    assert "cuda_kernels_built" in ran and "bench_train" in ran
    assert "bench_epoch" not in ran and "bench_compile" not in ran and "bench_train_compiled" in ran
    rec = {s["step"]: s for s in json.loads((pathlib.Path(out) / "gpu_check.json").read_text())}
    assert rec["toolchain"]["earlier_run"] and rec["build"]["rc"] == 2
    assert rec["bench_epoch"]["rc"] == rec["bench_compile"]["rc"] == "skipped (--skip)"
    assert rec["cuda_kernels_built"]["rc"] == 0 and "earlier_run" not in rec["cuda_kernels_built"]


def test_the_probe_needs_a_hopper_and_its_build(tmp_path, monkeypatch):
    _, ran, _, _ = _main(tmp_path, monkeypatch, cc="8.0")
    assert ran["build"][1]["DWQ_CUDA_ARCH"] == "8.0"
    assert "wgmma_probe_build" not in ran and "wgmma_probe" not in ran
    _, ran, rc, _ = _main(tmp_path, monkeypatch, rcs={"wgmma_probe_build": 1})
    assert rc == 1 and "wgmma_probe_build" in ran and "wgmma_probe" not in ran


def test_without_a_debugger_or_cuda_tools_the_cpp_error_diagnostics_still_run_what_they_can(tmp_path, monkeypatch):
    _, ran, rc, out = _main(tmp_path, monkeypatch, rcs={"test_cpp_errors": 1}, tools=False)
    assert rc == 1
    assert ran["cpp_error_needed"][0][:2] == ["readelf", "-d"] and "cpp_error_backtrace" not in ran
    assert not {"ncu_kernels", "memcheck_qgemm_cuda", "wgmma_probe_build", "wgmma_probe"} & set(ran)
    assert json.loads((pathlib.Path(out) / "gpu_check.json").read_text())[-1]["step"] == "bench_compile"


@pytest.mark.parametrize("failed", ["smoke_wgmma_tma", "smoke_wgmma_pp"])
def test_the_default_engine_is_mma_after_either_engine_it_runs_failed_its_smoke_test(tmp_path, monkeypatch, failed):
    """auto runs wgmma and wgmma_tma by shape (not wgmma_pp): either one failing sends the later steps,
    memcheck too, to mma.sync."""
    _, ran, rc, _ = _main(tmp_path, monkeypatch, rcs={failed: 1})
    assert rc == 1
    expected = "mma" if failed == "smoke_wgmma_tma" else None
    for step in ("bench_train", "test_cuda", "memcheck_qgemm_cuda", "bench_epoch"):
        assert ran[step][1].get("DWQ_CUDA_GEMM") == expected, step
    assert "DWQ_CUDA_GEMM" not in ran["smoke_wgmma_pp"][1]


def test_every_step_imports_this_checkout_and_requires_the_extension(tmp_path, monkeypatch):
    gc = _gpu_check()
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    _, ran, _, _ = _main(tmp_path, monkeypatch)
    for step, (cmd, env) in ran.items():
        assert env["PYTHONPATH"].split(os.pathsep)[:2] == [gc.ROOT, "/elsewhere"], step
        assert env["DWQ_REQUIRE_EXT"] == "1", step


def test_a_relative_out_is_where_gpu_check_was_started_not_the_checkout(tmp_path, monkeypatch):
    """The steps run in the checkout's root: a relative --out in their commands named another folder."""
    monkeypatch.chdir(tmp_path)
    name = f"gc-rel-{os.getpid()}"
    _, ran, _, out = _main(tmp_path, monkeypatch, out=name)
    assert out == str(tmp_path / name) and (tmp_path / name / "gpu_check.json").is_file()
    assert str(tmp_path / name / "bench_train_cuda.json") in ran["bench_train"][0]


def test_the_nccl_runs_metrics_are_kept_when_it_passed(tmp_path, monkeypatch):
    _, ran, rc, out = _main(tmp_path, monkeypatch, nccl_metrics=True)
    assert rc == 0 and "torchrun_nccl_amp" in ran
    assert (pathlib.Path(out) / "torchrun_nccl_amp_metrics.jsonl").read_text() == '{"epoch": 0}\n'


def test_main_hands_its_steps_to_the_sigterm_handler(tmp_path, monkeypatch):
    gc, _, _, out = _main(tmp_path, monkeypatch, ["--skip", ",".join(_gpu_check().STEPS)])
    assert [st.out for st in gc._RUNNING] == [out]


def test_a_bundle_named_as_a_folder_is_refused_before_any_step(tmp_path, monkeypatch, capsys):
    """--bundle DIR/ for a folder not there yet: taken as the file DIR, and the bundle written beside OUT."""
    with pytest.raises(SystemExit) as e:
        _main(tmp_path, monkeypatch, ["--bundle", str(tmp_path / "not-yet") + "/"])
    assert e.value.code == 2 and "expected a file name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []

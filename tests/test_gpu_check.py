"""benchmarks/gpu_check.py's step runner, the part that must work the first time on a lent GPU machine:
one time budget, the record and bundle rewritten after every step, failures recorded without stopping."""
import importlib.util
import json
import pathlib
import sys
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_steps_record_bundle_and_budget(tmp_path):
    gc = _gpu_check()
    out, bundle = tmp_path / "run", tmp_path / "run.tgz"
    out.mkdir()
    st = gc.Steps(str(out), None, budget=30, bundle=str(bundle))
    assert st.run("ok", [sys.executable, "-c", "print('hello')"]) == 0
    assert st.run("fails", [sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert st.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"], timeout=1) == "timeout"
    rec = json.loads((out / "gpu_check.json").read_text())
    assert [(s["step"], s["rc"]) for s in rec] == [("ok", 0), ("fails", 3), ("slow", "timeout")]
    assert (out / "ok.log").read_text().strip() == "hello"
    with tarfile.open(bundle) as t:  # rewritten after the last step: every log and the record
        names = set(t.getnames())
    assert {"run/gpu_check.json", "run/ok.log", "run/fails.log", "run/slow.log"} <= names
    assert st.failed() == ["fails", "slow"]
    st.deadline = time.time() + 5  # under 20 s left: the next step does not start
    assert st.run("late", [sys.executable, "-c", "pass"]) == "skipped"
    assert json.loads((out / "gpu_check.json").read_text())[-1]["rc"] == "skipped (budget)"
    assert st.failed() == ["fails", "slow"]  # a skipped step is not a failure


def test_skipped_steps_do_not_run_and_are_recorded(tmp_path):
    gc = _gpu_check()
    out = tmp_path / "run"
    out.mkdir()
    st = gc.Steps(str(out), None, budget=30, skip=["bench_train"])
    marker = tmp_path / "ran"
    assert st.run("bench_train", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]) == "skipped"
    assert st.run("ok", [sys.executable, "-c", "pass"]) == 0
    assert not marker.exists()
    rec = json.loads((out / "gpu_check.json").read_text())
    assert [(s["step"], s["rc"]) for s in rec] == [("bench_train", "skipped (--skip)"), ("ok", 0)]
    assert st.failed() == []
    # a second call (--resume-from) without --skip runs it: skipped is not done
    assert set(gc.Steps.finished(str(out))) == {"ok"}


def test_pytest_command_never_names_the_timeout_plugin():
    cmd = _gpu_check().pytest_cmd("python", "tests/x.py")
    assert "-p" not in cmd  # (pytest-timeout loads itself; -p pytest_timeout would be an error)
    assert cmd[:4] == ["python", "-m", "pytest", "-q"] and cmd[-1] == "tests/x.py"


def _collected(*k):
    """Test ids of tests/test_qgemm_cuda.py that pytest collects (no GPU needed), with -k if given."""
    import subprocess

    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            str(ROOT / "tests" / "test_qgemm_cuda.py"), *(["-k", k[0]] if k else [])]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout
    return {line.split("::", 1)[1] for line in out.splitlines() if "::" in line}


def test_failed_engine_smoke_drops_exactly_that_engine():
    """After a failed smoke test, the later steps leave out that engine's tests and nothing else."""
    gc = _gpu_check()
    every = _collected()
    engine_of = {t: next((e for e in ("wgmma_tma", "wgmma_pp", "wgmma", "mma") if f"[{e}" in t), None) for t in every}
    assert {"mma", "wgmma", "wgmma_tma", "wgmma_pp", None} == set(engine_of.values())
    for wg_ok, tma_ok, pp_ok, bench in [
            (True, True, True, "mma,wgmma,wgmma_tma,wgmma_pp,auto,auto_repack"),
            (False, True, True, "mma,wgmma_tma,wgmma_pp"), (True, False, True, "mma,wgmma,wgmma_pp"),
            (True, True, False, "mma,wgmma,wgmma_tma,auto,auto_repack"), (False, False, False, "mma")]:
        drop, engines = gc.engines_after_smoke(wg_ok, tma_ok, pp_ok)
        assert engines == bench
        gone = {e for e, ok in (("wgmma", wg_ok), ("wgmma_tma", tma_ok), ("wgmma_pp", pp_ok)) if not ok}
        assert (drop == "") == (not gone)
        kept = _collected(drop) if drop else every
        assert kept == {t for t in every if engine_of[t] not in gone}, (wg_ok, tma_ok, pp_ok)


def test_every_test_it_names_exists():
    """A renamed test left the GPU run's step selecting nothing (pytest: "not found"), found only on
    the lent machine."""
    import re

    src = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    named = re.findall(r'"(tests/[\w/]+\.py)(?:::(\w+))?"', src)
    assert len(named) >= 8
    for path, name in named:
        assert (ROOT / path).is_file(), path
        if name:
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"{path}::{name}"


def test_a_budget_that_is_not_a_positive_finite_number_is_refused(tmp_path, capsys):
    """nan and inf passed the "<= 0" check: the lent machine's run then had no budget at all."""
    import pytest

    gc = _gpu_check()
    for bad in ("0", "-5", "nan", "inf"):
        with pytest.raises(SystemExit) as e:
            gc.main(["--out", str(tmp_path / "o"), "--budget", bad])
        assert e.value.code == 2 and f"--budget {float(bad)}: expected a positive, finite" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_resume_from_runs_only_what_the_earlier_run_did_not_finish(tmp_path):
    """A second device call on the still-warm machine: finished steps keep their outcome (a failure
    too), a step the budget skipped runs now; a missing earlier folder (a fresh machine) runs all."""
    gc = _gpu_check()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    st = gc.Steps(str(first), None, budget=30)
    assert st.run("ok", [sys.executable, "-c", "pass"]) == 0
    assert st.run("fails", [sys.executable, "-c", "raise SystemExit(4)"]) == 4
    st.deadline = time.time()
    assert st.run("late", [sys.executable, "-c", "pass"]) == "skipped"
    done = gc.Steps.finished(str(first))
    assert set(done) == {"ok", "fails"}
    again = gc.Steps(str(second), None, budget=30, done=done)
    marker = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    assert again.run("ok", touch) == 0 and again.run("fails", touch) == 4 and not marker.exists()
    assert again.run("late", touch) == 0 and marker.read_text() == "x"
    rec = json.loads((second / "gpu_check.json").read_text())
    assert [(s["step"], s["rc"], s.get("earlier_run", False)) for s in rec] == [
        ("ok", 0, True), ("fails", 4, True), ("late", 0, False)]
    assert again.failed() == ["fails"]
    assert gc.Steps.finished(str(tmp_path / "absent")) == {}



def test_every_step_is_named_and_skip_refuses_a_misspelt_one(tmp_path, capsys):
    """--skip bench_trian ran bench_train (about 50 s of a 15-minute lease) without a word."""
    import re

    gc = _gpu_check()
    src = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    named = set(re.findall(r'st\.run\("(\w+)"', src)) | {f"smoke_{e}" for e in gc.HOPPER_IDS}
    assert named == set(gc.STEPS)
    with pytest.raises(SystemExit) as e:
        gc.main(["--out", str(tmp_path / "o"), "--skip", "bench_trian,test_cuda"])
    assert e.value.code == 2 and "--skip bench_trian: no such step" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # (its folder missing: found after the first step, a traceback)
        gc.main(["--out", str(tmp_path / "o"), "--bundle", str(tmp_path / "none" / "b.tgz")])
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "o").exists()
    # "" (an unset $OUT) was no bundle, silently; a folder failed at the first step's save, a traceback
    for bad in ("", str(tmp_path)):
        with pytest.raises(SystemExit):  # (every step skipped: without the check, main returns at once)
            gc.main(["--out", str(tmp_path / "o"), "--bundle", bad, "--skip", ",".join(gc.STEPS)])
        assert "expected a file name" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_an_interrupted_bundle_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A Ctrl-C (or gpu_check's SIGTERM handler) inside the tar write left FILE.tgz.tmp in $OUT."""
    gc = _gpu_check()
    out = tmp_path / "run"
    out.mkdir()
    st = gc.Steps(str(out), None, budget=30, bundle=str(tmp_path / "b.tgz"))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "add", interrupted)
    with pytest.raises(KeyboardInterrupt):
        st.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_step_the_budget_cut_runs_again_and_a_missing_binary_is_a_failed_step(tmp_path):
    """A step ended by the budget was kept as done, so the second call made for it skipped it; a binary
    the first call built in its own --out was not there for the second, and gpu_check died (OSError)."""
    gc = _gpu_check()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    st = gc.Steps(str(first), None, budget=21)
    assert st.run("gone", [str(tmp_path / "no-such-binary")]).startswith("not runnable")
    assert st.run("cut", [sys.executable, "-c", "import time; time.sleep(60)"], timeout=300) == gc.CUT
    assert gc.Steps.finished(str(first)).keys() == {"gone"}
    again = gc.Steps(str(second), None, budget=30, done=gc.Steps.finished(str(first)))
    assert again.run("cut", [sys.executable, "-c", "print('ran')"]) == 0


def test_a_timeout_ends_the_step_s_whole_group(tmp_path):
    """The escalation stopped when the group's leader exited: a child that ignored SIGTERM lived on."""
    import os
    import signal

    gc = _gpu_check()
    out = tmp_path / "run"
    out.mkdir()
    pidfile = tmp_path / "child.pid"
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    leader = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
              f"open({str(pidfile)!r}, 'w').write(str(p.pid)); p.wait()")
    st = gc.Steps(str(out), None, budget=60)
    assert st.run("stuck", [sys.executable, "-c", leader], timeout=3) == "timeout"
    pid = int(pidfile.read_text())
    time.sleep(0.5)
    try:
        os.kill(pid, 0)
        alive = open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # (loading it installs no handler in this process)


def test_the_wgmma_probe_compiles(tmp_path):
    """gpu_check's probe step builds benchmarks/cuda/wgmma_probe.cu on the GPU machine: it includes the
    kernel headers, so a change there that breaks it is caught here (to PTX only: ptxas would take a
    minute, and the extension's build already assembles the kernel)."""
    import shutil
    import subprocess

    gc = _gpu_check()
    nvcc = gc.find_tool("nvcc", "/usr/local/cuda/bin")
    if nvcc is None or shutil.which("g++") is None:
        pytest.skip("needs nvcc (the CUDA toolkit) and a host C++ compiler")
    cmd = [a.replace("code=sm_90a", "code=compute_90a") for a in gc.probe_build_cmd(nvcc, str(tmp_path / "p.o"))]
    cmd.insert(1, "-c")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def test_after_a_failed_hopper_smoke_the_default_engine_is_mma_and_only_this_runs_nccl_metrics_are_kept(
        tmp_path, monkeypatch):
    """The later steps' default engine (auto) still ran a Hopper kernel whose smoke test had failed; the
    NCCL run's metrics were copied whenever /tmp held some: from a failed step, or an earlier run."""
    import os
    import shutil

    gc = _gpu_check()
    seen = {}

    def run(self, name, cmd, timeout=600, env=None):
        seen[name] = dict(env or self.env)
        if name == "torchrun_nccl_amp" and rc_nccl == 1:  # a failed run that wrote metrics
            ddp = cmd[cmd.index("--out") + 1]
            os.makedirs(ddp, exist_ok=True)
            (tmp_path / "written").write_text(ddp)
            with open(os.path.join(ddp, "metrics.jsonl"), "w") as f:
                f.write("{}\n")
        return {"smoke_wgmma": 1, "torchrun_nccl_amp": rc_nccl}.get(name, 0)

    monkeypatch.setattr(gc.Steps, "run", run)
    for k, rc_nccl in enumerate((1, 0)):
        out = tmp_path / f"gc-test-{os.getpid()}-{k}"
        stale = f"/tmp/{out.name}-nccl"
        if rc_nccl == 0:  # an earlier run's metrics, and a step that writes none
            os.makedirs(stale, exist_ok=True)
            with open(os.path.join(stale, "metrics.jsonl"), "w") as f:
                f.write("{}\n")
        try:
            gc.main(["--out", str(out), "--skip-build"])
        finally:
            shutil.rmtree(stale, ignore_errors=True)
        assert not (out / "torchrun_nccl_amp_metrics.jsonl").exists(), rc_nccl
        assert seen["bench_train"].get("DWQ_CUDA_GEMM") == "mma" and "DWQ_CUDA_GEMM" not in seen["smoke_wgmma"]

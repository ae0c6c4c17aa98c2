"""benchmarks/gpu_check.py's Steps beyond tests/test_gpu_check.py: how long a step may wait out of the
budget (and the 20 s floor), a step the budget ends recorded as cut, the working directory, environment
and log a step gets, the record and bundle rewritten after a --skip too, the running process that the
SIGTERM handler knows of, and the handler itself. The hung step is stubbed: no step sleeps out a limit."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from test_gpu_check import _gpu_check


def test_a_step_waits_at_most_the_budget_left_and_the_one_the_budget_ends_runs_again(tmp_path, monkeypatch):
    gc = _gpu_check()
    waits, ended = [], []

    class Hung:  # a step that never ends by itself
        def __init__(self, cmd, **kwargs):
            self.pid = -1

        def wait(self, timeout=None):
            waits.append(timeout)
            raise subprocess.TimeoutExpired("step", timeout)

    monkeypatch.setattr(gc.subprocess, "Popen", Hung)
    monkeypatch.setattr(gc, "end_group", lambda proc, grace=10: ended.append(proc))
    st = gc.Steps(str(tmp_path), None, budget=100)
    assert st.run("cut", ["step"], timeout=300) == gc.CUT  # its own limit was longer than the budget left
    assert 90 < waits[-1] <= 100
    assert st.run("own_limit", ["step"], timeout=30) == "timeout"  # its own limit, inside the budget
    assert waits[-1] == 30
    assert len(ended) == 2  # each one's group ended
    # the step its own limit ended has an outcome; the one the budget cut runs again on --resume-from
    assert set(gc.Steps.finished(str(tmp_path))) == {"own_limit"}
    assert st.failed() == ["cut", "own_limit"]


def test_a_step_starts_with_20_s_of_the_budget_left_and_not_with_less(tmp_path):
    gc = _gpu_check()
    st = gc.Steps(str(tmp_path), None, budget=60)
    st.deadline = time.time() + 15
    assert st.run("late", [sys.executable, "-c", "pass"]) == "skipped"
    st.deadline = time.time() + 25
    assert st.run("in_time", [sys.executable, "-c", "pass"]) == 0
    rec = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(s["step"], s["rc"]) for s in rec] == [("late", "skipped (budget)"), ("in_time", 0)]


def test_a_step_runs_in_the_repository_root_with_its_environment_and_its_stderr_in_its_log(tmp_path, monkeypatch):
    """The steps name tests/... and benchmarks/... relative to the checkout, whatever the caller's folder;
    a step's own env (the build's arch, the smoke tests' blocking launches) replaces the common one."""
    gc = _gpu_check()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    st = gc.Steps(str(out), dict(os.environ, GC_STEP_ENV="common"), budget=60)
    code = ("import os, sys; print(os.path.realpath(os.getcwd()), flush=True); "
            "print(os.environ.get('GC_STEP_ENV'), file=sys.stderr)")
    assert st.run("common_env", [sys.executable, "-c", code]) == 0
    assert st.run("own_env", [sys.executable, "-c", code], env=dict(os.environ, GC_STEP_ENV="own")) == 0
    root = os.path.realpath(gc.ROOT)
    assert (out / "common_env.log").read_text().split() == [root, "common"]
    assert (out / "own_env.log").read_text().split() == [root, "own"]


def test_the_record_and_bundle_are_rewritten_after_a_skipped_step_and_name_logs_inside_out(tmp_path):
    """A kill right after a --skip kept a record without it; the record's log names the file inside OUT
    (the bundle is unpacked on another machine)."""
    gc = _gpu_check()
    out, bundle = tmp_path / "run", tmp_path / "b.tgz"
    out.mkdir()
    st = gc.Steps(str(out), None, budget=60, bundle=str(bundle), skip=["bench_train"])

    def record():
        return [(s["step"], s["rc"]) for s in json.loads((out / "gpu_check.json").read_text())]

    assert st.run("toolchain", [sys.executable, "-c", "pass"]) == 0
    assert record() == [("toolchain", 0)]
    assert json.loads((out / "gpu_check.json").read_text())[0]["log"] == "toolchain.log"
    assert st.run("bench_train", [sys.executable, "-c", "pass"]) == "skipped"
    assert record() == [("toolchain", 0), ("bench_train", "skipped (--skip)")]
    with tarfile.open(bundle) as t:
        in_bundle = json.load(t.extractfile("run/gpu_check.json"))
    assert [s["step"] for s in in_bundle] == ["toolchain", "bench_train"]


def test_the_running_step_is_known_while_it_runs_and_forgotten_after(tmp_path, monkeypatch):
    """The SIGTERM handler ends the group of ``Steps.current``: set while the step runs, None after."""
    gc = _gpu_check()
    st = gc.Steps(str(tmp_path), None, budget=60)
    seen = []

    class Watched(subprocess.Popen):
        def wait(self, timeout=None):
            seen.append(st.current is self)
            return super().wait(timeout)

    monkeypatch.setattr(gc.subprocess, "Popen", Watched)
    assert st.run("step", [sys.executable, "-c", "pass"]) == 0
    assert seen and seen[0] is True
    assert st.current is None


def test_sigterm_to_gpu_check_ends_the_running_step_and_exits_128_plus_the_signal(tmp_path, monkeypatch):
    gc = _gpu_check()
    st = gc.Steps(str(tmp_path), None, budget=60)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        st.current = proc
        monkeypatch.setattr(gc, "_RUNNING", [st])
        with pytest.raises(SystemExit) as e:
            gc._ended(signal.SIGTERM, None)
        assert e.value.code == 128 + signal.SIGTERM
        assert proc.poll() is not None  # the step's group was ended before gpu_check exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

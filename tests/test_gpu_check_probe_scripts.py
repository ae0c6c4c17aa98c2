"""The small scripts benchmarks/gpu_check.py runs on the GPU machine, run here: the toolchain probe (the
C++ compiler's libstdc++ against the ones this interpreter loads: issue 9), the build target it derives
from the GPU's capability, the check that the CUDA kernels are in the build, and the pytest command's
plugins (a per-test limit by thread, -n only where pytest-xdist is there)."""
import contextlib
import io
import os
import shutil
import subprocess
import sys

import pytest
from conftest import shell_script
from test_gpu_check import _gpu_check


def _lines(out, head):
    return [line[len(head):].strip() for line in out.splitlines() if line.startswith(head)]


def test_toolchain_probe_names_a_missing_compiler_and_the_libstdcxx_loaded(tmp_path):
    gc = _gpu_check()
    env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"))
    r = subprocess.run([sys.executable, "-c", gc.TOOLCHAIN], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    [cxx] = _lines(r.stdout, "cxx ")
    assert cxx.startswith(f"{tmp_path / 'no-such-c++'} not runnable: ")  # (CXX, not c++ from PATH)
    loaded = _lines(r.stdout, "loaded ")
    assert any("libstdc++" in p for p in loaded), r.stdout  # (torch loads it)
    assert all(os.path.isabs(p) and os.path.realpath(p) == p for p in loaded)


def test_toolchain_probe_with_a_compiler_that_answers_nothing_goes_on_and_prints_each_library_once(tmp_path):
    """A compiler printing nothing stopped the probe (IndexError) before its "loaded" lines, and an empty
    -print-file-name answer read as the probe's working folder; a library mapped in several segments
    was printed once per segment."""
    gc = _gpu_check()
    mute = shell_script(tmp_path / "mute-c++", "exit 0\n")
    r = subprocess.run([sys.executable, "-c", gc.TOOLCHAIN], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, CXX=str(mute)), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _lines(r.stdout, "cxx ") == [f"{mute}: no --version output",
                                        "libstdc++ not given (-print-file-name printed nothing)"]
    loaded = _lines(r.stdout, "loaded ")
    assert any("libstdc++" in p for p in loaded) and len(loaded) == len(set(loaded)), r.stdout


def test_a_gpu_that_does_not_answer_leaves_the_build_target_to_the_default(monkeypatch, capsys):
    gc = _gpu_check()
    monkeypatch.setattr(gc, "CAPABILITY", "import time; time.sleep(60)")
    assert gc.capability(sys.executable, timeout=0.5) == ""
    assert "the GPU's capability: no answer within 0.5 s; building for the default targets" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler (c++) on PATH")
def test_toolchain_probe_gives_the_compiler_s_libstdcxx_as_a_real_path(tmp_path):
    """Compared with the "loaded" lines (real paths): the compiler's own answer is a path with ../ in it."""
    gc = _gpu_check()
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    r = subprocess.run([sys.executable, "-c", gc.TOOLCHAIN], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    [lib] = _lines(r.stdout, "cxx libstdc++")
    assert os.path.isabs(lib) and os.path.realpath(lib) == lib and os.path.isfile(lib)


def _capability(monkeypatch, cap):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cap is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(_gpu_check().CAPABILITY, {})
    return buf.getvalue().strip()


def test_the_build_target_is_sm_90a_on_a_hopper_only(monkeypatch):
    """9.0a has the wgmma kernels; a later GPU (10.0) has no 10.0a of them, and would build none."""
    assert _capability(monkeypatch, (9, 0)) == "9.0a"
    assert _capability(monkeypatch, (10, 0)) == "10.0"
    assert _capability(monkeypatch, (8, 9)) == "8.9"
    assert _capability(monkeypatch, None) == ""  # (no GPU: the build keeps its own default)


def test_the_kernels_check_fails_when_one_cuda_kernel_is_missing(monkeypatch):
    import dwq.ops

    gc = _gpu_check()
    for missing in ([], ["qconv2d"], ["fake_quantize", "qlinear"]):
        monkeypatch.setattr(dwq.ops, "has_kernel", lambda op, device: not (device == "cuda" and op in missing))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
            exec(gc.KERNELS_BUILT, {})
        assert e.value.code == (1 if missing else 0), missing
        assert buf.getvalue().strip() == f"CUDA kernels missing: {missing or 'none'}"


@pytest.mark.parametrize("installed", [(), ("pytest_timeout", "xdist")])
def test_the_pytest_command_uses_the_plugins_only_where_they_are_installed(monkeypatch, installed):
    """-n without pytest-xdist is a usage error (the step fails at once); the per-test limit must be the
    thread method (a test blocked in a CUDA call never returns to Python for a signal)."""
    import importlib.util

    gc = _gpu_check()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in installed else None)
    cmd = gc.pytest_cmd("python", "tests/x.py", per_test=45, workers=8)
    if installed:
        assert cmd == ["python", "-m", "pytest", "-q", "-ra", "--timeout", "45", "--timeout-method", "thread",
                       "-n", "8", "tests/x.py"]
    else:
        assert cmd == ["python", "-m", "pytest", "-q", "-ra", "tests/x.py"]

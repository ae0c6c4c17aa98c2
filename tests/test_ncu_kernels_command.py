"""benchmarks/ncu_kernels.py's host side, without a GPU or ncu: the ncu command it runs (its kernel
filter, clocks, sections, and itself as the --target), its exit status passed on, --target needing no
--out, and the value checks off (then unset) around the timed-path calls of the target."""
import os
import re
import sys
import types

from test_benchmarks_cli import _script


def test_main_runs_itself_under_ncu_and_returns_its_status(tmp_path, monkeypatch, capsys):
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    calls = []

    def fake_run(cmd, stdout, timeout):
        calls.append(cmd)
        stdout.write("csv\n")
        return types.SimpleNamespace(returncode=3)

    monkeypatch.setattr(nk.subprocess, "run", fake_run)
    out = tmp_path / "n.csv"
    ncu = tmp_path / "ncu"  # (an executable: --ncu naming none is refused)
    ncu.write_text("#!/bin/sh\n")
    ncu.chmod(0o755)
    assert nk.main(["--out", str(out), "--ncu", str(ncu)]) == 3
    [cmd] = calls
    assert cmd[0] == str(ncu) and out.read_text() == "csv\n"
    assert cmd[-3:] == [sys.executable, os.path.abspath(nk.__file__), "--target"]
    opt = {cmd[i]: cmd[i + 1] for i in range(1, len(cmd) - 3) if cmd[i].startswith("-") and
           not cmd[i + 1].startswith("-")}
    assert opt["--clock-control"] == "none" and opt["--target-processes"] == "all" and opt["--page"] == "details"
    sections = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--section"]
    assert sections == nk.SECTIONS and "WarpStateStats" in sections and "SpeedOfLight" in sections
    assert opt["-k"].startswith("regex:")
    kernels = re.compile(opt["-k"][len("regex:"):])
    assert kernels.search("void dwq::fake_quantize_kernel<float>(float const*, float*, long)")
    assert kernels.search("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::"
                          "fake_quantize_tensor_cachemask_kernel_cuda(...)::{lambda(float)#1}>")
    assert not kernels.search("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>")
    assert "ncu exit status 3" in capsys.readouterr().out


def test_target_needs_no_out(monkeypatch):
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    ran = []
    monkeypatch.setattr(nk, "target", lambda *a, **k: ran.append(1))
    assert nk.main(["--target"]) == 0 and ran == [1]


def test_target_turns_value_checks_off_for_its_calls_then_unsets_them(capsys, monkeypatch):
    nk = _script("ncu_kernels")
    for var in ("DWQ_CUDA_GEMM", "DWQ_CUDA_CHECKS"):
        monkeypatch.delenv(var, raising=False)
    seen = []
    for name in ("qlinear", "qconv2d"):
        real = getattr(nk.q, name)

        def spy(*a, _real=real, _name=name, **k):
            seen.append((_name, os.environ.get("DWQ_CUDA_GEMM"), os.environ.get("DWQ_CUDA_CHECKS")))
            return _real(*a, **k)

        monkeypatch.setattr(nk.q, name, spy)
    nk.target("cpu", small=True)
    assert seen == [("qlinear", "mma", "0"), ("qlinear", "mma", "0"), ("qconv2d", "mma", "0"),
                    ("qconv2d", "auto", "0")]
    assert "DWQ_CUDA_GEMM" not in os.environ and "DWQ_CUDA_CHECKS" not in os.environ
    cases = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[ncu_kernels] qlinear")]
    assert cases == ["[ncu_kernels] qlinear 64x64x64 8-bit mma", "[ncu_kernels] qlinear 64x64x64 16-bit mma"]

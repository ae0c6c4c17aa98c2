"""benchmarks/ncu_kernels.py without a GPU or ncu: the whole ncu command line (demangled kernel names, CSV
details, the six sections of its docstring in order), the refusals before anything runs (no CUDA GPU; no
ncu found), ``--target`` running the full-size cases, and the case list each size launches: names, shapes,
zero points and the baseline's arguments (the heavy calls stubbed, so the full sizes cost nothing here)."""
import sys
import types

import pytest
import torch

from test_benchmarks_cli import _script

SECTIONS = ["SpeedOfLight", "MemoryWorkloadAnalysis", "ComputeWorkloadAnalysis", "Occupancy", "LaunchStats",
            "WarpStateStats"]


def _ran(nk, monkeypatch):
    """The commands handed to subprocess.run (none is run)."""
    calls = []
    monkeypatch.setattr(nk.subprocess, "run", lambda cmd, stdout, timeout: calls.append((cmd, timeout)) or
                        types.SimpleNamespace(returncode=0))
    return calls


def _fake_ncu(folder):
    path = folder / "ncu"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_ncu_command_line_is_the_documented_profile(tmp_path, monkeypatch):
    """Every option ncu gets: no clock control, all processes, kernels matched by demangled name, CSV of
    the details page, the six sections of the docstring in that order, then this script's --target."""
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    calls = _ran(nk, monkeypatch)
    ncu = _fake_ncu(tmp_path)
    assert nk.main(["--out", str(tmp_path / "n.csv"), "--ncu", ncu]) == 0
    [(cmd, timeout)] = calls
    want = [ncu, "--clock-control", "none", "--target-processes", "all", "--kernel-name-base", "demangled",
            "-k", "regex:dwq::|fake_quantize", "--csv", "--page", "details"]
    for s in SECTIONS:
        want += ["--section", s]
    assert cmd[:-3] == want, f"ncu's options changed:\n{cmd[:-3]}\n{want}"
    assert cmd[-1] == "--target" and cmd[-3] == sys.executable and timeout == 600, (cmd[-3:], timeout)


@pytest.mark.parametrize("argv", [["--target"], ["--out", "OUT"], ["--out", "OUT", "--ncu", "/opt/ncu"]])
def test_without_a_cuda_gpu_it_is_a_usage_error_before_anything_runs(argv, tmp_path, monkeypatch, capsys):
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: False)
    calls = _ran(nk, monkeypatch)
    monkeypatch.setattr(nk, "target", lambda *a, **k: calls.append("target"))
    out = tmp_path / "n.csv"
    with pytest.raises(SystemExit) as e:
        nk.main([str(out) if a == "OUT" else a for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: needs a CUDA GPU (ncu reads a GPU's counters)" in err, err
    assert calls == [] and not out.exists(), calls


def test_no_ncu_found_is_a_usage_error_that_writes_nothing(tmp_path, monkeypatch, capsys):
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(nk, "find_ncu", lambda: None)
    calls = _ran(nk, monkeypatch)
    out = tmp_path / "n.csv"
    with pytest.raises(SystemExit) as e:
        nk.main(["--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: ncu (Nsight Compute) not found: give --ncu PATH" in err, err
    assert calls == [] and not out.exists(), calls


def test_target_runs_the_full_size_cases_on_the_gpu(monkeypatch):
    """What ncu profiles is ``target()`` itself: on cuda, at full size (small is for the tests)."""
    nk = _script("ncu_kernels")
    assert nk.target.__defaults__ == ("cuda", False), nk.target.__defaults__
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    got = []
    monkeypatch.setattr(nk, "target", lambda *a, **k: got.append((a, k)))
    assert nk.main(["--target"]) == 0
    assert got == [((), {})], f"--target called target with {got}, not its defaults"


def _cheap(monkeypatch, calls):
    """target's heavy calls recorded instead of run, its random tensors as zeros (nothing 4096^3 computes)."""
    nk = _script("ncu_kernels")

    def keep(name):
        return lambda *a, **k: calls.append((name, a))

    for name in ("pack_weight", "qlinear", "pack_conv_weight", "qconv2d"):
        monkeypatch.setattr(nk.q, name, keep(name))
    monkeypatch.setattr(nk, "fake_quantize", keep("fake_quantize"))
    monkeypatch.setattr(torch, "fake_quantize_per_tensor_affine", keep("torch.fake_quantize_per_tensor_affine"))
    monkeypatch.setattr(torch.ops.dwq, "act_qparams", keep("act_qparams"))
    monkeypatch.setattr(torch, "randint", lambda low, high, shape, **k: torch.zeros(1, dtype=torch.int64).expand(shape))
    monkeypatch.setattr(torch, "randn", lambda n, **k: torch.zeros(1).expand(n))
    return nk


@pytest.mark.parametrize("small, mnk, batch, numel", [(True, 64, 2, 1 << 12), (False, 4096, 256, 64 << 20)])
def test_the_cases_their_names_and_their_arguments(small, mnk, batch, numel, monkeypatch, capsys):
    """The seven cases off Hopper in launch order, each named on stderr with its size (4096^3 GEMMs,
    batch 256 convs, 64M elements, act_qparams on half of them); zero points at mid-range (2^(bits-1));
    torch's fake quantization at the same scale, zero point and 8-bit range."""
    calls = []
    nk = _cheap(monkeypatch, calls)
    nk.target("cpu", small=small)
    s = f"{mnk}x{mnk}x{mnk}"
    conv = f"qconv2d b{batch} 64->64 32x32 3x3"
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[ncu_kernels]")]
    want = [f"[ncu_kernels] {c}" for c in (
        f"qlinear {s} 8-bit mma", f"qlinear {s} 16-bit mma", f"{conv} 8-bit mma", f"{conv} 16-bit auto",
        f"fake_quantize per tensor {numel} float32", f"torch.fake_quantize_per_tensor_affine {numel} float32",
        f"act_qparams train {numel // 2} float32")]
    assert said == want, "the cases named on stderr:\n" + "\n".join(said) + "\nnot:\n" + "\n".join(want)
    lin = [a for n, a in calls if n == "qlinear"]
    got = [(tuple(a[0].shape), a[0].dtype, a[2].item(), a[3]) for a in lin]
    assert got == [((mnk, mnk), torch.uint8, 128, 8), ((mnk, mnk), torch.int32, 32768, 16)], \
        f"qlinear's (codes shape, dtype, zero point, bits): {got}"
    packed = [(a[0].shape, a[1].unique().tolist(), a[2]) for n, a in calls if n == "pack_weight"]
    assert packed == [((mnk, mnk), [128], 8), ((mnk, mnk), [32768], 16)], f"pack_weight's (shape, zw, bits): {packed}"
    cv = [a for n, a in calls if n == "qconv2d"]
    got = [(tuple(a[0].shape), a[2].item(), a[3], a[-3].item(), a[-1]) for a in cv]
    assert got == [((batch, 64, 32, 32), 128, 8, 0.5, 8), ((batch, 64, 32, 32), 32768, 16, 0.5, 16)], \
        f"qconv2d's (input shape, zero point, bits, out scale, out bits): {got}"
    assert all(a[0].is_contiguous(memory_format=torch.channels_last) for a in cv)
    [fq] = [a for n, a in calls if n == "fake_quantize"]
    [tfq] = [a for n, a in calls if n == "torch.fake_quantize_per_tensor_affine"]
    [aq] = [a for n, a in calls if n == "act_qparams"]
    assert fq[0].numel() == numel and fq[2].item() == 128 and fq[3] == 8, fq[1:]
    assert tfq[0] is fq[0] and tfq[1:] == (0.05, 128, 0, 255), tfq[1:]
    assert aq[0].numel() == numel // 2 and aq[4:] == (0, 2, 8, 0.1, True), aq[4:]


def test_an_ncu_that_is_not_there_or_runs_too_long_leaves_no_csv(tmp_path, monkeypatch, capsys):
    """--ncu /nonexistent was subprocess's traceback after the CSV had been made empty; a timeout left the
    empty CSV as if it were the profile."""
    nk = _script("ncu_kernels")
    monkeypatch.setattr(nk.torch.cuda, "is_available", lambda: True)
    calls = _ran(nk, monkeypatch)
    out = tmp_path / "n.csv"
    with pytest.raises(SystemExit) as e:
        nk.main(["--out", str(out), "--ncu", str(tmp_path / "nowhere" / "ncu")])
    assert e.value.code == 2 and f"error: --ncu {tmp_path / 'nowhere' / 'ncu'}: no such executable" in \
        capsys.readouterr().err
    assert calls == [] and not out.exists()

    def too_long(cmd, stdout, timeout):
        raise nk.subprocess.TimeoutExpired(cmd, timeout)

    monkeypatch.setattr(nk.subprocess, "run", too_long)
    with pytest.raises(SystemExit, match=r"ncu ran past 600 s; .*n.csv removed"):
        nk.main(["--out", str(out), "--ncu", _fake_ncu(tmp_path)])
    assert not out.exists()

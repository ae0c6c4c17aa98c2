"""Benchmarks, found by driving them: DWQ_CPU_ISA=amx on a CPU without AMX was printed as the run's ISA,
then the first op's traceback; bench_compile's and bench_epoch's records named the device "cuda", not
the GPU; gpu_check emptied /tmp/<its --out's name>-nccl, a folder it was never given, even when its
NCCL step was skipped, and ended "failed steps: none" when the budget had skipped every step;
bench_epoch without torchvision, and gpu_check given a damaged --resume-from, ended in a traceback."""
import os
import shutil

import pytest
import torch
from test_benchmarks_cli import _script
from test_gpu_check_main_flags import _main


def test_a_cpu_isa_this_cpu_lacks_ends_the_run_in_one_line(monkeypatch):
    records = _script("records")
    monkeypatch.setattr("dwq.ops.supported_cpu_isas", lambda: ["scalar", "avx2"])
    monkeypatch.setenv("DWQ_CPU_ISA", "amx")
    with pytest.raises(SystemExit) as e:
        records.cpu_isa("bench_x.py")
    assert str(e.value) == ("bench_x.py: DWQ_CPU_ISA='amx': expected one of this CPU's kernel paths scalar, avx2 "
                            "(or unset: the fastest)")
    monkeypatch.setenv("DWQ_CPU_ISA", "scalar")
    assert records.cpu_isa("bench_x.py") == "scalar"
    monkeypatch.delenv("DWQ_CPU_ISA")
    assert records.cpu_isa("bench_x.py") == "avx2"


def test_records_name_the_gpu(monkeypatch):
    records = _script("records")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"NVIDIA H200 ({torch.device(d)})")
    assert records.device_name("cuda:0") == "NVIDIA H200 (cuda:0)"
    assert records.device_name(torch.device("cpu")) == "cpu"


def test_the_nccl_run_folder_lies_inside_out_and_no_tmp_folder_is_touched(tmp_path, monkeypatch):
    out = str(tmp_path / "gc")
    mine = f"/tmp/{os.path.basename(out)}-nccl"
    os.makedirs(mine, exist_ok=True)
    with open(os.path.join(mine, "keep.txt"), "w") as f:
        f.write("someone else's")
    try:
        _, ran, _, out = _main(tmp_path, monkeypatch, ["--skip-build"], out=out)
        assert open(os.path.join(mine, "keep.txt")).read() == "someone else's"
    finally:
        shutil.rmtree(mine, ignore_errors=True)
    cmd = ran["torchrun_nccl_amp"][0]
    assert cmd[cmd.index("--out") + 1] == os.path.join(out, "torchrun_nccl_amp_run")


def test_steps_the_budget_skipped_fail_the_check_and_are_named(tmp_path, monkeypatch, capsys):
    """Every step skipped for lack of budget ended "failed steps: none" with status 0: nothing had run."""
    _, ran, rc, out = _main(tmp_path, monkeypatch, ["--skip-build", "--budget", "0.001"])
    said = capsys.readouterr().out.splitlines()[-1]
    assert rc == 1 and ran == {}
    assert said.startswith(f"[gpu_check] wrote {out}/gpu_check.json; failed steps: none; skipped for lack of "
                           f"budget: ") and f"(a call with --resume-from {out} and a new --out runs them)" in said
    _, ran, rc, _ = _main(tmp_path, monkeypatch, ["--skip-build"])
    assert rc == 0 and ran


def test_bench_epoch_without_torchvision_is_one_usage_error(monkeypatch, capsys):
    be = _script("bench_epoch")

    def no_torchvision(*args):
        raise be.DatasetError("cifar10: reading it needs torchvision built for this torch; importing it failed")

    monkeypatch.setattr(be, "random_cifar", no_torchvision)
    with pytest.raises(SystemExit) as e:
        be.main(["--device", "cpu", "--images", "4", "--workers", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].endswith("error: the CIFAR-shaped data needs torchvision: cifar10: reading it needs "
                                         "torchvision built for this torch; importing it failed")


@pytest.mark.parametrize("content", ["[", '[{"rc": 0}]', '{"step": "x"}'])
def test_a_damaged_resume_from_is_one_usage_error_and_leaves_no_out(tmp_path, capsys, content):
    gc = _script("gpu_check")
    prev = tmp_path / "prev"
    prev.mkdir()
    (prev / "gpu_check.json").write_text(content)
    out = tmp_path / "gc"
    with pytest.raises(SystemExit) as e:
        gc.main(["--out", str(out), "--resume-from", str(prev), "--skip-build"])
    assert e.value.code == 2 and not out.exists()
    assert f"--resume-from {prev}: its gpu_check.json cannot be read as a run's steps" in capsys.readouterr().err

"""benchmarks/bench_epoch.py around its (stubbed) Trainer: the defaults its docstring states (rpt, eager on a
CPU and eager,graphs on CUDA, 50000 images, batch 128, PGD-7, 4 workers), the dataset it trains on (the
augmenting transform of ``dwq train``, seed 0), each run's model built from torch's seed 0, no progress bar,
cuDNN's autotuning on CUDA only, the record's shape, device and precision names, and a run cut short
keeping what it measured in ``--json FILE.partial`` only."""
import json

import pytest
import torch

from test_bench_epoch_config import _stub
from test_benchmarks_cli import _script


def _cuda(be, monkeypatch):
    """bench_epoch believing it runs on CUDA (nothing is launched: its Trainer is stubbed)."""
    monkeypatch.setattr(be, "device_arg", lambda parser, name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "stub")


def test_the_defaults_are_the_documented_epoch(monkeypatch, capsys):
    """No flags on a CPU: one rpt epoch, eager, over 50000 images at batch 128, PGD-7, 4 loader workers,
    no progress bar (the epoch's time is the loop's)."""
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    sets = []
    monkeypatch.setattr(be, "random_cifar", lambda n, seed, transform: sets.append(n) or list(range(n)))
    be.main(["--device", "cpu"])
    [run] = runs
    cfg = run["cfg"]
    got = (cfg.attack, cfg.attack_iters, cfg.batch_size, cfg.epochs)
    assert got == ("pgd", 7, 128, 1), f"attack, its steps, batch, epochs by default: {got}, not PGD-7 at batch 128"
    assert run["workers"] == 4 and sets == [50000], f"default workers {run['workers']}, images {sets}: not 4, 50000"
    assert cfg.random_precision is True and not cfg.amp and not cfg.cuda_graphs, cfg
    assert cfg.progress is False, "the measured epoch must not draw a progress bar"
    out = capsys.readouterr().out
    assert "PGD-7, 50000 random CIFAR-shaped images, batch 128, 4 loader workers" in out, out
    assert "rpt    eager" in out, out


@pytest.mark.parametrize("device, modes, autotune", [("cpu", ["eager"], False), ("cuda", ["eager", "graphs"], True)])
def test_default_modes_and_cudnn_autotuning_follow_the_device(device, modes, autotune, monkeypatch):
    """--modes left out is eager,graphs on CUDA and eager on a CPU; cuDNN's autotuning is switched on as
    dwq train does, on CUDA only."""
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    if device == "cuda":
        _cuda(be, monkeypatch)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    be.main(["--device", device, "--images", "8", "--workers", "0"])
    got = [("graphs" if r["cfg"].cuda_graphs else "eager") for r in runs]
    assert got == modes and not any(r["cfg"].amp for r in runs), f"default modes on {device}: {got}, not {modes}"
    assert torch.backends.cudnn.benchmark is autotune, f"cudnn.benchmark on {device}"


def test_the_training_set_is_seeded_and_augmented_as_dwq_train_does(monkeypatch):
    """The random images come from seed 0 through the training transform (augment=True: RandomCrop and
    flip), the first of cifar_transforms' pair."""
    be = _script("bench_epoch")
    _stub(be, monkeypatch)
    asked, made = [], []
    monkeypatch.setattr(be, "cifar_transforms", lambda augment: asked.append(augment) or ("train_tf", "test_tf"))
    monkeypatch.setattr(be, "random_cifar", lambda n, seed, transform: made.append((n, seed, transform)) or [0] * n)
    be.main(["--device", "cpu", "--images", "6", "--workers", "0"])
    assert asked == [True] and made == [(6, 0, "train_tf")], \
        f"transforms asked with augment={asked}, set made as (n, seed, transform) {made}: not augmented, seed 0"


def test_each_run_builds_its_model_from_torch_seed_0(monkeypatch):
    """The network's initial weights are those of torch.manual_seed(0) for every (impl, mode), whatever
    ran before: the epochs of rpt and float start from the same draws."""
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    built = be.build_model
    draws = []
    monkeypatch.setattr(be, "build_model", lambda *a, **k: draws.append(torch.rand(4)) or built(*a, **k))
    torch.manual_seed(1234)
    be.main(["--device", "cpu", "--impls", "rpt,float", "--images", "4", "--workers", "0"])
    want = torch.rand(4, generator=torch.Generator().manual_seed(0))
    assert len(draws) == len(runs) == 2
    for d in draws:
        assert torch.equal(d, want), f"the model was not built from torch's seed 0: {d} != {want}"


def test_records_name_the_shape_device_and_precisions(tmp_path, monkeypatch):
    """Each record: op train_epoch, the shape "preact_resnet18 b<batch> <images>x3x32x32", the device's
    type, and the precisions by name (4..16 drawn per step for rpt, fp for float)."""
    be = _script("bench_epoch")
    _stub(be, monkeypatch, seconds=2.0, steps=5)
    out = tmp_path / "e.json"
    be.main(["--device", "cpu", "--impls", "float,rpt", "--images", "10", "--batch-size", "2", "--workers", "0",
             "--json", str(out)])
    flt, rpt = json.loads(out.read_text())
    for r in (flt, rpt):
        assert r["op"] == "train_epoch" and r["shape"] == "preact_resnet18 b2 10x3x32x32", r
        assert r["device"] == "cpu" and r["mode"] == "eager" and r["steps"] == 5 and r["images_per_s"] == 5.0, r
    assert flt["precisions"] == ["fp"] and flt["bits"] == 32, flt
    assert rpt["precisions"] == [str(b) for b in range(4, 17)] and rpt["bits"] is None, rpt


def test_a_run_cut_short_keeps_its_records_in_the_partial_file_only(tmp_path, monkeypatch):
    """Stopped in its second epoch, the run has saved the first one's record to FILE.partial after it
    was measured, and FILE (a finished run) is never written."""
    be = _script("bench_epoch")
    _stub(be, monkeypatch)
    fit = be.Trainer.fit
    calls = []

    def fit_then_stop(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        fit(self)

    monkeypatch.setattr(be.Trainer, "fit", fit_then_stop)
    out = tmp_path / "e.json"
    with pytest.raises(KeyboardInterrupt):
        be.main(["--device", "cpu", "--impls", "rpt,float", "--images", "4", "--workers", "0", "--json", str(out)])
    assert not out.exists(), "a run cut short wrote the finished run's file"
    partial = tmp_path / "e.json.partial"
    assert partial.exists(), "the first epoch's record was not saved after it was measured"
    assert [r["impl"] for r in json.loads(partial.read_text())] == ["rpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json.partial"]

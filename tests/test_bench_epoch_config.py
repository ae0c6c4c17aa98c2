"""benchmarks/bench_epoch.py's runs, with dwq.train.Trainer and the data stubbed: each (impl, mode)
trains with the TrainConfig that ``dwq train`` would use for it (random precision and switchable BN
for rpt only; amp and CUDA graphs by mode; the attack's steps; the loader's workers), and its record
is made from the epoch's seconds; lists that select nothing, or a GPU mode off CUDA, are refused."""
import json
import types

import pytest
import torch

from test_benchmarks_cli import _script


def _stub(be, monkeypatch, seconds=0.5, steps=3):
    runs = []

    class FakeTrainer:
        def __init__(self, model, train_set, cfg, out, device, num_workers, on_epoch):
            runs.append(dict(model=model, cfg=cfg, workers=num_workers, device=device))
            self.on_epoch, self.steps_per_epoch = on_epoch, steps

        def fit(self):
            self.on_epoch({"seconds": seconds})

    monkeypatch.setattr(be, "Trainer", FakeTrainer)
    monkeypatch.setattr(be, "random_cifar", lambda n, seed, transform: list(range(n)))
    # (torchvision's transforms are not under test: without it, or with a build for another torch, these ran it)
    monkeypatch.setattr(be, "cifar_transforms", lambda augment: (None, None))
    monkeypatch.setattr(be, "build_model", lambda net, ds, precisions, switchable_bn: (
        types.SimpleNamespace(net=net, precisions=list(precisions), switchable_bn=switchable_bn), net))
    return runs


def test_each_impl_trains_with_its_config_and_its_record(tmp_path, monkeypatch):
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    out = tmp_path / "e.json"
    be.main(["--device", "cpu", "--impls", "rpt,float", "--images", "10", "--batch-size", "4", "--attack-iters", "2",
             "--workers", "3", "--json", str(out)])
    rpt, flt = runs
    assert rpt["model"].switchable_bn is True and flt["model"].switchable_bn is False
    assert rpt["model"].precisions == list(range(4, 17)) and flt["model"].precisions == [None]
    assert rpt["cfg"].random_precision is True and flt["cfg"].random_precision is False
    assert rpt["cfg"].precisions == list(range(4, 17)) and flt["cfg"].precisions == [None]
    for r in runs:
        assert r["cfg"].attack_iters == 2 and r["cfg"].batch_size == 4 and r["cfg"].epochs == 1
        assert r["cfg"].attack == "pgd" and not r["cfg"].amp and not r["cfg"].cuda_graphs and r["workers"] == 3
    recs = json.loads(out.read_text())
    assert [(r["impl"], r["bits"], r["mode"]) for r in recs] == [("rpt", None, "eager"), ("float", 32, "eager")]
    for r in recs:
        assert r["median_ms"] == r["min_ms"] == 500.0 and r["seconds"] == 0.5 and r["steps"] == 3
        assert r["images_per_s"] == 20.0 and r["workers"] == 3 and r["attack_iters"] == 2


def test_modes_set_amp_and_cuda_graphs(monkeypatch, capsys):
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    monkeypatch.setattr(be, "device_arg", lambda parser, name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "stub")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    be.main(["--device", "cuda", "--modes", "eager,graphs,amp,amp_graphs", "--images", "8", "--workers", "0"])
    assert [(r["cfg"].amp, r["cfg"].cuda_graphs) for r in runs] == [(False, False), (False, True), (True, False),
                                                                    (True, True)]


@pytest.mark.parametrize("argv, named", [
    (["--impls", ""], "--impls"),
    (["--modes", " , "], "--modes"),
    (["--device", "cpu", "--modes", "amp"], "--modes amp on cpu"),
    (["--device", "cpu", "--modes", "eager,amp"], "--modes eager,amp on cpu"),
])
def test_selection_that_cannot_run_is_a_usage_error(argv, named, monkeypatch, capsys):
    be = _script("bench_epoch")
    runs = _stub(be, monkeypatch)
    with pytest.raises(SystemExit) as e:
        be.main(argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "error:" in last and named in last and runs == []

"""The benchmark scripts' edges (benchmarks/, run as ``python benchmarks/X.py``): a bad argument is a
usage error naming it (not a traceback from torch, nor a run that measures nothing), and --json is
never left half-written or, after a run cut short, under the name of a finished run."""
import importlib
import json
import os
import pathlib
import signal
import sys

import pytest
from conftest import shell_script

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name):
    """benchmarks/<name>.py as a module (its directory on sys.path, as when it runs as a script)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.mark.parametrize("script, argv, named", [
    ("bench_kernels", ["--threads", "-1"], "--threads"),
    ("bench_models", ["--threads", "0"], "--threads"),
    ("bench_models", ["--cases", "resnet18:32"], "--cases"),
    ("bench_train", ["--device", "nosuch"], "--device nosuch"),
    ("bench_train", ["--reps", "0"], "--reps"),
    # selections that measure nothing (they wrote [] and exited 0)
    ("bench_train", ["--device", "cpu", "--only", "eval_forward", "--modes", "amp"], "amp on cpu: measures nothing"),
    ("bench_train", ["--device", "cpu", "--only", "train_step", "--modes", "graphs"], "--modes graphs on cpu"),
    ("bench_compile", ["--reps", "0"], "--reps"),
    ("bench_compile", ["--device", "gpu"], "--device gpu"),
    ("profile_rpt", ["--bits", "1"], "--bits"),
    ("profile_rpt", ["--batch", "0"], "--batch"),
    ("bench_kernels_cuda", ["--reps", "0"], "--reps"),
    ("bench_layer_host", ["--layers", "0"], "--layers"),
    ("bench_affine", ["--budget", "0"], "--budget"),
    ("bench_affine", ["--threads", "0"], "--threads"),
    ("bench_affine", ["--json", "/nonexistent/a.json"], "--json"),
    ("bench_residual", ["--budget", "0"], "--budget"),
    ("bench_residual", ["--batches", "8", "0"], "--batches"),
    ("bench_residual", ["--preact-batches", "0"], "--preact-batches"),
    ("bench_residual", ["--json", "/nonexistent/r.json"], "--json"),
    ("bench_zp_shift", ["--budget", "0"], "--budget"),
    ("bench_zp_shift", ["--bits", "4", "8"], "--bits must each be 2..7"),
    ("bench_zp_shift", ["--json", "/nonexistent/z.json"], "--json"),
    ("bench_epoch", ["--device", "cpu", "--modes", "graphs"], "--modes graphs on cpu"),
    ("bench_epoch", ["--impls", "int8"], "--impls"),
    ("bench_epoch", ["--modes", "eager,fast"], "--modes"),
    ("bench_epoch", ["--images", "0"], "--images"),
    ("bench_epoch", ["--json", "/nonexistent/e.json"], "--json"),
    ("bench_layer_host", ["--json", "/nonexistent/h.json"], "--json"),
    ("bench_layer_host", ["--pstats", "/tmp"], "--pstats /tmp: is a folder"),
    ("ncu_kernels", ["--out", "/nonexistent/n.csv"], "--out"),
    ("ncu_kernels", [], "give --out FILE.csv"),
    ("deploy_report", ["--checkpoint", "/nonexistent/last.pt"], "/nonexistent/last.pt"),
    # an output folder that is missing: refused before the run, not a traceback after it
    ("bench_train", ["--only", "fake_quantize", "--reps", "1", "--json", "/nonexistent/t.json"], "--json"),
    ("bench_kernels", ["--png", "/nonexistent/k.png"], "--png"),
    ("bench_models", ["--json", "/nonexistent/m.json"], "--json"),
    ("bench_compile", ["--json", "/nonexistent/c.json"], "--json"),
    ("profile_rpt", ["--md", "/nonexistent/p.md"], "--md"),
    ("bench_kernels_cuda", ["--json", "/nonexistent/k.json"], "--json"),
    ("deploy_report", ["--checkpoint", "x.pt", "--json", "/nonexistent/d.json"], "--json"),
    # a folder passed the check and failed the save after the run; a --png without .png wrote NAME.png
    ("bench_models", ["--json", "/tmp"], "--json /tmp: is a folder; give a file name"),
    ("bench_kernels", ["--png", "/tmp"], "--png /tmp: is a folder"),
    # a name ending in "/" passed (abspath drops it) and the save failed after the whole run
    ("bench_layer_host", ["--json", "/tmp/new-folder/"], "--json /tmp/new-folder/: is a folder"),
    # inf passed "> 0" and failed in time_round_robin after the set-up
    ("bench_affine", ["--budget", "inf"], "--budget must be a finite number of seconds > 0, got inf"),
    ("bench_kernels", ["--png", "/tmp/plot"], "--png /tmp/plot: the plot is a PNG file; give a name ending in .png"),
    # an empty path wrote nothing and said nothing, exit 0
    ("bench_kernels", ["--json", ""], "--json: an empty path"),
    ("bench_models", ["--png", ""], "--png: an empty path"),
    ("bench_train", ["--json", ""], "--json: an empty path"),
    ("bench_compile", ["--json", ""], "--json: an empty path"),
    ("profile_rpt", ["--md", ""], "--md: an empty path"),
    ("bench_kernels_cuda", ["--png", ""], "--png: an empty path"),
    ("deploy_report", ["--checkpoint", "x.pt", "--json", ""], "--json: an empty path"),
])
def test_bad_argument_is_a_usage_error_naming_it(script, argv, named, capsys):
    def ran_on(signum, frame):  # (a refusal that broke would run the whole benchmark: minutes)
        raise AssertionError(f"{script} {argv}: not refused within 30 s, so it ran")

    old = signal.signal(signal.SIGALRM, ran_on)
    old_timer = signal.setitimer(signal.ITIMER_REAL, 30)  # (a pytest-timeout's timer is put back after)
    try:
        with pytest.raises(SystemExit) as e:
            _script(script).main(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if old_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the error line (the usage above it names every flag)
    assert e.value.code == 2 and "error:" in last and named in last, err


def test_cuda_device_without_cuda_is_a_usage_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for script in ("bench_train", "bench_compile", "profile_rpt"):
        with pytest.raises(SystemExit) as e:
            _script(script).main(["--device", "cuda"])
        assert e.value.code == 2 and "--device cuda: CUDA is not available" in capsys.readouterr().err, script


def test_interrupted_write_keeps_the_previous_json(tmp_path, monkeypatch):
    """Ctrl-C while finish() writes --json: the previous file stays whole, no temporary file is left."""
    records = _script("records")
    path = tmp_path / "r.json"
    path.write_text('[{"old": 1}]')

    def dump_then_interrupt(obj, f, **kw):
        f.write('[{"op": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(records.json, "dump", dump_then_interrupt)
    args = type("Args", (), {"json": str(path), "png": None})()
    rec = records.record("gemm", "1x1x1", 8, "dwq", 1.0, 1.0)
    with pytest.raises(KeyboardInterrupt):
        records.finish([rec], args, lambda rs, key: "", None, 0.0)
    assert json.loads(path.read_text()) == [{"old": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_bench_train_cut_short_leaves_only_a_partial_file(tmp_path, monkeypatch):
    """A run stopped after its first measurement keeps it in FILE.partial; FILE, which reads as a
    finished run, is written only when the run ends (and the partial file then removed)."""
    bt = _script("bench_train")
    calls = []

    def fake_time_pair(fns, device, reps, warmup):
        calls.append(1)
        if interrupt and len(calls) == 2:
            raise KeyboardInterrupt
        return {k: (1.0, 1.0) for k in fns}

    monkeypatch.setattr(bt, "time_pair", fake_time_pair)
    monkeypatch.setattr(bt, "train_step_fn", lambda impl, *a, **k: bt.labelled(lambda: None, bt.make_model(impl, "cpu"),
                                                                               None))
    path = tmp_path / "t.json"
    argv = ["--device", "cpu", "--only", "train_step", "--modes", "fp32", "amp", "--json", str(path)]
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        bt.main(argv)
    assert not path.exists()
    assert [r["mode"] for r in json.loads((tmp_path / "t.json.partial").read_text())] == ["fp32", "fp32"]
    interrupt, calls[:] = False, []
    bt.main(argv)
    assert [r["mode"] for r in json.loads(path.read_text())] == ["fp32", "fp32", "amp", "amp"]
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_bench_kernels_cuda_saves_progress_as_partial(tmp_path, monkeypatch):
    bkc = _script("bench_kernels_cuda")
    path = tmp_path / "k.json"
    monkeypatch.setitem(bkc.OUT, "json", str(path))
    records = []
    bkc.emit(records, bkc.record("gemm", "1x1x1", 8, "dwq", None, error="raised: x"))
    assert not path.exists() and json.loads((tmp_path / "k.json.partial").read_text()) == records


def test_bench_train_draws_a_new_order_every_rep():
    """time_pair ran float, rpt, rpt_reuse in that order every rep, then rotated it: the same one
    (nearly) always ran after the same one (which costs up to 28% on small shapes)."""
    import torch

    from dwq.deploy.timing import round_orders

    order = []
    fns = {k: (lambda k=k: order.append(k)) for k in ("float", "rpt", "reuse")}
    got = _script("bench_train").time_pair(fns, torch.device("cpu"), reps=6, warmup=0)
    assert order == [k for r in round_orders(fns, 6) for k in r]
    assert len({tuple(order[i:i + 3]) for i in range(0, 18, 3)}) > 3  # more than one order and its rotations
    assert set(got) == set(fns) and all(len(v) == 2 for v in got.values())


def test_deploy_report_refuses_a_checkpoint_it_cannot_report(tmp_path, capsys):
    """A full-precision checkpoint failed in convert(model, []) with a traceback ("precisions must not be
    empty")."""
    from dwq.cli.main import main

    out = tmp_path / "fp"
    assert main(["train", "--out", str(out), "--train-subset", "32", "--batch-size", "32", "--epochs", "1",
                 "--attack", "none", "--val-size", "0", "--width", "8", "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _script("deploy_report").main(["--checkpoint", str(out / "last.pt"), "--latency-only"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "its precision set is full precision only; nothing to convert" in err, err


def test_bench_layer_host_records_what_each_layer_adds(tmp_path):
    out, prof = tmp_path / "h.json", tmp_path / "p.txt"
    _script("bench_layer_host").main(["--device", "cpu", "--layers", "2", "--reps", "2", "--json", str(out),
                                      "--pstats", str(prof)])
    text = prof.read_text()
    assert all(f"## rpt, {m}:" in text for m in ("eval", "eval_amp", "train")) and "quantizers.py" in text
    recs = json.loads(out.read_text())
    assert [(r["mode"], r["impl"]) for r in recs] == [(m, i) for m in ("eval", "eval_amp", "train")
                                                       for i in ("float", "rpt", "rpt_reuse")]
    for r in recs:
        assert r["op"] == "layer_stack" and r["median_ms"] > 0 and r["bits"] == (32 if r["impl"] == "float" else 4)
        f = next(g for g in recs if g["mode"] == r["mode"] and g["impl"] == "float")
        # (per layer: the stack's difference over its 2 layers; the records' times are rounded to 10 ns)
        assert abs(r["us_per_layer_added"] - (r["median_ms"] - f["median_ms"]) * 1e3 / 2) < 0.05


def test_ncu_kernels_target_makes_each_call(capsys, monkeypatch):
    """The calls ncu profiles on the GPU, on tiny shapes on the CPU: each case runs (a wrong signature
    would cost a GPU session its ncu step) and is named, and the engine settings do not outlive it."""
    monkeypatch.delenv("DWQ_CUDA_GEMM", raising=False)
    _script("ncu_kernels").target("cpu", small=True)
    cases = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[ncu_kernels]")]
    assert len(cases) == 7 and "DWQ_CUDA_GEMM" not in os.environ
    assert [c for c in cases if "qconv2d" in c] == ["[ncu_kernels] qconv2d b2 64->64 32x32 3x3 8-bit mma",
                                                    "[ncu_kernels] qconv2d b2 64->64 32x32 3x3 16-bit auto"]


def test_find_ncu_looks_on_path_then_in_the_install_folders(tmp_path, monkeypatch):
    records = _script("records")
    fake = shell_script(tmp_path / "ncu")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert records.find_ncu() == str(fake)
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    versions = ["/opt/nvidia/nsight-compute/2024.1.0/ncu", "/opt/nvidia/nsight-compute/2025.3.1/ncu"]
    monkeypatch.setattr(records.glob, "glob", lambda p: versions if "*" in p else [])
    assert records.find_ncu() == versions[-1]
    monkeypatch.setattr(records.glob, "glob", lambda p: [])
    assert records.find_ncu() is None


def test_find_tool_takes_the_newest_version_by_number(tmp_path):
    """Several installed versions: the highest by number (2025.10.1 after 2025.9.2, not before)."""
    records = _script("records")
    name = "dwq-test-tool-not-on-path"
    for version in ("2025.9.2", "2025.10.1", "2024.12.0"):
        (tmp_path / version).mkdir()
        (tmp_path / version / name).write_text("")
    assert records.find_tool(name, str(tmp_path / "*")) == str(tmp_path / "2025.10.1" / name)
    assert records.find_tool(name, str(tmp_path / "none"), str(tmp_path / "2024*")) == str(tmp_path / "2024.12.0" / name)
    assert records.find_tool(name, str(tmp_path / "none")) is None


@pytest.mark.parametrize("bits", [4, 8])
def test_bench_kernels_cuda_engine_settings(bits, monkeypatch):
    """Each timed engine runs under its own settings (auto_repack: the default engine with the weight
    copy per call, at 8 bits only), and none outlives the shape: on the CPU, with the GPU calls stubbed."""
    import torch

    b = _script("bench_kernels_cuda")
    for var in ("DWQ_CUDA_GEMM", "DWQ_CUDA_WEIGHT_CACHE", "DWQ_CUDA_CHECKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "stub")
    monkeypatch.setattr(b, "WANTED", list(b.ENGINES))
    seen = []

    def env():
        return tuple(os.environ.get(v) for v in ("DWQ_CUDA_GEMM", "DWQ_CUDA_WEIGHT_CACHE", "DWQ_CUDA_CHECKS"))

    monkeypatch.setattr(b, "cuda_time", lambda fn, reps: (fn(), (1.0, 0.9))[1])
    records = []
    monkeypatch.setattr(b, "OUT", {})
    b.time_engines(records, "gemm", "8x8x8", bits, 1e9, lambda: seen.append(("check", *env())) or True,
                   lambda: seen.append(("run", *env())), 3)
    want = [("mma", None), ("wgmma", None), ("wgmma_tma", None), ("wgmma_pp", None), ("auto", None)] + (
        [("auto", "0")] if bits == 8 else [])
    assert seen == [(s, gemm, cache, checks) for gemm, cache in want
                    for s, checks in (("check", None), ("run", "0"))]
    assert [r["impl"] for r in records] == ["dwq", "dwq_wgmma", "dwq_wgmma_tma", "dwq_wgmma_pp", "dwq_auto"] + (
        ["dwq_auto_repack"] if bits == 8 else [])
    assert env() == (None, None, None)


def test_bench_epoch_trains_one_epoch_of_each_impl_as_dwq_train_does(tmp_path):
    from conftest import torchvision_or_skip

    torchvision_or_skip("bench_epoch reads random pixels through torchvision's CIFAR10 and transforms")
    out = tmp_path / "e.json"
    _script("bench_epoch").main(["--device", "cpu", "--impls", "rpt,float", "--images", "10", "--batch-size", "4",
                                 "--attack-iters", "1", "--workers", "0", "--json", str(out)])
    recs = json.loads(out.read_text())
    assert not (tmp_path / "e.json.partial").exists()
    assert [(r["impl"], r["mode"], r["bits"]) for r in recs] == [("rpt", "eager", None), ("float", "eager", 32)]
    for r in recs:
        # 10 images at batch 4: 3 steps (the last one short), as dwq train's loop splits them
        assert r["op"] == "train_epoch" and r["steps"] == 3 and r["seconds"] > 0
        assert r["median_ms"] == r["min_ms"] == pytest.approx(r["seconds"] * 1e3)
        assert r["images_per_s"] == pytest.approx(10 / r["seconds"])
    assert recs[0]["precisions"] == [str(b) for b in range(4, 17)] and recs[1]["precisions"] == ["fp"]


def test_bench_epoch_images_are_torchvision_cifar10_items():
    from conftest import torchvision_or_skip

    import torch

    tv = torchvision_or_skip("bench_epoch's dataset is torchvision's CIFAR10 class")
    from dwq.data import cifar_transforms

    ds = _script("bench_epoch").random_cifar(6, 0, cifar_transforms(augment=False)[0])
    assert isinstance(ds, tv.datasets.CIFAR10) and len(ds) == 6
    x, y = ds[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, torch.from_numpy(ds.data[5]).permute(2, 0, 1).float() / 255) and 0 <= y < 10

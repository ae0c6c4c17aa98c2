"""benchmarks/bench_train.py's main on the CPU with the measured callables and the timing stubbed: the
settings it hands each measurement (batch 32, PGD-7, amp only in the amp mode, half only in the half
mode, the compiled eval in fp32 at the full batch), the warm-up count, --threads, cudnn.benchmark, a
compiled-only eval selection, and the quantizers the fake_quantize records name (8 bits, per channel
on axis 0, torch's baseline on 0..255)."""
import torch
from test_benchmarks_cli import _script


def _stubbed(monkeypatch, call_fns=False):
    bt = _script("bench_train")
    got = {"train": [], "eval": [], "warmup": []}

    def fn(bits):
        f = lambda: None  # noqa: E731
        f.bits, f.precisions, f.layers = bits, ["fp"], 20
        return f

    def time_pair(fns, device, reps, warmup):
        got["warmup"].append(warmup)
        if call_fns:
            for f in fns.values():
                f()
        return {k: (2.0, 1.0) for k in fns}

    monkeypatch.setattr(bt, "time_pair", time_pair)
    monkeypatch.setattr(bt, "train_step_fn", lambda impl, device, batch, steps, amp: got["train"].append(
        (impl, batch, steps, amp)) or fn(None))
    monkeypatch.setattr(bt, "eval_fn", lambda impl, device, batch, half, seed=0, compiled=False: got["eval"].append(
        (impl, batch, half, compiled)) or fn(4))
    return bt, got


def test_main_hands_each_measurement_its_settings(monkeypatch):
    bt, got = _stubbed(monkeypatch)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    bt.main(["--device", "cpu", "--only", "train_step", "--only", "eval_forward", "--threads", "1",
             "--modes", "fp32", "amp", "half", "compiled"])
    assert got["train"] == [(i, 32, 7, amp) for amp in (False, True) for i in ("float", "rpt")]
    assert got["eval"] == ([(i, b, False, False) for b in (32, 1) for i in ("float", "rpt", "rpt_reuse")]
                           + [(i, 32, True, False) for i in ("float", "rpt", "rpt_reuse")]
                           + [(i, 32, False, True) for i in ("float", "rpt")])
    assert set(got["warmup"]) == {1}  # one warm-up call of each on a CPU
    assert threads == [1] and torch.backends.cudnn.benchmark is True


def test_compiled_alone_is_a_selection_that_measures(monkeypatch, capsys):
    bt, got = _stubbed(monkeypatch)
    bt.main(["--device", "cpu", "--only", "eval_forward", "--modes", "compiled"])
    assert got["eval"] == [("float", 32, False, True), ("rpt", 32, False, True)]


def test_fake_quantize_records_name_the_quantizers_that_ran(monkeypatch):
    bt, got = _stubbed(monkeypatch, call_fns=True)
    calls = []
    monkeypatch.setattr(bt, "fake_quantize", lambda x, s, z, bits, axis=None: calls.append(("dwq", bits, axis, s.numel())))
    monkeypatch.setattr(torch, "fake_quantize_per_tensor_affine",
                        lambda x, s, z, lo, hi: calls.append(("torch", s, z, lo, hi)))
    bt.main(["--device", "cpu", "--only", "fake_quantize"])
    n = (16 << 20) // 1024
    assert sorted(calls, key=str) == sorted([("dwq", 8, None, 1), ("dwq", 8, 0, n), ("torch", 0.05, 128, 0, 255)], key=str)

"""benchmarks/bench_models.py's pieces the ratio tests leave open, on a small CNN with the timing stubbed: each
timed impl runs the model and precision its name says (dwq_int the integer model, fake_quant the fake-quant
model at that width under weight reuse, torch_fp32 both layouts at full precision, channels_last for real), with
3..30 repetitions; one model per network across cases; the logits check's 5% threshold; the table's rows
without 16-bit, Brevitas or some fake-quant widths; the plot's panel order; main's refusal when --malloc keep
cannot be set, its run without Brevitas and the print settings it hands to finish()."""
import sys

import pytest
import torch

import dwq
from dwq.quant.quantizers import WeightQuantizer
from test_bench_models_ratios_and_cases import _recs, planned, small  # noqa: F401  (fixtures)
from test_benchmarks_cli import _script


def test_each_timed_impl_runs_the_model_and_precision_it_names(small, monkeypatch):  # noqa: F811
    """Outputs of every timed fn against the model it names at its precision, integer convs run by dwq_int only;
    the fp32_cl network and its activations in channels_last, the NCHW one not; fake-quant weights reused;
    3..30 repetitions."""
    bm, _, _ = small
    layouts = []
    real_conv2d = torch.nn.functional.conv2d

    def conv2d(inp, weight, *a, **k):  # (input, weight) in channels_last, of each conv with 8 input channels
        if weight.shape[1] == 8:
            layouts.append(tuple(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
                                 for t in (inp, weight)))
        return real_conv2d(inp, weight, *a, **k)

    real_qconv2d = dwq.ops.qconv2d

    models, seen = {}, {}
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))  # (bench_case's input)

    def fake(fns, budget_s, min_reps, max_reps):
        m, im = models["small"]
        seen["reps"] = (min_reps, max_reps)
        seen["reuse"] = [q._reuse for q in m.modules() if isinstance(q, WeightQuantizer)]
        want = {"dwq_int": im, "fake_quant": m, "torch_fp32": m, "torch_fp32_cl": m}
        for (impl, b), fn in fns.items():
            layouts.clear()
            int_convs = []
            with monkeypatch.context() as mp:
                mp.setattr(torch.nn.functional, "conv2d", conv2d)
                mp.setattr(dwq.ops, "qconv2d", lambda *a, **k: int_convs.append(1) or real_qconv2d(*a, **k))
                got = fn()
            assert bool(int_convs) == (impl == "dwq_int"), f"{impl} at {b} bits ran {len(int_convs)} integer convs"
            seen[impl, b] = layouts[-1] if layouts else None
            with torch.inference_mode(), dwq.precision(want[impl], None if b == 32 else b):
                ref = want[impl](x)
            assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), f"{impl} at {b} bits: not {want[impl]} at {b}"
        return {k: {"median_ms": 1.0, "min_ms": 0.5} for k in fns}

    monkeypatch.setattr(bm, "time_round_robin", fake)
    bm.bench_case("small", (1, 28, 28), 2, [4, 8], [], 0.1, [], models)
    assert seen.pop("reps") == (3, 30)
    reuse = seen.pop("reuse")
    assert reuse and all(reuse), "fake-quant timed without reuse_quantized_weights"
    # (input, weight) of conv2 (8 input channels) in channels_last
    assert seen[("torch_fp32_cl", 32)] == (True, True) and seen[("torch_fp32", 32)] == (False, False), seen


def test_one_model_per_network_across_its_cases(small):  # noqa: F811
    """Two cases of one network: it is calibrated and converted once."""
    bm, calibrated, _ = small
    models = {}
    bm.bench_case("small", (1, 28, 28), 2, [8], [], 0.1, [], models)
    first = models["small"]
    bm.bench_case("small", (1, 28, 28), 3, [8], [], 0.1, [], models)
    assert calibrated == [[8, None]] and models["small"] is first


@pytest.mark.parametrize("rel, checked", [(0.049, False), (0.05, True), (0.2, True)])
def test_logits_off_by_5_percent_or_more_look_at_the_codes(rel, checked, small, monkeypatch):  # noqa: F811
    """The integer and fake-quant logits' relative difference from 5% on sends the case to the code check
    (which refuses codes off by 2); below 5% the case is timed without it."""
    bm, _, timed = small
    monkeypatch.setattr(bm, "compare", lambda *a: {"8": {"rel_max_diff": rel}})
    monkeypatch.setattr(bm, "code_agreement", lambda *a: {"conv2": {"max_step": 2}})
    if checked:
        with pytest.raises(AssertionError, match="codes differ by 2"):
            bm.bench_case("small", (1, 28, 28), 2, [8], [], 0.1, [], {})
    else:
        bm.bench_case("small", (1, 28, 28), 2, [8], [], 0.1, [], {})
        assert timed


def test_ratio_table_row_without_16_bit_brevitas_or_every_fake_quant_width():
    """No dwq 16-bit record, no Brevitas, fake-quant only at 8 bits: dashes in those columns, the fake-quant
    ratio over the widths it has."""
    bm = _script("bench_models")
    ms = {("torch_fp32", 32): 10.0, ("dwq_int", 4): 4.0, ("dwq_int", 8): 5.0, ("fake_quant", 8): 10.0}
    rows = bm.ratio_table(_recs(bm, "net", "b1 3x8x8", ms)).splitlines()[2:]
    assert rows == ["| net | b1 3x8x8 | 10.00 | 5.00 | 2.00x | 2.00x | - | - |"]


def test_plot_panels_in_batch_order(monkeypatch, tmp_path):
    """One panel per case, batches by number (b8 before b32), fp32 and fp16 as baselines; only the path given
    is written."""
    bm = _script("bench_models")
    panels = []
    monkeypatch.setattr(bm, "latency_axis", lambda ax, rs, lines, baselines, title, ylabel: panels.append(
        (title, [impl for impl, _ in baselines])))
    recs = [bm.record("net", shape, 8, "dwq_int", 1.0, 1.0) for shape in ("b32 3x8x8", "b8 3x8x8")]
    bm.plot(recs, str(tmp_path / "m.png"))
    assert panels == [("net b8 3x8x8", ["torch_fp32", "torch_fp16"]), ("net b32 3x8x8", ["torch_fp32", "torch_fp16"])]
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]


def test_malloc_keep_without_mallopt_is_refused_before_the_run(planned, monkeypatch):  # noqa: F811
    """--malloc keep where keep_freed_memory() cannot set it: an exit naming it, no case run."""
    bm, calls, _ = planned
    monkeypatch.setattr(bm, "keep_freed_memory", lambda: False)
    with pytest.raises(SystemExit, match="--malloc keep: this C library has no glibc mallopt"):
        bm.main(["--quick", "--malloc", "keep"])
    assert calls == []


def test_main_without_brevitas_times_no_brevitas_model(planned, monkeypatch, capsys):  # noqa: F811
    """brevitas not importable: a line says so and no case gets Brevitas widths."""
    bm, calls, _ = planned
    monkeypatch.setitem(sys.modules, "brevitas", None)  # (import brevitas raises ImportError)
    bm.main(["--quick", "--cases", "resnet50:1"])
    assert calls[0] == ("resnet50", 1, [2, 4, 8, 16], [], 3.0), calls
    assert "brevitas is not installed: no brevitas records" in capsys.readouterr().out


def test_main_hands_finish_its_table_plot_and_two_digits(planned, monkeypatch):  # noqa: F811
    """finish() gets bench_models' ratio table and plot, a "network" first column and 2 decimals."""
    bm, _, _ = planned
    got = []
    monkeypatch.setattr(bm, "finish", lambda records, args, table, plot, t0, **kw: got.append((table, plot, kw)))
    bm.main(["--quick", "--cases", "resnet50:1"])
    assert got == [(bm.ratio_table, bm.plot, {"first_column": "network", "digits": 2})]

"""benchmarks/bench_kernels.py's pieces the ratio tests leave open, on tiny shapes with the timing stubbed:
each conv candidate computes what its name says (fp32 on both layouts, dwq at the shape's stride with codes
of its own width out) and both dwq conv checks stop a wrong kernel before anything is timed; the timed GEMM
runs every row and its float epilogue is checked; the codes span every value of their width; the round
robin's repetitions; the table's rows without a 16-bit or 8-bit dwq record; the plot's panels and
baselines; main without Brevitas and the print settings it hands to finish()."""
import sys

import pytest
import torch

from dwq.ops import HAS_EXT
from test_bench_kernels_ratios_and_flags import planned  # noqa: F401  (main with the benchmarks stubbed)
from test_benchmarks_cli import _script

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _candidates(bk, monkeypatch, bench, *args):
    """[(op, shape, cands)] that ``bench`` hands to add_timed (nothing timed)."""
    timed = []
    monkeypatch.setattr(bk, "add_timed", lambda records, op, shape, cands, budget_s: timed.append((op, shape, cands)))
    getattr(bk, bench)(*args)
    return timed


@needs_ext
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_candidates_compute_what_they_name(stride, monkeypatch):
    """fp32 and fp32_cl are the same conv on NCHW and channels_last input; torch_qconv and dwq give the
    shape's output, dwq at the shape's stride requantizing to its own width (4 bits)."""
    bk = _script("bench_kernels")
    ((op, shape, cands),) = _candidates(bk, monkeypatch, "bench_conv", 2, 8, 16, 6, stride, [4], [], [], 0.1)
    assert (op, shape) == ("conv3x3", f"b2 8->16 6x6 s{stride}")
    assert [(impl, bits) for impl, bits, _ in cands] == [("torch_fp32", 32), ("torch_fp32_cl", 32),
                                                         ("torch_qconv", 8), ("dwq", 4)]
    fp, fp_cl, qconv, dwq = (fn() for _, _, fn in cands)
    assert fp.shape == (2, 16, 6 // stride, 6 // stride), fp.shape
    assert fp_cl.is_contiguous(memory_format=torch.channels_last), "torch_fp32_cl did not run on channels_last input"
    assert torch.allclose(fp, fp_cl, atol=1e-5), "the two fp32 layouts compute different convs"
    assert qconv.shape == fp.shape and dwq.shape == fp.shape, (qconv.shape, dwq.shape)
    assert dwq.dtype == torch.uint8 and int(dwq.max()) < 16, (dwq.dtype, int(dwq.max()))
    timed = cands[-1][2]
    assert timed.func is bk.q.qconv2d and timed.args[7] == stride and timed.args[-1] == 4, timed.args[6:]


@needs_ext
@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
def test_timed_conv_codes_spread_over_their_range(bits, monkeypatch):
    """The timed dwq conv's output scale is calibrated for its width: its codes take most values of the
    range, few sit at the zero point and few clamp (a fixed scale put every 2-bit code at the zero point
    and clamped nearly every 16-bit one, so the timed data never reached the requantization's rounding)."""
    bk = _script("bench_kernels")
    ((_, _, cands),) = _candidates(bk, monkeypatch, "bench_conv", 2, 16, 16, 6, 1, [bits], [], [], 0.1)
    y = cands[-1][2]().long()
    zo, top = (1 << bits) // 2, (1 << bits) - 1
    at_zp, clamped = (y == zo).float().mean().item(), ((y == 0) | (y == top)).float().mean().item()
    assert at_zp < 0.8 and clamped < 0.2, f"{bits}-bit codes: {at_zp:.0%} at the zero point, {clamped:.0%} clamped"
    assert y.unique().numel() >= min((1 << bits) - 1, 64), f"{bits}-bit codes take {y.unique().numel()} values"


def test_calibrated_out_scale_spans_three_deviations():
    """calibrated_out_scale maps +-3 standard deviations of the sample onto the code range, as a (1,)
    tensor, and stays positive for a constant sample."""
    records = _script("records")
    y = torch.tensor([-2.0, 0.0, 2.0, 4.0])
    for bits in (2, 8, 16):
        got = records.calibrated_out_scale(y, bits)
        assert got.shape == (1,) and torch.isclose(got, y.std() * 6 / ((1 << bits) - 1)).all(), (bits, got)
    assert records.calibrated_out_scale(torch.ones(5), 8).item() > 0, "a constant sample gives a zero scale"


@needs_ext
@pytest.mark.parametrize("op", ["qconv2d_acc", "qconv2d"])
def test_conv_result_is_checked_before_it_is_timed(op, monkeypatch):
    """A conv kernel one off (the accumulator, or the requantized codes of the timed op) fails the check:
    nothing of the shape is timed."""
    bk = _script("bench_kernels")
    real = getattr(bk.q, op)
    monkeypatch.setattr(bk.q, op, lambda *a: real(*a) + 1)
    with pytest.raises(AssertionError, match="dwq check failed"):
        _candidates(bk, monkeypatch, "bench_conv", 1, 8, 8, 6, 2, [4], [], [], 0.1)


@needs_ext
def test_gemm_times_every_row_and_checks_the_float_epilogue(monkeypatch):
    """The timed dwq GEMM runs all M rows (the check runs 8 of them), and a float epilogue that is off
    fails the check of the timed op before anything is timed."""
    bk = _script("bench_kernels")
    ((_, shape, cands),) = _candidates(bk, monkeypatch, "bench_gemm", 16, 8, 32, [4], [], [], 0.1)
    assert shape == "16x8x32" and cands[-1][:2] == ("dwq", 4)
    assert cands[-1][2]().shape == (16, 8), "the timed GEMM is not the whole M x N product"
    real = bk.q.qlinear
    monkeypatch.setattr(bk.q, "qlinear", lambda *a: real(*a) + 1)
    with pytest.raises(AssertionError, match="float epilogue"):
        _candidates(bk, monkeypatch, "bench_gemm", 16, 8, 32, [4], [], [], 0.1)


@needs_ext
def test_gemm_brevitas_candidate_is_the_same_linear(monkeypatch):
    """The Brevitas layer of a GEMM shape maps K inputs to N outputs (M x N out, as every other candidate)."""
    pytest.importorskip("brevitas")
    bk = _script("bench_kernels")
    ((_, _, cands),) = _candidates(bk, monkeypatch, "bench_gemm", 4, 8, 16, [], [], [8], 0.1)
    assert cands[-1][:2] == ("brevitas", 8)
    with torch.no_grad():
        assert cands[-1][2]().shape == (4, 8)


@pytest.mark.parametrize("bits", [2, 4])
def test_codes_draw_every_value_of_their_width(bits):
    """0 .. 2**bits - 1 all occur (the top code included) in a 64x64 draw."""
    c = _script("bench_kernels").codes((64, 64), bits, torch.Generator().manual_seed(0))
    assert sorted(c.unique().tolist()) == list(range(1 << bits)), sorted(c.unique().tolist())


def test_round_robin_times_at_least_7_and_at_most_60_reps(monkeypatch):
    """The settings bench_kernels gives dwq.deploy.time_round_robin: 7..60 repetitions, warm."""
    bk = _script("bench_kernels")
    seen = []

    def fake(fns, budget_s, min_reps, max_reps, warm=False):
        seen.append((budget_s, min_reps, max_reps, warm))
        return {k: {"median_ms": 2.0, "min_ms": 1.0} for k in fns}

    monkeypatch.setattr(bk, "deploy_time_round_robin", fake)
    assert bk.time_round_robin([("dwq", 8, lambda: None)], 0.5) == [("dwq", 8, 2.0, 1.0)]
    assert seen == [(0.5, 7, 60, True)]


def test_ratio_table_rows_without_a_16_bit_or_an_8_bit_dwq_record():
    """A shape without dwq at 16 bits: its 8-bit latency and dashes; without dwq at 8 bits: no row."""
    bk = _script("bench_kernels")
    rec = bk.record
    recs = [rec("gemm", "a", 8, "dwq", 2.0, 1.0), rec("gemm", "a", 8, "torch_int_mm", 4.0, 3.0),
            rec("gemm", "a", 32, "torch_fp32", 8.0, 6.0),
            rec("gemm", "b", 4, "dwq", 2.0, 1.0), rec("gemm", "b", 16, "dwq", 4.0, 3.0),
            rec("gemm", "b", 8, "torch_int_mm", 4.0, 3.0), rec("gemm", "b", 32, "torch_fp32", 8.0, 6.0)]
    assert bk.ratio_table(recs).splitlines()[2:] == ["| gemm | a | 2.000 | - | - | - |"]


def test_plot_draws_a_panel_per_shape_with_every_baseline(monkeypatch, tmp_path):
    """Four shapes on a 3-column grid: four panels (none lost to the row count), each with the fp32 and
    int8 baselines (int_mm and qlinear for a GEMM); the plot is written to the path given, nothing else."""
    bk = _script("bench_kernels")
    panels = []
    monkeypatch.setattr(bk, "latency_axis", lambda ax, rs, lines, baselines, title, ylabel: panels.append(
        (title, [impl for impl, _ in baselines])))
    recs = [bk.record("gemm", f"{m}x8x8", 8, "dwq", 1.0, 1.0) for m in (1, 2, 3, 4)]
    bk.plot(recs, str(tmp_path / "k.png"))
    assert [t for t, _ in panels] == ["gemm 1x8x8", "gemm 2x8x8", "gemm 3x8x8", "gemm 4x8x8"]
    assert all({"torch_fp32", "torch_int_mm", "torch_qlinear", "torch_qconv"} <= set(b) for _, b in panels), panels
    assert [p.name for p in tmp_path.iterdir()] == ["k.png"]


def test_main_without_brevitas_times_no_brevitas_layer(planned, monkeypatch, capsys):  # noqa: F811
    """brevitas not importable: a line says so and no shape gets Brevitas widths."""
    bk, calls, _ = planned
    monkeypatch.setitem(sys.modules, "brevitas", None)  # (import brevitas raises ImportError)
    bk.main(["--quick"])
    assert calls and all(c[3] == [] for c in calls), {tuple(c[3]) for c in calls}
    assert "brevitas is not installed: no brevitas records" in capsys.readouterr().out


def test_main_hands_finish_its_table_plot_and_three_digits(planned, monkeypatch):  # noqa: F811
    """finish() gets bench_kernels' ratio table and plot, an "op" first column and 3 decimals."""
    bk, _, _ = planned
    got = []
    monkeypatch.setattr(bk, "finish", lambda records, args, table, plot, t0, **kw: got.append((table, plot, kw)))
    bk.main(["--quick"])
    assert got == [(bk.ratio_table, bk.plot, {"first_column": "op", "digits": 3})]

"""benchmarks/bench_zp_shift.py on tiny convs and a tiny model with a stand-in timer: each conv runs at
batch 32 and 1 on channels-last codes, each impl with its own packing (timed warm); the two packings must
differ and their codes and logits agree before anything is timed; the models are built at the timed width;
the records carry each impl's median and min. And main: the models get twice the budget, --bits defaults
to 4 7 and refuses widths outside 2..7, the ratio is offset128 over zp_shift, --json holds the records."""
import json

import pytest
import torch

import dwq.ops as ops
from dwq.deploy import convert
from dwq.models import small_cnn
from test_bench_cpu_ab_helpers import needs_ext
from test_benchmarks_cli import _script

CONVS = [(8, 8, 4, 1), (8, 16, 4, 2)]  # (cin, cout, hw, stride), as bench_kernels.QUICK_CONVS
MS = {"offset128": (2.0, 1.5), "zp_shift": (1.0, 0.5)}  # stand-in (median_ms, min_ms) per impl


def _fake_time_round_robin(timed):
    """A time_round_robin that calls each impl once, keeps its keyword arguments and gives MS's times."""
    def fake(fns, **kw):
        timed.append(kw)
        for f in fns.values():
            f()
        return {k: {"median_ms": MS[k][0], "min_ms": MS[k][1], "reps": 1} for k in fns}
    return fake


@needs_ext
def test_convs_time_each_packing_at_both_batches_on_channels_last_codes(monkeypatch):
    """bench_convs: every conv at batch 32 then 1 and every width, channels-last input codes, each impl
    calling qconv2d with its own blob (offset128: the DWQ_PACK_ZP_SHIFT=0 one), timed warm with the
    script's rep bounds, one record per impl with its median and min at the width that ran."""
    bz = _script("bench_zp_shift")
    monkeypatch.setattr(bz, "QUICK_CONVS", CONVS)
    monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
    packed, calls, timed = [], [], []
    real_both_ways, real_qconv2d = bz.both_ways, ops.qconv2d

    def spy_both_ways(pack):
        packed.append(real_both_ways(pack))
        return packed[-1]

    def spy_qconv2d(x, *args):
        calls.append((x.shape[0], args[2], x.is_contiguous(memory_format=torch.channels_last), args[3]))
        return real_qconv2d(x, *args)

    monkeypatch.setattr(bz, "both_ways", spy_both_ways)
    monkeypatch.setattr(ops, "qconv2d", spy_qconv2d)
    monkeypatch.setattr(bz, "time_round_robin", _fake_time_round_robin(timed))
    records = []
    bz.bench_convs(0.25, [4, 7], records)
    cases = [(b, c, bits) for b in (32, 1) for c in CONVS for bits in (4, 7)]
    conv_shape = _script("records").conv_shape
    assert [(r["op"], r["shape"], r["bits"], r["impl"], r["median_ms"], r["min_ms"]) for r in records] == [
        ("conv3x3", conv_shape(b, *c), bits, impl, *MS[impl]) for b, c, bits in cases for impl in MS], records
    assert timed == [dict(budget_s=0.25, min_reps=10, max_reps=400, warm=True)] * len(cases), timed
    assert all(cl for _, _, cl, _ in calls), "the timed input codes are not channels-last"
    # per case: the check (offset128, zp_shift), then the stand-in timer's call of each
    assert [(n, bits) for n, bits, _, _ in calls] == [(b, bits) for b, _, bits in cases for _ in range(4)]
    blobs = [wp for _, _, _, wp in calls]
    for i, both in enumerate(packed):
        for j, impl in enumerate(2 * list(MS)):
            assert blobs[4 * i + j] is both[impl], f"case {cases[i]}: call {j} of {impl} used another blob"


@needs_ext
def test_convs_refuse_equal_packings_and_codes_that_differ(monkeypatch):
    """Before timing: two packings of the same bytes, or codes that differ between them, are an error."""
    bz = _script("bench_zp_shift")
    monkeypatch.setattr(bz, "QUICK_CONVS", CONVS[:1])
    monkeypatch.setattr(bz, "time_round_robin", lambda *a, **k: pytest.fail("timed before the checks"))
    with monkeypatch.context() as m:
        m.setattr(bz, "both_ways", lambda pack: dict.fromkeys(MS, pack()))
        with pytest.raises(AssertionError, match="the two packings are the same bytes"):
            bz.bench_convs(0.1, [4], [])
    n = iter(range(100))
    monkeypatch.setattr(ops, "qconv2d", lambda *a: torch.full((1,), next(n)))
    with pytest.raises(AssertionError, match="the codes differ"):
        bz.bench_convs(0.1, [4], [])


def _tiny_models(monkeypatch, bz, built):
    monkeypatch.setattr(bz, "MODELS", [("tiny", (1, 28, 28), (2, 1))])

    def build(ps):
        built.append(list(ps))
        return small_cnn(precisions=ps, width=4)
    monkeypatch.setitem(bz.BUILD, "tiny", build)


@needs_ext
def test_models_are_built_at_the_timed_width_and_recorded_per_batch(monkeypatch):
    """bench_models: the model of each width is built with that width only, both conversions are timed
    at each batch (the script's rep bounds, not warm), one record per impl, shape "b<batch> CxHxW"."""
    bz = _script("bench_zp_shift")
    monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
    built, timed = [], []
    _tiny_models(monkeypatch, bz, built)
    monkeypatch.setattr(bz, "time_round_robin", _fake_time_round_robin(timed))
    records = []
    bz.bench_models(0.5, [4, 7], records)
    assert built == [[4], [7]], f"models built with precisions {built}"
    assert [(r["op"], r["shape"], r["bits"], r["impl"], r["median_ms"], r["min_ms"]) for r in records] == [
        ("tiny", f"b{b} 1x28x28", bits, impl, *MS[impl]) for bits in (4, 7) for b in (2, 1) for impl in MS], records
    assert timed == [dict(budget_s=0.5, min_reps=5, max_reps=200)] * 4, timed


@needs_ext
def test_models_refuse_logits_that_differ(monkeypatch):
    """Two integer models whose logits differ are an error before timing."""
    bz = _script("bench_zp_shift")
    _tiny_models(monkeypatch, bz, [])
    monkeypatch.setattr(bz, "time_round_robin", lambda *a, **k: pytest.fail("timed before the logits check"))

    def two_models(pack):
        torch.manual_seed(1)
        other = bz.calibrate(small_cnn(precisions=[4], width=4), (1, 28, 28), [4])
        return {"offset128": pack(), "zp_shift": convert(other, [4])}

    monkeypatch.setattr(bz, "both_ways", two_models)
    with pytest.raises(AssertionError, match="tiny: the logits differ"):
        bz.bench_models(0.1, [4], [])


def test_main_gives_the_models_twice_the_budget_and_tables_offset128_over_zp_shift(tmp_path, monkeypatch, capsys):
    """main: convs get --budget and models twice it, both the default widths 4 7; the ratio table puts
    offset128 over zp_shift; --json holds the records."""
    bz = _script("bench_zp_shift")
    rec = _script("records").record
    ran = []

    def fake_convs(budget, bits, records):
        ran.append(("convs", budget, list(bits)))
        records += [rec("conv3x3", "s", 4, impl, *MS[impl]) for impl in MS]

    monkeypatch.setattr(bz, "start_cpu_run", lambda script, threads: 0.0)
    monkeypatch.setattr(bz, "keep_freed_memory", lambda: True)
    monkeypatch.setattr(bz, "bench_convs", fake_convs)
    monkeypatch.setattr(bz, "bench_models", lambda budget, bits, records: ran.append(("models", budget, list(bits))))
    out = tmp_path / "z.json"
    bz.main(["--budget", "1.5", "--json", str(out)])
    assert ran == [("convs", 1.5, [4, 7]), ("models", 3.0, [4, 7])], ran
    printed = capsys.readouterr().out
    assert "| op | shape | bits | offset128 ms | zp_shift ms | offset128 / zp_shift |" in printed, printed
    assert "| conv3x3 | s | 4 | 2.000 | 1.000 | 2.00x |" in printed, printed  # medians
    assert "| conv3x3 | s | 4 | 1.500 | 0.500 | 3.00x |" in printed, printed  # best-of
    assert [(r["impl"], r["median_ms"]) for r in json.loads(out.read_text())] == [(k, v[0]) for k, v in MS.items()]


@pytest.mark.parametrize("bits", [["1"], ["4", "8"], ["0", "4"]])
def test_main_refuses_widths_outside_2_to_7(bits, monkeypatch, capsys):
    """--bits outside 2..7 is a usage error naming the range, before any work."""
    bz = _script("bench_zp_shift")
    monkeypatch.setattr(bz, "start_cpu_run", lambda *a: pytest.fail(f"--bits {bits} started a run"))
    with pytest.raises(SystemExit) as e:
        bz.main(["--bits", *bits])
    assert e.value.code == 2 and "--bits must each be 2..7" in capsys.readouterr().err

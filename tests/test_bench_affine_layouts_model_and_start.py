"""benchmarks/bench_affine.py on tiny shapes and a one-block-per-stage PreActResNet, with a stand-in
round-robin timer: the op timing runs PreActResNet-18's first shape in both layouts (channels-last as
the integer model passes it, and NCHW) and the others channels-last; the composed FloatAffine forward
it times gives the fused one's codes (within a rounding tie) and float output, ReLU or not; the model
timing runs every codes-out FloatAffine through the composed path (the program without the residual
fusions) and none in the fused one, and puts FloatAffine.forward back after every call; start_cpu_run
sets the threads and names the ISA the engine runs; main gives the model twice the budget."""
import time

import pytest
import torch

import dwq.ops as ops
from dwq.deploy.layers import FloatAffine
from dwq.models.common import QuantPolicy
from dwq.models.preact_resnet import PreActResNet
from test_bench_cpu_ab_helpers import needs_ext
from test_benchmarks_cli import _script


def _records(records):
    return [(r["op"], r["shape"], r["bits"], r["impl"]) for r in records]


def _no_timing(fns, budget_s, min_reps, max_reps):
    return {k: {"median_ms": 1.0, "min_ms": 0.5, "reps": 1} for k in fns}


@needs_ext
def test_ops_run_the_first_shape_in_both_layouts(monkeypatch):
    """Each record's layout is the input's memory format the ops got: the 64-channel shape channels-last
    and NCHW, the others channels-last only."""
    ba = _script("bench_affine")
    monkeypatch.setattr(ba, "SHAPES", [(1, c, 2, 2) for c in (64, 128, 256)])
    monkeypatch.setattr(ba, "time_round_robin", _no_timing)
    seen = []
    real = ops.affine_quantize_act

    def spy(x, *args):
        layout = "channels_last" if x.is_contiguous(memory_format=torch.channels_last) else "nchw"
        seen.append(f"b{x.shape[0]} {x.shape[1]}x2x2 {layout}")
        return real(x, *args)

    monkeypatch.setattr(ops, "affine_quantize_act", spy)
    records = []
    ba.bench_ops(0.1, records)
    names = ["b1 64x2x2 channels_last", "b1 64x2x2 nchw", "b1 128x2x2 channels_last", "b1 256x2x2 channels_last"]
    assert _records(records) == [("affine_quantize", n, 8, impl) for n in names for impl in ("composed", "fused")]
    assert list(dict.fromkeys(seen)) == names, seen


def _affine(relu, out_bits):
    g = torch.Generator().manual_seed(0)
    tensors = {"scale": torch.rand(1, 4, generator=g) + 0.5, "bias": torch.randn(1, 4, generator=g)}
    if out_bits:
        tensors.update(out_scale=torch.tensor([0.037]), out_zero_point=torch.tensor([3], dtype=torch.int32))
    return FloatAffine({"source": "bn", "precisions": ["8"], "channels": 4, "relu": relu, "out_bits": [out_bits]},
                       tensors)


@needs_ext
@pytest.mark.parametrize("relu, out_bits", [(True, 8), (False, 8), (True, None), (False, None)])
def test_composed_forward_gives_the_fused_forwards_output(relu, out_bits):
    """_composed_forward (what the model timing swaps in) on a FloatAffine: the fused forward's codes,
    within a rounding tie, with the layer's own ReLU flag; its float output where it has no codes."""
    ba = _script("bench_affine")
    fa = _affine(relu, out_bits)
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    got, want = ba._composed_forward(fa, x), ba._fused_forward(fa, x)
    assert got.dtype == want.dtype
    if out_bits is None:
        assert torch.equal(got, want)
    else:
        diff = (got.int() - want.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.05, f"relu={relu}: codes differ beyond ties"


@needs_ext
def test_model_runs_every_float_affine_composed_and_restores_the_forward(monkeypatch):
    """bench_model: in the composed impl every FloatAffine with codes out runs the composed path (the
    program without the residual fusions, where each pre-activation batch norm is a FloatAffine), in the
    fused impl none; FloatAffine.forward is the fused one again after every call; records at 8 bits."""
    ba = _script("bench_affine")
    monkeypatch.setattr(FloatAffine, "forward", FloatAffine.forward)  # (put back whatever a failure leaves)
    monkeypatch.setattr(ba, "MODEL_BATCHES", [1])
    monkeypatch.setattr(ba, "preact_resnet18", lambda num_classes, precisions: PreActResNet(
        [1, 1, 1, 1], num_classes, precisions, QuantPolicy(), True, None, None, "cifar10"))
    ims, ran, counts = [], [], {}
    real_convert, real_composed = ba.convert, ba.composed
    monkeypatch.setattr(ba, "convert", lambda *a: ims.append(real_convert(*a)) or ims[-1])
    monkeypatch.setattr(ba, "composed", lambda *a: ran.append(1) or real_composed(*a))

    def time_round_robin(fns, budget_s, min_reps, max_reps):
        for k in reversed(list(fns)):  # (fused first: a forward left swapped would run in it)
            ran.clear()
            fns[k]()
            counts[k] = len(ran)
            assert FloatAffine.forward is ba._fused_forward, f"FloatAffine.forward left swapped after {k}"
        return _no_timing(fns, budget_s, min_reps, max_reps)

    monkeypatch.setattr(ba, "time_round_robin", time_round_robin)
    records = []
    ba.bench_model(0.1, records)
    assert _records(records) == [("preact_resnet18", "b1 3x32x32", 8, impl) for impl in ("composed", "fused")]
    (im,) = ims
    with_codes = sum(m.out_bits[0] is not None for m in im.modules() if isinstance(m, FloatAffine))
    assert with_codes > 1 and counts == {"fused": 0, "composed": with_codes}, (counts, with_codes)


@needs_ext
@pytest.mark.parametrize("env_isa", [None, "avx2"])
def test_start_cpu_run_sets_the_threads_and_names_the_engines_isa(env_isa, monkeypatch, capsys):
    """The ISA printed is DWQ_CPU_ISA where set, else the best one the CPU supports (the one the engine
    picks: the last of supported_cpu_isas); torch's threads are set; the start time is returned."""
    ba = _script("bench_affine")
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    if env_isa is None:
        monkeypatch.delenv("DWQ_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("DWQ_CPU_ISA", env_isa)
    before = time.time()
    t0 = ba.start_cpu_run("bench_affine", 3)
    out = capsys.readouterr().out
    assert threads == [3] and before <= t0 <= time.time()
    isa = env_isa or ops.supported_cpu_isas()[-1]
    assert f" isa={isa} " in out, out


def test_main_gives_the_model_twice_the_budget(monkeypatch):
    ba = _script("bench_affine")
    calls = []
    monkeypatch.setattr(ba, "start_cpu_run", lambda script, threads: calls.append((script, threads)) or 0.0)
    monkeypatch.setattr(ba, "bench_ops", lambda budget, records: calls.append(("ops", budget)))
    monkeypatch.setattr(ba, "bench_model", lambda budget, records: calls.append(("model", budget)))
    monkeypatch.setattr(ba, "finish", lambda records, args, table, plot, t0, digits: calls.append(table))
    ba.main(["--budget", "0.5", "--threads", "1"])
    assert calls == [("bench_affine", 1), ("ops", 0.5), ("model", 1.0), ba.ratio_table]

"""benchmarks/bench_residual.py and bench_affine.py's correctness checks and what they time, on tiny
shapes and models with a stand-in round-robin timer: each impl keeps doing the fused op's work on its
own buffer round after round; the conv timing runs the residual conv with its ReLU on channels-last
uint8 codes; each check before the timing refuses outputs that differ (values, codes, one of the conv's
two outputs, the model's logits, codes beyond a rounding tie); each model program runs its own fused
steps (composed none, fused_add the add + relu ones where the net has conv + add steps, fused the conv
+ add ones too); main hands each part its batches and budget and sets the allocator."""
import pytest
import torch

import dwq.deploy.integer_model as integer_model
import dwq.ops as ops
from dwq.models.common import QuantPolicy
from dwq.models.preact_resnet import PreActResNet
from dwq.models.resnet import ResNet
from test_bench_cpu_ab_helpers import needs_ext
from test_benchmarks_cli import _script

pytestmark = needs_ext
SIDE = 16  # the tiny models' input side


def _tiny_nets(ps):
    """One block per stage: a bottleneck ResNet (its blocks end in conv + add + relu) and a PreActResNet
    (plain adds), in place of ResNet-50 and PreActResNet-18."""
    return {"resnet50": ResNet([1, 1, 1, 1], 10, ps, QuantPolicy(shortcut=True), True, None, None),
            "preact_resnet18": PreActResNet([1, 1, 1, 1], 10, ps, QuantPolicy(), True, None, None, "cifar10")}


@pytest.fixture
def br(monkeypatch):
    """bench_residual on tiny shapes and models."""
    br = _script("bench_residual")
    monkeypatch.setattr(br, "SHAPES", [(8, 4)])
    monkeypatch.setattr(br, "PREACT_SHAPES", [(8, 4)])
    monkeypatch.setattr(br, "CONV3_SHAPES", [(8, 16, 4)])
    monkeypatch.setattr(br, "SIZE", {net: (3, SIDE, SIDE) for net in ("resnet50", "preact_resnet18")})
    monkeypatch.setattr(br, "BUILD", {net: (lambda ps, net=net: _tiny_nets(ps)[net]) for net in br.SIZE})
    return br


def _clone(v):
    return tuple(t.clone() for t in v) if isinstance(v, tuple) else v.clone()


def _rounds(outs, raw=None, rounds=2):
    """A stand-in for time_round_robin that runs each impl ``rounds`` times in turn and appends to
    ``outs`` a copy of each impl's last output, per timing (to ``raw`` the outputs themselves: an impl
    that works in place returns its buffer)."""
    def time_round_robin(fns, budget_s, min_reps, max_reps):
        outs.append({})
        if raw is not None:
            raw.append({})
        for _ in range(rounds):
            for k, f in fns.items():
                out = f()
                outs[-1][k] = _clone(out)
                if raw is not None:
                    raw[-1][k] = out
        return {k: {"median_ms": 2.0 if k == "composed" else 1.0, "min_ms": 0.5, "reps": rounds} for k in fns}
    return time_round_robin


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b)) if isinstance(a, tuple) else torch.equal(a, b)


@pytest.mark.parametrize("bench, ops_bits", [
    ("bench_ops", [("add_relu", 32), ("add_relu_quantize", 8)]),
    ("bench_affine_ops", [("add_affine_quantize", 8)]),
])
def test_each_impl_keeps_doing_the_same_work_on_its_own_buffer(br, bench, ops_bits, monkeypatch):
    """Round after round (each impl rewrites its buffer in place, as the model does), the composed and
    the fused impl of each op still give the same output, and their buffers hold the same values after
    every timing (the ops' shared buffers: the composed add_relu_quantize relus its own too)."""
    outs, raw = [], []
    monkeypatch.setattr(br, "time_round_robin", _rounds(outs, raw))
    records = []
    getattr(br, bench)(0.1, 2, records)
    assert [(r["op"], r["shape"], r["bits"], r["impl"]) for r in records] == [
        (op, "b2 8x4x4 channels_last", bits, impl) for op, bits in ops_bits for impl in ("composed", "fused")]
    assert len(outs) == len(ops_bits)
    for (op, _), got in zip(ops_bits, outs):
        assert _same(got["composed"], got["fused"]), f"{op}: composed and fused differ after two rounds"
    for (op, _), got in zip(ops_bits, raw):
        assert _same(got["composed"], got["fused"]), f"{op}: composed and fused differ after every timing"


def test_conv_ops_time_the_residual_conv_with_relu_on_channels_last_codes(br, monkeypatch):
    """bench_conv_ops: qconv2d_residual gets uint8 channels-last input codes and the ReLU; its two outputs
    (the float sum after the ReLU, the next layer's codes) are the composed ones; the records name the
    shape and 8 bits."""
    outs, calls = [], []
    real = ops.qconv2d_residual

    def spy(x, *args):
        calls.append((x.dtype, x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
                      args[-4]))
        return real(x, *args)

    monkeypatch.setattr(ops, "qconv2d_residual", spy)
    monkeypatch.setattr(br, "time_round_robin", _rounds(outs))
    records = []
    br.bench_conv_ops(0.1, 2, records)
    assert [(r["op"], r["shape"], r["bits"], r["impl"]) for r in records] == [
        ("qconv2d_residual", "b2 8->16x4x4 1x1 channels_last", 8, impl) for impl in ("composed", "fused")]
    assert calls and set(calls) == {(torch.uint8, True, True)}, calls  # (dtype, channels-last, relu)
    (got,) = outs
    assert _same(got["composed"], got["fused"])
    y, codes = got["fused"]
    assert y.shape == codes.shape == (2, 16, 4, 4) and y.min() >= 0


def _plus_one(f):
    return lambda *a: f(*a).add_(1)


def _flip_codes(f):
    """f with the lowest bit of its codes (its last output) flipped."""
    def g(*a):
        out = f(*a)
        return (*out[:-1], out[-1] ^ 1) if isinstance(out, tuple) else out ^ 1
    return g


def _plus_two_codes(f):
    return lambda *a: (f(*a).int() + 2).clamp_(0, 255).to(torch.uint8)


@pytest.mark.parametrize("script, owner, name, wrong, run, says", [
    ("bench_residual", ops, "add_relu_", _plus_one, lambda m: m.bench_ops(0.1, 2, []), "values differ"),
    ("bench_residual", ops, "add_relu_quantize_", _flip_codes, lambda m: m.bench_ops(0.1, 2, []), "codes differ"),
    ("bench_residual", ops, "qconv2d_residual", _flip_codes, lambda m: m.bench_conv_ops(0.1, 2, []),
     "values differ"),
    ("bench_residual", ops, "add_affine_quantize_", _flip_codes, lambda m: m.bench_affine_ops(0.1, 2, []),
     "codes differ"),
    ("bench_residual", integer_model, "add_affine_quantize_", _flip_codes,
     lambda m: m.bench_model("preact_resnet18", 0.1, [2], []), "logits differ"),
    ("bench_affine", ops, "affine_quantize_act", _plus_two_codes, lambda m: m.bench_ops(0.1, []),
     "codes differ beyond ties"),
])
def test_fused_output_that_differs_is_refused_before_the_timing(br, script, owner, name, wrong, run, says, monkeypatch):
    """The check before each timing fails where the fused side's output is wrong (only the codes of the
    conv's two outputs, in the conv's case; the fused program's residual step, in the model's)."""
    m = br if script == "bench_residual" else _script(script)
    if script == "bench_affine":
        monkeypatch.setattr(m, "SHAPES", [(1, 8, 4, 4)])

    def timed(*a, **k):
        raise AssertionError("timed before the check")

    monkeypatch.setattr(m, "time_round_robin", timed)
    monkeypatch.setattr(owner, name, wrong(getattr(owner, name)))
    with pytest.raises(AssertionError, match=says):
        run(m)


FUSED_STEPS = ("add_relu_", "add_relu_quantize_", "add_affine_quantize_", "qconv2d_residual")


@pytest.mark.parametrize("net, fused_steps", [
    ("resnet50", {"composed": set(), "fused_add": {"add_relu_", "add_relu_quantize_"},
                  "fused": {"add_relu_", "qconv2d_residual"}}),
    ("preact_resnet18", {"composed": set(), "fused": {"add_affine_quantize_"}}),
])
def test_model_programs_run_their_own_fused_steps(br, net, fused_steps, monkeypatch):
    """bench_model times the program without fused steps, with all but the conv + add ones (only where the
    net has any: not PreActResNet's plain adds) and with all of them (the fused ops each program's
    forward runs tell them apart), all giving the same logits; the records name the net, the batch and
    8 bits."""
    ran, outs = set(), {}
    for name in FUSED_STEPS:
        real = getattr(integer_model, name)
        monkeypatch.setattr(integer_model, name, lambda *a, name=name, real=real: ran.add(name) or real(*a))

    def time_round_robin(fns, budget_s, min_reps, max_reps):
        for k, f in fns.items():
            ran.clear()
            outs[k] = f()
            outs[k, "steps"] = set(ran)
        return {k: {"median_ms": 1.0, "min_ms": 0.5, "reps": 1} for k in fns}

    monkeypatch.setattr(br, "time_round_robin", time_round_robin)
    records = []
    br.bench_model(net, 0.1, [2], records)
    assert [(r["op"], r["shape"], r["bits"], r["impl"]) for r in records] == [
        (net, f"b2 3x{SIDE}x{SIDE}", 8, impl) for impl in fused_steps]
    assert {impl: outs[impl, "steps"] for impl in fused_steps} == fused_steps
    assert all(torch.equal(outs["composed"], outs[impl]) for impl in fused_steps)


def test_main_hands_each_part_its_batches_and_budget(monkeypatch):
    """The ops at the first --batches (the preact ops at the first --preact-batches), the models at every
    batch with three times the budget; batch 1 is accepted; the allocator set as the dwq command sets it."""
    br = _script("bench_residual")
    calls = []
    for part in ("bench_ops", "bench_conv_ops", "bench_affine_ops"):
        monkeypatch.setattr(br, part, lambda budget, batch, records, part=part: calls.append((part, budget, batch)))
    monkeypatch.setattr(br, "bench_model", lambda net, budget, batches, records: calls.append((net, budget, batches)))
    monkeypatch.setattr(br, "keep_freed_memory", lambda: calls.append("keep_freed_memory"))
    monkeypatch.setattr(br, "start_cpu_run", lambda script, threads: calls.append((script, threads)) or 0.0)
    monkeypatch.setattr(br, "finish", lambda records, args, table, plot, t0, digits: calls.append(table))
    br.main(["--budget", "0.5", "--batches", "4", "1", "--preact-batches", "16", "1", "--threads", "1"])
    assert calls == ["keep_freed_memory", ("bench_residual", 1), ("bench_ops", 0.5, 4), ("bench_conv_ops", 0.5, 4),
                     ("bench_affine_ops", 0.5, 16), ("resnet50", 1.5, [4, 1]), ("preact_resnet18", 1.5, [16, 1]),
                     br.ratio_table]
    calls.clear()
    br.main([])
    assert calls[2:-1] == [("bench_ops", 4.0, 8), ("bench_conv_ops", 4.0, 8), ("bench_affine_ops", 4.0, 128),
                           ("resnet50", 12.0, [8, 1]), ("preact_resnet18", 12.0, [128, 32])]

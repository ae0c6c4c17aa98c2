"""The CPU A/B benchmarks' shared pieces (found by mutation), on tiny inputs with a stand-in timer:
bench_affine's ratio table (before / after), its flags' defaults, the composed reference it times
the fused op against, switched_forward's restore; bench_residual's records and that each impl does
the same work on its own buffer; bench_zp_shift's two packings and the environment it leaves."""
import os

import pytest
import torch

import dwq
import dwq.ops as ops
from dwq.models import small_cnn
from test_benchmarks_cli import _script

needs_ext = pytest.mark.skipif(not ops.HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_ratio_table_puts_the_first_impl_over_the_second():
    ba = _script("bench_affine")
    rec = _script("records").record
    recs = [rec("add_relu", "b1 8x4x4", 32, "fused", 1.5, 1.0), rec("add_relu", "b1 8x4x4", 32, "composed", 3.0, 2.0),
            rec("conv3x3", "s", 4, "offset128", 2.0, 2.0), rec("conv3x3", "s", 4, "zp_shift", 8.0, 4.0)]
    table = ba.ratio_table(recs[:2]).splitlines()
    assert table[0] == "| op | shape | bits | composed ms | fused ms | composed / fused |"
    assert table[2:] == ["| add_relu | b1 8x4x4 | 32 | 3.000 | 1.500 | 2.00x |"]
    assert ba.ratio_table(recs[2:], "min_ms", ("offset128", "zp_shift")).splitlines()[2:] == \
        ["| conv3x3 | s | 4 | 2.000 | 4.000 | 0.50x |"]


def test_cpu_ab_flags_default_to_two_threads_and_the_scripts_budget():
    ba = _script("bench_affine")
    args = ba.parse_cpu_ab(ba.cpu_ab_parser("doc", 3.0), [])
    assert (args.threads, args.budget, args.json, args.png) == (2, 3.0, None, None)


@needs_ext
@pytest.mark.parametrize("relu, zp", [(True, 3), (False, 3), (True, 0)])
def test_the_composed_reference_is_the_fused_ops_codes(relu, zp):
    ba = _script("bench_affine")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 3, generator=g)
    s, b = torch.rand(4, generator=g) + 0.5, torch.randn(4, generator=g)
    qp = (torch.tensor([0.037]), torch.tensor([zp], dtype=torch.int32), 8)
    got, want = ba.composed(x, s, b, relu, *qp).int(), ops.affine_quantize_act(x, s, b, relu, *qp).int()
    assert (got - want).abs().max() <= 1 and (got != want).float().mean() < 0.05  # (a rounding tie at most)
    assert (got.min() >= zp) == relu or zp == 0


def test_switched_forward_restores_after_each_call_and_after_an_error():
    ba = _script("bench_affine")
    m = small_cnn(precisions=[8], width=4)
    with torch.no_grad(), dwq.precision(m, 8):  # (ranges and batch-norm statistics seen, as a trained model's)
        m.train()(torch.rand(4, 1, 28, 28))
    m.eval()
    state = []
    f = ba.switched_forward(m, torch.rand(1, 1, 28, 28), lambda: state.append("on"), lambda: state.append("off"))
    assert f().shape == (1, 10) and state == ["on", "off"]
    bad = ba.switched_forward(m, torch.rand(1, 3, 28, 28), lambda: state.append("on"), lambda: state.append("off"))
    with pytest.raises(ValueError, match="expected input"):  # (3 channels into a 1-channel net)
        bad()
    assert state == ["on", "off", "on", "off"]


@needs_ext
def test_bench_residual_times_the_same_work_per_impl_and_records_it(monkeypatch):
    br = _script("bench_residual")
    monkeypatch.setattr(br, "SHAPES", [(8, 4)])
    seen = {}

    def fake_time_round_robin(fns, budget_s, min_reps, max_reps):
        outs = {k: f().clone() for k, f in fns.items()}  # each impl once, in turn, as a round does
        seen[tuple(fns)] = outs
        return {k: {"median_ms": 2.0 if k == "composed" else 1.0, "min_ms": 0.5, "reps": 1} for k in fns}

    monkeypatch.setattr(br, "time_round_robin", fake_time_round_robin)
    records = []
    br.bench_ops(0.1, 2, records)
    assert [(r["op"], r["shape"], r["bits"], r["impl"], r["median_ms"]) for r in records] == [
        ("add_relu", "b2 8x4x4 channels_last", 32, "composed", 2.0),
        ("add_relu", "b2 8x4x4 channels_last", 32, "fused", 1.0),
        ("add_relu_quantize", "b2 8x4x4 channels_last", 8, "composed", 2.0),
        ("add_relu_quantize", "b2 8x4x4 channels_last", 8, "fused", 1.0)]
    assert len(seen) == 1
    (outs,) = seen.values()
    assert torch.equal(outs["composed"], outs["fused"])


@needs_ext
def test_zp_shift_packs_both_ways_and_leaves_the_environment_as_it_was(monkeypatch):
    bz = _script("bench_zp_shift")
    for before in (None, "0", "1"):  # (a shell's DWQ_PACK_ZP_SHIFT=0 made both sides the offset packing)
        if before is None:
            monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
        else:
            monkeypatch.setenv("DWQ_PACK_ZP_SHIFT", before)
        got = bz.both_ways(lambda: os.environ.get("DWQ_PACK_ZP_SHIFT"))
        assert got == {"offset128": "0", "zp_shift": None}
        assert os.environ.get("DWQ_PACK_ZP_SHIFT") == before
    monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
    w = torch.randint(0, 16, (4, 8, 3, 3), dtype=torch.uint8)
    zw = torch.randint(0, 16, (4,), dtype=torch.int32)
    blobs = bz.both_ways(lambda: ops.pack_conv_weight(w, zw, 4))
    with bz.env_vars(DWQ_PACK_ZP_SHIFT="0"):
        assert torch.equal(blobs["offset128"], ops.pack_conv_weight(w, zw, 4))
    assert torch.equal(blobs["zp_shift"], ops.pack_conv_weight(w, zw, 4))
    assert not torch.equal(blobs["offset128"], blobs["zp_shift"])

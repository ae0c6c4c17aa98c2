"""Eval-mode qparams kept between forwards (dwq.quant.eval_qparams): a tracked range's (scale, zero
point) is computed once, every write to the running buffers is seen, and a range never tracked is
never kept (each batch is quantized with its own range)."""
import copy
import io

import pytest
import torch

from dwq.ops import HAS_EXT
from dwq.ops import quantizer_fused as fused
from dwq.quant import ActQuantizer, normalize_precision

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (the cache serves the fused op)")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
P4 = normalize_precision(4)


@pytest.fixture
def calls(monkeypatch):
    """The act_qparams calls made, as (training,) tuples."""
    made, real = [], fused.act_qparams

    def counting(x, *args):
        made.append(args[-1])
        return real(x, *args)

    monkeypatch.setattr(fused, "act_qparams", counting)
    return made


def fresh(q: ActQuantizer, x: torch.Tensor, bits=4, precision=P4) -> torch.Tensor:
    """What an eval forward of ``q``'s state gives, computed by a new quantizer that has kept nothing."""
    other = ActQuantizer(q.precisions, ema=q.ema).to(q.running_min.device)
    other.load_state_dict(q.state_dict())
    return other.eval()(x, bits, precision)


def trained(device, *batches) -> ActQuantizer:
    q = ActQuantizer([4, 8, None]).to(device).train()
    for b in batches or (torch.tensor([-1.0, 2.0]),):
        q(b.to(device), 4, P4)
    return q.eval()


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_a_tracked_range_is_asked_once(device, calls):
    q = trained(device)
    calls.clear()
    xs = [torch.randn(64, device=device) * (i + 1) for i in range(3)]
    got = [q(x, 4, P4) for x in xs]
    q(xs[0], 8, normalize_precision(8))  # another width, another entry (the 8-bit slot falls back to observed)
    q(xs[1], 8, normalize_precision(8))
    assert calls == [False, False]  # one eval-mode call per width, then the kept result
    for x, y in zip(xs, got):
        assert torch.equal(y, fresh(q, x))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_a_range_never_tracked_is_not_kept(device, calls):
    """Without a tracked range eval uses each batch's own: two batches, two scales."""
    q = ActQuantizer([4, None]).to(device).eval()
    a, b = torch.linspace(-1, 1, 50, device=device), torch.linspace(-4, 4, 50, device=device)
    ya, yb = q(a, 4, P4), q(b, 4, P4)
    assert len(calls) == 2
    assert torch.equal(ya, fresh(q, a)) and torch.equal(yb, fresh(q, b))
    assert yb.max() > 3  # (a's kept range would have clamped b to [-1, 1])


@needs_ext
def test_a_full_precision_batch_that_tracks_nothing_is_not_taken_for_tracked(calls):
    """The pure-PyTorch path (full precision) sets only what the device decides: the host keeps no flag
    for it, so a batch with inf, which tracks nothing, leaves eval on each batch's own range."""
    q = ActQuantizer([4, None]).train()
    q(torch.tensor([0.0, float("inf")]), None, None)
    assert not q.initialized.any()
    q.eval()
    a, b = torch.linspace(-1, 1, 50), torch.linspace(-4, 4, 50)
    assert torch.equal(q(a, 4, P4), fresh(q, a)) and torch.equal(q(b, 4, P4), fresh(q, b))
    q.train()(torch.tensor([-2.0, 3.0]), None, None)  # tracks the observed slot: now device data only
    q.eval()
    calls.clear()
    q(a, 4, P4), q(a, 4, P4)
    assert calls == [False, False]  # not known on the host: asked each time, as without the cache
    q.load_state_dict(q.state_dict())  # a read of the flags
    calls.clear()
    y = [q(x, 4, P4) for x in (a, b)]
    assert calls == [False] and torch.equal(y[1], fresh(q, b))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_every_write_to_the_buffers_is_seen(device):
    q = trained(device)
    x = torch.linspace(-3, 3, 101, device=device)
    writes = [
        lambda: q.set_range(-0.5, 0.5, precision=4),
        lambda: q.running_max.mul_(2),
        lambda: q.running_min.copy_(torch.full_like(q.running_min, -2.0)),
        lambda: q.train()(torch.tensor([-7.0, 7.0], device=device), 4, P4),
        lambda: q.load_state_dict(trained(device, torch.tensor([-0.1, 0.2])).state_dict()),
        lambda: q.reset_parameters(),  # now each batch's own range
        lambda: q.set_range(-1.0, 1.0),
        lambda: q.initialized.fill_(False),
    ]
    before = q(x, 4, P4)
    for i, write in enumerate(writes):
        q(x, 4, P4)
        write()
        q.eval()
        got = q(x, 4, P4)
        assert torch.equal(got, fresh(q, x)), i
        assert not torch.equal(got, before), i  # (each write changes the grid: the test can fail)
        before = got


@needs_ext
def test_copies_moves_and_pickles_keep_nothing_of_the_original(calls):
    q = trained("cpu")
    x = torch.randn(40)
    q(x, 4, P4)
    for other in (copy.deepcopy(q), q.to(torch.float64), _pickled(q)):
        other.set_range(-0.25, 0.25, precision=4) if other is not q else None
        assert torch.equal(other.eval()(x, 4, P4), fresh(other, x))
    assert torch.equal(q(x, 4, P4), fresh(q, x))


def _pickled(q):
    buf = io.BytesIO()
    torch.save(q, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@needs_ext
def test_inference_mode_results_are_not_reused_outside_it():
    q = trained("cpu")
    x = torch.randn(30, requires_grad=True)
    with torch.inference_mode():
        q(x.detach(), 4, P4)
    y = q(x, 4, P4)  # a result kept in inference mode would be an inference tensor, refused by autograd
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    with torch.inference_mode():
        qi = ActQuantizer([4]).eval()  # inference-tensor buffers: no version counter, nothing kept
        qi.set_range(-1.0, 1.0)
        first = qi(x.detach(), 4, P4)
        assert torch.equal(first, fresh(qi, x.detach()))  # (it compared qi's output with itself)
        # written in place, which no version counter records: a kept result would be the old range's
        qi.running_min.fill_(-0.25)
        qi.running_max.fill_(0.25)
        again = qi(x.detach(), 4, P4)
        assert torch.equal(again, fresh(qi, x.detach())) and not torch.equal(again, first)


@needs_ext
def test_a_train_forward_captured_in_a_cuda_graph_ends_the_keeping(calls, monkeypatch):
    """A CUDA graph's replays update the running buffers without bumping their version counters (no
    Python runs): once a train-mode forward was captured, eval asks act_qparams at every forward.
    (Capture stood in for on the CPU; the CUDA test below captures for real.)"""
    q = trained("cpu")
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_initialized", lambda: True)
        m.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
        q.train()(torch.tensor([-3.0, 3.0]), 4, P4)
    q.eval()
    calls.clear()
    x = torch.randn(20)
    q(x, 4, P4), q(x, 4, P4)
    q.load_state_dict(q.state_dict())  # (a read of the flags does not undo it: replays may follow)
    q(x, 4, P4), q(x, 4, P4)
    assert calls == [False] * 4


@needs_ext
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (captures a CUDA graph)")
def test_eval_after_cuda_graph_replays_of_training_reads_the_replayed_ranges():
    q = trained("cuda")
    x_eval = torch.linspace(-3, 3, 101, device="cuda")
    q(x_eval, 4, P4)  # kept
    static = torch.tensor([-1.0, 1.0], device="cuda")
    q.train()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        q(static, 4, P4)  # warm-up
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        q(static, 4, P4)
    for bound in (9.0, 2.0):  # eval between replays: a result kept there would miss the next replays
        static.copy_(torch.tensor([-bound, bound], device="cuda"))
        for _ in range(20):
            g.replay()
        q.eval()
        assert torch.equal(q(x_eval, 4, P4), fresh(q, x_eval)), bound
        assert torch.equal(q(x_eval, 4, P4), fresh(q, x_eval)), bound


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_a_kept_result_serves_only_inputs_the_fused_op_takes(device, calls):
    """The kept qparams are found before the quantizer's own checks (host time): an input the fused op
    does not take (float64, empty) or another spelling of the precision still goes the quantizer's way."""
    q = trained(device)
    x = torch.linspace(-3, 3, 101, device=device)
    y = q(x, 4, P4)
    calls.clear()
    for other in (4, "4", (4, 4)):  # each other spelling asks once, and then has its own entry
        assert torch.equal(q(x, 4, other), y) and torch.equal(q(x, 4, other), y)
    assert calls == [False] * 2  # ((4, 4) is P4's own spelling: kept already)
    y64 = q(x.double(), 4, P4)  # the pure-PyTorch path (no fused kernel for float64)
    assert y64.dtype == torch.float64 and torch.equal(y64, fresh(q, x.double()))
    with pytest.raises(ValueError, match="floating-point"):
        q(torch.arange(5, device=device), 4, P4)  # (the quantizer's own error, not the op's)
    empty = x[:0]
    assert q(empty, 4, P4) is empty
    with pytest.raises(ValueError, match="bits"):
        q(x, 4.0, P4)  # (4.0 == 4 and hashes alike: it must not find the entry of 4)
    with pytest.raises(ValueError, match="precision"):
        q(x, 4, 3)  # (not in the set: refused, as before anything was kept)
    xg = x.clone().requires_grad_()
    q(xg, 4, P4).sum().backward()  # the kept path keeps the straight-through gradient
    assert torch.equal(xg.grad, torch.ones_like(x))

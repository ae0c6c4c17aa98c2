"""dwq.eval protocols on the stub model right at 4 bits and wrong at 8 (tests/test_protocol_edges._ByPrecision):
AutoAttack rand checks the clean image before APGD-CE and runs APGD-CE before APGD-DLR on each batch (the
order its per-image draws follow), the transfer matrix calls on_row before each row's attack and takes each
row from row(p, compute), the paper replica draws the clean precision apart from the inference one, and every
protocol classifies a training model in eval mode and gives it back training."""
import pytest
import torch
from test_protocol_edges import _ByPrecision, _data

from dwq import eval as E
from dwq.eval import protocols as P

# pixel markers (all below the stub's 0.5 mark: classified by precision alone)
CLEAN, RETURNED, ITERATES = 0.25, 0.3, 0.35


class _Recording(_ByPrecision):
    """Records which image a forward classified (by its first pixel's marker)."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def forward(self, x):
        mark = round(float(x.flatten(1)[0, 0]), 2)
        self.events.append({CLEAN: "clean", RETURNED: "returned", ITERATES: "iterates"}[mark])
        return super().forward(x)


def test_autoattack_checks_the_clean_image_then_runs_apgd_ce_then_apgd_dlr(monkeypatch):
    """Per batch: a forward on the clean image (AutoAttack's check), APGD-CE, a forward on what it
    returned, then APGD-DLR and a forward on what it returned; the clean check comes before APGD-CE
    only, not before APGD-DLR."""
    events = []

    def apgd(model, xb, yb, eps, loss, **kw):
        events.append(f"apgd-{loss}")
        mark = lambda v: torch.full_like(xb, v)  # noqa: E731
        return {"x_fooled": mark(ITERATES), "x_best": mark(ITERATES), "returned": mark(RETURNED)}

    monkeypatch.setattr(P, "apgd_eot", apgd)
    x, y = _data(6)
    E.autoattack_rpi(_Recording(events), x, y, [4, 8], 0.1, seed=0, batch_size=3, steps=1, eot_iter=1)
    seen = [e for i, e in enumerate(events) if e != "iterates" and (i == 0 or e != events[i - 1])]
    batch = ["clean", "apgd-ce", "returned", "apgd-dlr", "returned"]
    assert seen == batch * 2, seen


def test_transfer_matrix_calls_on_row_and_takes_each_row_from_row():
    """on_row(p) comes before the attack at p; row(p, compute) gives the row's correctness (a stage read
    back stands for the attack run): its rows make the matrix and the per-image correctness."""
    x, y = _data(4)
    events, given = [], {4: torch.tensor([[True, False, True, True], [False] * 4]),
                         8: torch.tensor([[False] * 4, [True, True, False, False]])}

    def attack(f, xb, yb):
        events.append(("attack", f.precision))
        return xb

    def row(p, compute):
        events.append(("row", p))
        assert torch.equal(compute(), torch.stack([y == 0, y == 1]))  # (what the attack run gives)
        return given[p]

    tm, c = E.transfer_matrix(_ByPrecision(), x, y, [4, 8], attack, return_correct=True,
                              on_row=lambda p: events.append(("on_row", p)), row=row)
    assert events == [("on_row", 4), ("row", 4), ("attack", 4), ("on_row", 8), ("row", 8), ("attack", 8)], events
    assert torch.equal(c, torch.stack([given[4], given[8]]))
    assert tm["acc"] == [[0.75, 0.0], [0.0, 0.5]], tm["acc"]


def test_paper_replica_draws_the_clean_precision_apart_from_the_inference_one():
    """The clean replica's precision is its own draw: over 100 batches it differs from the inference
    draw of the same batch, and each batch's clean count is read at the recorded clean precision."""
    P_, N = 3, 500
    g = torch.Generator().manual_seed(0)
    tm = torch.rand(2, P_, N, generator=g) < 0.5
    clean = torch.rand(P_, N, generator=g) < torch.tensor([[0.2], [0.5], [0.9]])
    r = E.paper_protocol(tm, clean, sampled_batch=5, seed=0)
    inference, cb = r["robust_sampled"]["batches"]["inference"], r["clean_sampled"]["batches"]
    assert cb["precision"] != inference, "the clean precision is the inference draw"
    assert set(cb["precision"]) == set(range(P_))
    assert cb["correct"] == [int(clean[p, 5 * i:5 * i + 5].sum()) for i, p in enumerate(cb["precision"])]


@pytest.mark.parametrize("sampled_batch", [None, 0])
def test_paper_protocol_without_a_replica_batch_has_no_replica(sampled_batch):
    """sampled_batch None or 0: the exact figures alone."""
    r = E.paper_protocol(torch.ones(2, 2, 10, dtype=torch.bool), torch.ones(2, 10, dtype=torch.bool),
                         sampled_batch=sampled_batch)
    assert set(r) == {"robust", "clean"}, set(r)


class _WrongWhileTraining(_ByPrecision):
    """Wrong at every precision in training mode; in eval mode, right at 4 bits and wrong at 8."""

    def forward(self, x):
        out = super().forward(x)
        return torch.tensor([-1.0, 1.0]).expand_as(out) if self.training else out


def _unchanged_apgd(model, xb, yb, eps, **kw):
    return {"x_fooled": xb.clone(), "x_best": xb.clone(), "returned": xb.clone()}


@pytest.mark.parametrize("protocol,figure", [
    (lambda m, x, y: E.clean_accuracy(m, x, y, [4, 8]), lambda r: r["4"]["acc"]),
    (lambda m, x, y: E.robust_accuracy(m, x, y, [4, 8], lambda f, xb, yb: xb), lambda r: r["4"]["acc"]),
    (lambda m, x, y: E.transfer_matrix(m, x, y, [4, 8], lambda f, xb, yb: xb), lambda r: r["acc"][1][0]),
    (lambda m, x, y: E.adaptive_protocol(m, x, y, [4, 8], 0.1, 0.05, 1), lambda r: r["per_precision"]["4"]["acc"]),
    (lambda m, x, y: E.autoattack_rpi(m, x, y, [4, 8], 0.1, steps=1, eot_iter=1), lambda r: r["expected"]["acc"] * 2)],
    ids=["clean", "robust", "transfer", "adaptive", "autoattack"])
def test_a_training_model_is_classified_in_eval_mode(monkeypatch, protocol, figure):
    """A model handed over in training mode is evaluated in eval mode (the stub is right at 4 bits only
    there) and comes back in training mode."""
    monkeypatch.setattr(P, "eot_pgd", lambda fns, xb, *a, **kw: xb.clone())
    monkeypatch.setattr(P, "apgd_eot", _unchanged_apgd)
    m = _WrongWhileTraining().train()
    x, y = _data(6)
    assert figure(protocol(m, x, y)) == 1.0, "classified in training mode"
    assert m.training

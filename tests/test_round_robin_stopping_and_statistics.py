"""dwq.deploy.timing: when time_round_robin stops (min_reps, budget_s measured after the warm-up, max_reps)
and which statistics it reports, on a fake clock that each timed function advances (no real timing)."""
import types

import pytest
import torch

import dwq.deploy.timing as T
from dwq.models import small_cnn


class Clock:
    def __init__(self, start=100.0):
        self.now = start

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=c.perf_counter))
    return c


def _ticking(clock, durations):
    """A function per name whose n-th call advances the clock by durations[name][n] seconds (the last
    value repeated)."""
    def make(ds):
        n = [0]

        def f():
            clock.now += ds[min(n[0], len(ds) - 1)]
            n[0] += 1
        return f
    return {k: make(ds) for k, ds in durations.items()}


def test_min_reps_rounds_are_enough_once_the_budget_has_passed(clock):
    out = T.time_round_robin(_ticking(clock, {"a": [0.25], "b": [0.25]}), budget_s=0.0, min_reps=2, max_reps=10)
    assert [r["reps"] for r in out.values()] == [2, 2]


def test_rounds_go_on_until_the_budget_counted_from_after_the_warm_up(clock):
    # each round takes 0.25 s (of the fake clock): a 1 s budget is 4 rounds; the warm-up (0.25 s) is not counted
    out = T.time_round_robin(_ticking(clock, {"a": [0.125], "b": [0.125]}), budget_s=1.0, min_reps=1, max_reps=50)
    assert [r["reps"] for r in out.values()] == [4, 4]
    # a clock that does not move: max_reps rounds, not fewer
    out = T.time_round_robin(_ticking(clock, {"a": [0.0]}), budget_s=1.0, min_reps=1, max_reps=7)
    assert out["a"]["reps"] == 7


def test_the_median_and_the_minimum_are_reported(clock):
    # one warm-up call (1 s, untimed), then 1, 2 and 9 ms: median 2 (the mean would be 4), min 1
    out = T.time_round_robin(_ticking(clock, {"a": [1.0, 0.001, 0.002, 0.009]}), budget_s=0.0, min_reps=3, max_reps=3)
    assert out["a"]["reps"] == 3
    assert out["a"]["median_ms"] == pytest.approx(2.0) and out["a"]["min_ms"] == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore::UserWarning")  # (an untrained model: only the rounds are looked at)
def test_latency_per_precision_passes_on_its_round_limits(clock):
    m = small_cnn(precisions=[2, 8], width=4)
    lat = T.latency_per_precision(m, torch.rand(1, 1, 28, 28), budget_s=1.0, min_reps=1, max_reps=3)
    assert {k: v["reps"] for k, v in lat.items()} == {"2": 3, "8": 3}  # the clock never reaches the budget

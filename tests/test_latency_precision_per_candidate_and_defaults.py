"""dwq.deploy.timing (found by mutation), on the fake clock of test_round_robin_stopping_and_statistics
(each timed function advances it; no real timing): each precision's figure is that of a forward at that
precision, the round limits' defaults (at least 3 rounds, at most 50), the median of an even count of
rounds, and the orders drawn from a generator seeded with 0 unless another seed is given."""
import random

import pytest
import torch
from test_round_robin_stopping_and_statistics import _ticking, clock  # noqa: F401  (clock: a pytest fixture)

import dwq
import dwq.deploy.timing as T
from dwq.quant import precision_name
from dwq.models import small_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # (an untrained model: only the timing is looked at)


def _model(clock, ms_at):  # noqa: F811
    """A small CNN whose forward advances the fake clock by ``ms_at[precision name]`` ms."""
    m = small_cnn(precisions=[2, 8], width=4)
    m.register_forward_pre_hook(
        lambda mod, args: setattr(clock, "now", clock.now + ms_at[precision_name(dwq.get_precision(mod))] / 1e3))
    return m


def test_each_precision_is_timed_at_that_precision(clock):  # noqa: F811
    m = _model(clock, {"2": 1.0, "8": 4.0})
    dwq.set_precision(m, 8)
    lat = T.latency_per_precision(m, torch.rand(1, 1, 28, 28), budget_s=0.0)
    assert {k: v["median_ms"] for k, v in lat.items()} == pytest.approx({"2": 1.0, "8": 4.0})
    assert dwq.get_precision(m) == 8  # and the precision it had is restored


def test_round_limits_default_to_3_and_50(clock, monkeypatch):  # noqa: F811
    assert T.time_round_robin(_ticking(clock, {"a": [0.0]}), budget_s=0.0)["a"]["reps"] == 3  # a clock that stays
    assert T.time_round_robin(_ticking(clock, {"a": [0.0]}))["a"]["reps"] == 50  # budget_s 1 s by default
    m = _model(clock, {"2": 0.0, "8": 0.0})
    x = torch.rand(1, 1, 28, 28)
    assert {k: v["reps"] for k, v in T.latency_per_precision(m, x, budget_s=0.0).items()} == {"2": 3, "8": 3}
    calls = []
    monkeypatch.setattr(T, "time_round_robin", lambda fns, *args: calls.append((sorted(fns), args)))
    T.latency_per_precision(m, x)
    assert calls == [(["2", "8"], (1.0, 3, 50))]


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two(clock):  # noqa: F811
    # a warm-up call (untimed), then 1, 2, 3 and 9 ms
    out = T.time_round_robin(_ticking(clock, {"a": [1.0, 0.001, 0.002, 0.003, 0.009]}), budget_s=0.0, min_reps=4,
                             max_reps=4)
    assert out["a"]["median_ms"] == pytest.approx(2.5) and out["a"]["min_ms"] == pytest.approx(1.0)


def test_round_orders_are_drawn_from_a_generator_seeded_with_0_by_default():
    rng = random.Random(0)
    want = [rng.sample(list("abcde"), 5) for _ in range(6)]
    assert list(T.round_orders("abcde", 6)) == want
    assert list(T.round_orders("abcde", 6, seed=1)) != want

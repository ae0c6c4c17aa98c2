"""dwq.deploy.timing (found by mutation), on the fake clock of test_round_robin_stopping_and_statistics (each
timed function advances it; no real timing): with ``warm`` only the second of each pair of calls is timed, the
default budget is 1 s of rounds counted after the warm-up, and latency_per_precision times its forwards in
inference mode, keyed by precision name for a mixed and a full precision too."""
import pytest
import torch
from test_round_robin_stopping_and_statistics import _ticking, clock  # noqa: F401  (clock: a pytest fixture)

import dwq.deploy.timing as T
from dwq.models import small_cnn


def test_warm_times_only_the_call_after_the_untimed_one(clock):  # noqa: F811
    """warm=True: each round calls a function twice and times the second call only (the first, 5 ms here,
    is the one that meets the previous candidate's caches)."""
    # the warm-up (1 s), then per round an untimed 5 ms call and a timed 1 ms call
    out = T.time_round_robin(_ticking(clock, {"a": [1.0, 0.005, 0.001, 0.005, 0.001, 0.005, 0.001]}), budget_s=0.0,
                             min_reps=3, max_reps=3, warm=True)
    assert out["a"]["reps"] == 3
    assert out["a"]["median_ms"] == pytest.approx(1.0) and out["a"]["min_ms"] == pytest.approx(1.0), \
        f"the timed call takes 1 ms, the untimed warm call 5 ms: {out}"


@pytest.mark.parametrize("round_s, rounds", [(0.125, 8), (0.25, 4)])
def test_the_default_budget_is_one_second_of_rounds(clock, round_s, rounds):  # noqa: F811
    """Without budget_s, rounds go on until 1 s (after the warm-up) has passed: 8 rounds of 0.125 s, 4 of 0.25 s."""
    out = T.time_round_robin(_ticking(clock, {"a": [round_s / 2], "b": [round_s / 2]}))
    assert [r["reps"] for r in out.values()] == [rounds, rounds], f"want {rounds} rounds within 1 s: {out}"


@pytest.mark.filterwarnings("ignore::UserWarning")  # (an untrained model: only the timing is looked at)
def test_latency_per_precision_times_forwards_in_inference_mode_keyed_by_precision_name():
    """Every timed forward (the warm-up too) runs under torch.inference_mode (no autograd records kept), and
    the keys are precision names: "4w8a" and "fp", not the normalized (4, 8) or None."""
    m = small_cnn(precisions=[(4, 8), None], width=4)
    modes = []
    m.register_forward_pre_hook(lambda mod, args: modes.append(torch.is_inference_mode_enabled()))
    lat = T.latency_per_precision(m, torch.rand(1, 1, 28, 28), budget_s=0.0, min_reps=1, max_reps=1)
    assert set(lat) == {"4w8a", "fp"}, f"keys {set(lat)} are not the precision names"
    assert len(modes) == 4 and all(modes), f"forwards in inference mode: {modes}"

"""Whole-model latency: every candidate timed in turn, repetition by repetition, so that all of them see
the same load of a shared machine (compare ratios measured in one run, not absolute times)."""
import math
import random
import statistics
import time
from typing import Callable, Dict, Optional, Sequence

import torch

from dwq.nn.modes import kept_modes
from dwq.nn.control import precision
from dwq.quant.precision import normalize_set, precision_name

__all__ = ["round_orders", "check_budget", "time_round_robin", "latency_per_precision"]


def round_orders(names: Sequence, rounds: int, seed: int = 0):
    """One order of ``names`` per round, each a permutation drawn from a generator seeded with ``seed``.
    Rotating one fixed order (start one later each round) keeps each name's predecessor the same in
    all but one position a round, and the predecessor's caches and clock (an fp32 conv before torch's
    int8 conv: 1.02 -> 2.05 ms) then bias one candidate in every round."""
    rng = random.Random(seed)
    names = list(names)
    for _ in range(rounds):
        yield rng.sample(names, len(names))


def check_budget(fn: str, budget_s) -> None:
    """ValueError naming ``budget_s`` unless it is a finite number of seconds >= 0 (0: the minimum
    rounds only). A string failed after the work it was to bound, NaN ran every round."""
    if (isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not math.isfinite(budget_s)
            or budget_s < 0):
        raise ValueError(f"{fn}: budget_s must be a finite number of seconds >= 0, got {budget_s!r}")


def time_round_robin(fns: Dict[str, Callable[[], object]], budget_s: float = 1.0, min_reps: int = 3,
                     max_reps: int = 50, warm: bool = False) -> Dict[str, dict]:
    """``{name: {"median_ms", "min_ms", "reps"}}``: one warm-up call each, then rounds over all ``fns``
    until ``min_reps`` rounds are done and ``budget_s`` has passed (at most ``max_reps`` rounds), each
    round in a new random order (:func:`round_orders`), so that all see the same load of a shared
    machine and none always runs after the same one. ``warm``: each timed call comes right after an
    untimed call of the same function, so that it meets its own caches and clock, not those the
    previous candidate left (a kernel's latency in a loop; whole models are timed cold). A function
    that launches GPU work must wait for it itself (as :func:`latency_per_precision` does)."""
    if not fns:
        raise ValueError("time_round_robin: nothing to time (no functions given)")
    check_budget("time_round_robin", budget_s)
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    t_end = time.perf_counter() + budget_s
    for n, order in enumerate(round_orders(fns, max_reps), 1):
        for k in order:
            if warm:
                fns[k]()
            t0 = time.perf_counter()
            fns[k]()
            times[k].append((time.perf_counter() - t0) * 1e3)
        if n >= min_reps and time.perf_counter() >= t_end:
            break
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "reps": len(v)} for k, v in times.items()}


def latency_per_precision(model: torch.nn.Module, x: torch.Tensor, precisions: Optional[Sequence] = None,
                          budget_s: float = 1.0, min_reps: int = 3, max_reps: int = 50) -> Dict[str, dict]:
    """Forward latency of ``model`` on ``x`` at each precision (default: its whole set), in eval and
    inference mode (a model in train mode is put back in it afterwards, its statistics untouched);
    on CUDA each forward is timed until the GPU finishes it. ``{precision name: {"median_ms",
    "min_ms", "reps"}}``."""
    from dwq.nn.control import precision_set

    check_budget("latency_per_precision", budget_s)
    ps = precision_set(model) if precisions is None else normalize_set(precisions, "latency_per_precision: precisions")
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def run_at(p):
        def f():
            with torch.inference_mode(), precision(model, p):
                out = model(x)
            sync()
            return out
        return f

    with kept_modes(model):
        model.eval()  # a train-mode forward would update every precision's BN statistics and ranges
        return time_round_robin({precision_name(p): run_at(p) for p in ps}, budget_s, min_reps, max_reps)

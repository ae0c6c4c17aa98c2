"""Whole-model latency: every candidate timed in turn, repetition by repetition, so that all of them see
the same load of a shared machine (compare ratios measured in one run, not absolute times)."""
import statistics
import time
from typing import Callable, Dict, Optional, Sequence

import torch

from dwq.nn.modes import kept_modes
from dwq.nn.control import precision
from dwq.quant.precision import precision_list, precision_name

__all__ = ["time_round_robin", "latency_per_precision"]


def time_round_robin(fns: Dict[str, Callable[[], object]], budget_s: float = 1.0, min_reps: int = 3,
                     max_reps: int = 50) -> Dict[str, dict]:
    """``{name: {"median_ms", "min_ms", "reps"}}``: one warm-up call each, then rounds over all ``fns``
    until ``min_reps`` rounds are done and ``budget_s`` has passed (at most ``max_reps`` rounds). Each
    round starts one function later, so that none always runs after the same one (the caches it
    leaves cost the next one up to 28% on small shapes). A function that launches GPU work must wait
    for it itself (as :func:`latency_per_precision` does)."""
    if not fns:
        raise ValueError("time_round_robin: nothing to time (no functions given)")
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    t_end = time.perf_counter() + budget_s
    names = list(fns)
    rnd = 0
    while True:
        for j in range(len(names)):
            k = names[(rnd + j) % len(names)]
            t0 = time.perf_counter()
            fns[k]()
            times[k].append((time.perf_counter() - t0) * 1e3)
        rnd += 1
        n = len(next(iter(times.values())))
        if n >= max_reps or (n >= min_reps and time.perf_counter() >= t_end):
            break
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "reps": len(v)} for k, v in times.items()}


def latency_per_precision(model: torch.nn.Module, x: torch.Tensor, precisions: Optional[Sequence] = None,
                          budget_s: float = 1.0, min_reps: int = 3, max_reps: int = 50) -> Dict[str, dict]:
    """Forward latency of ``model`` on ``x`` at each precision (default: its whole set), in eval and
    inference mode (a model in train mode is put back in it afterwards, its statistics untouched);
    on CUDA each forward is timed until the GPU finishes it. ``{precision name: {"median_ms",
    "min_ms", "reps"}}``."""
    from dwq.nn.control import precision_set

    ps = precision_set(model) if precisions is None else precision_list(precisions, "latency_per_precision: precisions")
    if not ps:
        raise ValueError("latency_per_precision: no precision to time")
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

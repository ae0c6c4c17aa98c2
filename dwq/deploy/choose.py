"""Hardware-aware precision sets: from measured latency per precision, the largest set whose expected
latency under Random Precision Inference (a uniform draw per forward) fits a budget.

On 8-bit integer hardware every width 2..8 costs the same (x86 has no sub-byte multiply), so a
2..8 set is as fast as 8 bits alone, while 9..16 bits take several 8-bit passes: the latency, not
the bit width, decides what a set costs.
"""
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

from dwq.quant.cost import CostReport
from dwq.quant.precision import normalize_precision, parse_precision, precision_list, precision_name, user_precision

__all__ = ["PrecisionChoice", "choose_precisions", "latency_from_records", "record_bits", "RECORD_FP_BITS"]

RECORD_FP_BITS = 32  # a benchmark record's "bits" at full precision (float32): dwq bench and benchmarks/ write it


def record_bits(p):
    """A benchmark record's ``bits`` for precision ``p`` (any spelling): the width when weights and
    activations share it, :data:`RECORD_FP_BITS` at full precision, else the name ("4w8a")."""
    q = normalize_precision(parse_precision(p) if isinstance(p, str) else p)
    if q is None:
        return RECORD_FP_BITS
    return q[0] if q[0] == q[1] else precision_name(q)


@dataclass
class PrecisionChoice:
    """The proposed set (cheapest first), its expected latency (ms, mean over the set), the budget, the
    latency of every candidate, and the set's mean BitOPs per image when a cost report was given."""

    precisions: list
    expected_latency_ms: float
    budget_ms: float
    latency_ms: Dict[str, float] = field(default_factory=dict)
    mean_bitops: Optional[float] = None

    def to_json(self) -> dict:
        return {"precisions": [precision_name(p) for p in self.precisions],
                "expected_latency_ms": self.expected_latency_ms, "budget_ms": self.budget_ms,
                "latency_ms": self.latency_ms, "mean_bitops": self.mean_bitops}


def latency_from_records(records: Union[str, os.PathLike, Sequence[dict]], impl: str = "dwq_int",
                         shape: Optional[str] = None, op: Optional[str] = None) -> Dict[str, float]:
    """Median latency per precision from benchmark records (``benchmarks/bench_models.py`` / ``dwq bench``
    JSON: a path or the list of ``{"op", "shape", "bits", "impl", "median_ms"}`` records) of one ``impl``,
    one ``op`` (the network) and one ``shape`` (each required when the records hold several). Keys are
    precision names ("4"). ValueError for two records of the same precision (runs concatenated)."""
    if isinstance(records, (str, os.PathLike)):
        with open(records) as f:
            records = json.load(f)
    # (another dwq JSON, e.g. dwq eval's report, failed with "'str' object has no attribute 'get'")
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, Mapping) for r in records):
        got = type(records).__name__ if not isinstance(records, (list, tuple)) else \
            f"an item of type {next(type(r).__name__ for r in records if not isinstance(r, Mapping))}"
        raise ValueError(f"latency_from_records: records must be a list of {{\"op\", \"shape\", \"bits\", "
                         f"\"impl\", \"median_ms\"}} records (dwq bench --json), got {got}")
    rows = [r for r in records if r.get("impl") == impl]
    for key, want in (("op", op), ("shape", shape)):
        have = sorted({str(r.get(key)) for r in rows})
        if want is None and len(have) > 1:
            raise ValueError(f"the records hold several {key}s {have}; pass {key}=")
        rows = [r for r in rows if want is None or r.get(key) == want]
    if not rows:
        raise ValueError(f"no {impl!r} records" + "".join(f" of {k} {v!r}" for k, v in (("op", op), ("shape", shape)) if v))
    out = {}
    for r in rows:
        where = f"the {impl!r} record of op {r.get('op')!r} shape {r.get('shape')!r}"
        missing = [k for k in ("bits", "median_ms") if k not in r]
        if missing:
            raise ValueError(f"latency_from_records: {where} has no {' or '.join(repr(k) for k in missing)}")
        try:
            name = precision_name(None if r["bits"] == RECORD_FP_BITS else r["bits"])
        except ValueError as e:
            raise ValueError(f"latency_from_records: {where}: bits {r['bits']!r}: {e}") from None
        if name in out:
            raise ValueError(f"the records hold precision {name} of {r.get('op')!r} {r.get('shape')!r} twice")
        out[name] = _ms(name, r["median_ms"])
    return out


def _ms(name: str, v) -> float:
    # latency_per_precision's {"median_ms": ...} rows are taken as they come
    v = v["median_ms"] if isinstance(v, Mapping) and "median_ms" in v else v
    try:  # (a string "1.0ms" or None failed in float() without naming the precision; True was 1 ms)
        ms = float(v) if not isinstance(v, (bool, str)) else math.nan
    except (TypeError, ValueError):
        ms = math.nan
    if not (math.isfinite(ms) and ms >= 0):
        raise ValueError(f"the latency of precision {name} must be a finite number of ms >= 0, got {v!r}")
    return ms


def _set_order(p):
    """Sort key of a normalized precision: widths up, full precision last."""
    return (99, 99) if p is None else p


def choose_precisions(latency: Mapping, budget_ms: float, candidates: Optional[Sequence] = None,
                      cost: Optional[CostReport] = None) -> PrecisionChoice:
    """The largest subset of ``candidates`` whose mean latency fits ``budget_ms``.

    latency: ``{precision: ms}`` (keys in any spelling: 4, "4", "4w8a", None/"fp"; values in ms or
    ``{"median_ms": ms, ...}``), e.g. from :func:`dwq.deploy.latency_per_precision` or
    :func:`latency_from_records`. budget_ms: finite and > 0. candidates: default every
    precision in ``latency``. For a given size the cheapest precisions give the lowest mean, so the
    answer is the k cheapest for the largest k that fits (ties in latency: the lower width first),
    given in set order (widths up, full precision last).
    cost: a :class:`dwq.quant.cost.CostReport` of the model (``dwq.quant.cost.profile``) to report the
    set's mean BitOPs per image. ValueError if no candidate alone fits the budget.
    """
    if not (isinstance(budget_ms, (int, float)) and not isinstance(budget_ms, bool) and math.isfinite(budget_ms)
            and budget_ms > 0):
        raise ValueError(f"budget_ms must be a finite number of ms > 0, got {budget_ms!r}")
    if not isinstance(latency, Mapping):
        raise ValueError(f"choose_precisions: latency must be a mapping {{precision: ms}}, got a "
                         f"{type(latency).__name__}" + ("; for benchmark records use latency_from_records"
                                                        if isinstance(latency, (list, tuple)) else ""))
    if cost is not None and not isinstance(cost, CostReport):
        raise ValueError(f"choose_precisions: cost must be a dwq.quant.cost.CostReport (profile(model, "
                         f"input_size)), got a {type(cost).__name__}")
    lat = {}
    for k, v in latency.items():
        p = normalize_precision(parse_precision(k) if isinstance(k, str) else k)
        if p in lat:
            raise ValueError(f"latency gives precision {precision_name(p)} twice (as {k!r} too)")
        lat[p] = _ms(precision_name(p), v)
    cands = [normalize_precision(p) for p in (precision_list(candidates, "candidates") if candidates is not None else lat)]
    missing = [precision_name(p) for p in cands if p not in lat]
    if missing:
        raise ValueError(f"no latency measured for candidate precision(s) {missing}")
    if not cands:
        raise ValueError("choose_precisions: no candidates")
    order = sorted(set(cands), key=lambda p: (lat[p], _set_order(p)))
    best: List = []
    total = 0.0
    for p in order:
        # (a mean equal to the budget fits, whatever the rounding of the sum)
        if (total + lat[p]) / (len(best) + 1) > budget_ms * (1 + 1e-9):
            break
        best.append(p)
        total += lat[p]
    if not best:
        p = order[0]
        raise ValueError(f"no precision fits a budget of {budget_ms} ms: the fastest, {precision_name(p)}, "
                         f"takes {lat[p]:.3g} ms")
    # in set order, not by latency: "4 8 2" read as a ranking
    chosen = [user_precision(p) for p in sorted(best, key=_set_order)]
    return PrecisionChoice(chosen, total / len(best), float(budget_ms),
                           {precision_name(p): lat[p] for p in order},
                           cost.mean_bitops(chosen) if cost is not None else None)

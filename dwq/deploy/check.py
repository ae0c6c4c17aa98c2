"""Convert a model and check the result in one call: agreement with the fake-quant model, accuracy,
latency per precision against the fake-quant model, and bytes. ``dwq demo`` ends with it."""
import time
from typing import Optional, Sequence

import torch
from torch import nn

from dwq.deploy.agreement import _check_batch, compare, format_comparison
from dwq.deploy.artifact import size_report
from dwq.deploy.convert import calibrated_precisions, convert
from dwq.deploy.timing import check_budget, time_round_robin
from dwq.nn.control import precision, precision_set
from dwq.nn.modes import kept_modes
from dwq.quant.precision import normalize_set, precision_name

__all__ = ["check_conversion", "format_check"]


def check_conversion(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None,
                     precisions: Optional[Sequence] = None, latency_batch: int = 100,
                     budget_s: float = 2.0) -> dict:
    """Converts ``model`` at ``precisions`` and reports, per precision: agreement with the fake-quant
    model on ``x`` (see :func:`dwq.deploy.compare`), accuracy of both on labels ``y`` if given, and the
    latency (median ms) of a batch of ``latency_batch`` images on both; plus the size report and the
    seconds it all took. JSON-ready. The model runs in eval mode throughout and gets its modules' modes
    back after. Precisions without an activation range in some layer (a model that never saw a training
    batch) are listed under ``"skipped"`` instead of failing the check."""
    # before the conversion, not after it; a latency_batch of 0 timed x[:0] (nothing), -1 all images but one
    _check_batch("check_conversion", x, latency_batch, y, batch_name="latency_batch")
    check_budget("check_conversion", budget_s)
    with kept_modes(model):
        model.eval()
        return _check(model, x, y, precisions, latency_batch, budget_s)


def _check(model, x, y, precisions, latency_batch, budget_s):
    t0 = time.time()
    # ([] reported an empty check as if it had passed)
    asked = precision_set(model) if precisions is None else normalize_set(precisions, "check_conversion: precisions")
    ok = calibrated_precisions(model, asked)
    skipped = [precision_name(p) for p in asked if p not in ok]
    if not ok:
        return {"precisions": [], "skipped": skipped, "seconds": time.time() - t0}
    int_model = convert(model, ok)
    ps = int_model.precisions
    t_convert = time.time() - t0
    out = {"precisions": [precision_name(p) for p in ps], "skipped": skipped, "convert_seconds": t_convert,
           "agreement": compare(model, int_model, x, ps, y=y)}
    if y is not None:
        out["accuracy"] = {p: {"fake_quant": r.pop("fq_accuracy"), "dwq_int": r.pop("int_accuracy")}
                           for p, r in out["agreement"].items()}
    xb = x[:latency_batch]
    sync = torch.cuda.synchronize if xb.is_cuda else (lambda: None)  # (else only the launches were timed)
    fns = {}
    for p in ps:
        for impl, m in (("dwq_int", int_model), ("fake_quant", model)):
            def run(m=m, p=p):
                with torch.inference_mode(), precision(m, p):
                    out = m(xb)
                sync()
                return out
            fns[(impl, precision_name(p))] = run
    timed = time_round_robin(fns, budget_s=budget_s, min_reps=5)  # medians of >= 5 rounds: a few ms each
    out["latency_batch"] = len(xb)
    out["latency_ms"] = {impl: {p: timed[(impl, p)]["median_ms"] for p in out["precisions"]}
                         for impl in ("dwq_int", "fake_quant")}
    out["sizes"] = size_report(int_model)
    out["seconds"] = time.time() - t0
    return out


def format_check(rep: dict, title: str = "integer model") -> str:
    """:func:`check_conversion`'s result as text, headed by ``title``."""
    skipped = (f"not converted (no activation range: never trained): {' '.join(rep['skipped'])}"
               if rep.get("skipped") else "")
    if not rep["precisions"]:
        return f"{title}: {skipped}"
    lines = [f"{title}: logits against the fake-quant model on {rep['agreement'][rep['precisions'][0]]['n']} images",
             format_comparison(rep["agreement"]), "",
             f"{'precision':>9} {'int ms':>8} {'fq ms':>8} {'speed-up':>8}"
             + (f" {'int acc':>8} {'fq acc':>8}" if "accuracy" in rep else "") + f" {'weights':>9}"]
    sizes = {r["precision"]: r for r in rep["sizes"]}
    for p in rep["precisions"]:
        i, f = rep["latency_ms"]["dwq_int"][p], rep["latency_ms"]["fake_quant"][p]
        row = f"{p:>9} {i:>8.3f} {f:>8.3f} {f / i:>7.2f}x"
        if "accuracy" in rep:
            a = rep["accuracy"][p]
            row += f" {100 * a['dwq_int']:>7.1f}% {100 * a['fake_quant']:>7.1f}%"
        s = sizes[p]
        row += f" {s['weight_bytes'] / 1e3:>6.1f} kB" if s["weight_bytes"] else f" {'float':>9}"
        lines.append(row)
    lines.append(f"(latency: batch of {rep['latency_batch']}, median ms; conversion {rep['convert_seconds']:.1f} s, "
                 f"this check {rep['seconds']:.1f} s)")
    if skipped:
        lines.append(skipped)
    return "\n".join(lines)

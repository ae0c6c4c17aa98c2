"""The deploy numbers of the README for a trained MNIST-5k checkpoint (e.g. the demo's RPT model,
``runs/demo-*/rpt/last.pt``): integer vs fake-quant agreement on the 1,000 test images, where codes
first differ, the paper and adaptive protocols on the integer path (straight-through gradients) against
the fake-quant model, latency per precision and the precision sets that fit a range of budgets.

    python benchmarks/deploy_report.py --checkpoint CKPT [--n-attack 500] [--json FILE]

Prints everything; writes JSON only where --json says.
"""
import argparse
import os
import sys
import time

import torch

from dwq import eval as E
from dwq.cli.common import CLIError, existing_checkpoint, path_arg, positive_int, threads_arg
from dwq.data import load_mnist5k
from dwq.deploy import (StraightThrough, choose_precisions, code_agreement, compare, convert, format_comparison,
                        latency_per_precision)
from dwq.models import build_model
from dwq.nn import precision as dwq_precision
from dwq.nn import precision_set
from dwq.quant.cost import profile
from dwq.quant.precision import MAX_BITS, MIN_BITS, precision_name
from dwq.train import CheckpointError, load_trained_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from records import output_paths, save_json  # noqa: E402  (benchmarks/records.py)

EPS, STEPS = 0.1, 10  # the demo's evaluation attack: PGD-10, step eps/4, random start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="an MNIST-5k checkpoint from dwq train / dwq demo")
    p.add_argument("--n-attack", type=positive_int, default=500, help="test images for the two protocols")
    p.add_argument("--threads", type=threads_arg, default=2, help="torch threads")
    p.add_argument("--json", type=path_arg, help="write the report here")
    p.add_argument("--latency-only", action="store_true", help="skip agreement and protocols")
    a = p.parse_args(argv)
    output_paths(p, a, "json")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    try:
        existing_checkpoint(a.checkpoint)
        model, ck = load_trained_model(a.checkpoint)
    except (CLIError, CheckpointError) as e:
        p.error(str(e))
    dataset = ck["config"]["extra"].get("dataset")
    if dataset != "mnist5k":  # (its test images and 1x28x28 inputs are MNIST-5k's)
        p.error(f"--checkpoint {a.checkpoint}: a {dataset} model; this report runs on the MNIST-5k test images")
    ps = [q for q in precision_set(model) if q is not None]
    if not ps:  # (convert(model, []) raised "precisions must not be empty" as a traceback)
        p.error(f"--checkpoint {a.checkpoint}: its precision set is full precision only; nothing to convert")
    im = convert(model, ps)
    x, y = load_mnist5k("test").tensors
    rep = {"checkpoint": a.checkpoint, "precisions": [precision_name(q) for q in ps]}

    if not a.latency_only:
        agreement_and_protocols(model, im, x, y, ps, a.n_attack, rep)
    latency_tradeoff(a.checkpoint, x, rep)
    rep["seconds"] = time.time() - t0
    if a.json:
        save_json(a.json, rep)
    print(f"total {rep['seconds']:.0f}s")


def agreement_and_protocols(model, im, x, y, ps, n_attack, rep):
    rep["agreement"] = compare(model, im, x)
    print(f"integer vs fake-quant, {len(x)} MNIST-5k test images")
    print(format_comparison(rep["agreement"]))
    rep["codes"] = {}
    for q in ps:
        ca = code_agreement(model, im, x, q)
        rep["codes"][precision_name(q)] = ca
        print(f"  codes at {precision_name(q)} bits: " + ", ".join(
            f"{k} {v['differ']}/{v['codes']} differ (max {v['max_step']})" for k, v in ca.items()))

    xa, ya = x[:n_attack], y[:n_attack]
    st = StraightThrough(im, model)
    rep["protocols"] = {}
    for name, m in (("fake_quant", model), ("dwq_int", st)):
        r = E.evaluate(m, xa, ya, ps, attack="pgd", epsilon=EPS, alpha=EPS / 4, steps=STEPS,
                       protocols=("paper", "adaptive"), seed=0, per_image=False)["rpi"]
        rep["protocols"][name] = {"clean": r["clean"], "pgd_paper": r["pgd_paper"], "pgd_adaptive": r["pgd_adaptive"],
                                  "worst_case": r["pgd_adaptive_worst_case"]}
    print(f"\nRPI protocols on {len(ya)} images (PGD-{STEPS}, eps {EPS}), accuracy % [95% CI]:")
    for k in ("clean", "pgd_paper", "pgd_adaptive", "worst_case"):
        row = "  ".join(f"{n}: {100 * r[k]['acc']:.1f} [{100 * r[k]['ci95'][0]:.1f}, {100 * r[k]['ci95'][1]:.1f}]"
                        for n, r in rep["protocols"].items())
        print(f"  {k:<13} {row}")


def latency_tradeoff(checkpoint, x, rep):
    # Latency does not depend on the weights: the same architecture at every width 2..16 shows the trade-off.
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]["extra"]
    widths = list(range(MIN_BITS, MAX_BITS + 1))
    wide, _ = build_model(ck["network"], ck["dataset"], widths, True, ck.get("width", 32))
    g = torch.Generator().manual_seed(0)
    wide.train()
    with torch.no_grad():
        for b in widths:
            with dwq_precision(wide, b):
                wide(torch.rand(64, 1, 28, 28, generator=g))
    wide_int = convert(wide.eval())
    rep["latency_ms"] = {}
    for bs in (1, 100):
        lat = latency_per_precision(wide_int, x[:bs], budget_s=6.0, max_reps=200)
        rep["latency_ms"][f"b{bs}"] = {k: v["median_ms"] for k, v in lat.items()}
        rep.setdefault("latency_min_ms", {})[f"b{bs}"] = {k: v["min_ms"] for k, v in lat.items()}
        print(f"\nlatency per width, batch {bs} (median ms): " + " ".join(f"{k}: {v:.3f}" for k, v in
                                                                      rep["latency_ms"][f"b{bs}"].items()))
    cost = profile(wide, (1, 1, 28, 28))
    lat = rep["latency_ms"]["b100"]
    l8 = lat["8"]
    rep["choices"] = []
    for f in (1.0, 1.1, 1.2, 1.3):
        budget = round(l8 * f, 3)
        try:
            ch = choose_precisions(lat, budget, cost=cost)
        except ValueError as e:
            print(f"  budget {budget} ms: {e}")
            continue
        rep["choices"].append(ch.to_json())
        print(f"  budget {budget:.3f} ms ({f:g} x the 8-bit latency, batch 100): "
              f"{' '.join(map(str, sorted(ch.precisions)))}; expected {ch.expected_latency_ms:.3f} ms, "
              f"{ch.mean_bitops / 1e6:.1f} MBitOPs/image")


if __name__ == "__main__":
    main()

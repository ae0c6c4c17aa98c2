"""Does ``dwq train --compile`` pay? An RPT training step (precision set drawn in turn, PGD-k attack,
cross-entropy, backward, SGD with momentum) with the model eager against the same model under
``torch.compile``, as ``dwq.train.Trainer`` runs it with ``TrainConfig(compile=True)``. The compile
warm-up (one graph per precision) is timed separately.

    python benchmarks/bench_compile.py [--device cpu|cuda] [--nets small_cnn preact_resnet18] [--json FILE]

Records (records.record): {"op": "train_step", "shape", "bits": None, "impl": "eager"|"compiled",
"median_ms", "min_ms", "device", "precisions"} (bits None: the timed steps run every precision of
"precisions" in turn) plus one {"op": "compile_warmup", ..., "impl": "compiled", "median_ms": None,
"min_ms": None, "warmup_s"} per network (warmup_s: seconds of the first compiled steps, one
per precision, together, compiles included). Files only where --json says.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dwq  # noqa: E402
from dwq.attacks import pgd  # noqa: E402
from dwq.deploy.timing import round_orders  # noqa: E402
from dwq.models import preact_resnet18, small_cnn  # noqa: E402
from dwq.ops.fake_quant import inductor_exact_division  # noqa: E402
from dwq.quant import precision_name, reuse_quantized_weights  # noqa: E402

from dwq.cli.common import nonneg_int, path_arg, positive_int, threads_arg  # noqa: E402
from records import device_arg, device_name, output_paths, record, save_json  # noqa: E402  (benchmarks/records.py)

CASES = {  # network: (builder, input shape, batch, precisions)
    "small_cnn": (lambda ps: small_cnn(precisions=ps, width=16, switchable_bn=True), (1, 28, 28), 128, [2, 4, 8]),
    "preact_resnet18": (lambda ps: preact_resnet18(num_classes=10, precisions=ps, switchable_bn=True), (3, 32, 32),
                        32, [4, 8]),
}


def bench(net, device, steps, reps):
    build, shape, batch, ps = CASES[net]
    torch.manual_seed(0)
    m = build(ps).to(device).train()
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(10, (batch,), device=device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    inductor_exact_division()  # (as Trainer._compile)
    compiled = torch.compile(m)

    def step(f, p):
        dwq.set_precision(m, p)
        with reuse_quantized_weights(m):
            xa = pgd(f, x, y, 0.1, 0.025, steps)
            loss = F.cross_entropy(f(xa), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for p in ps:
        step(compiled, p)
    warmup = time.perf_counter() - t0
    for p in ps:
        step(m, p)
    times = {"eager": [], "compiled": []}
    fns = {"eager": m, "compiled": compiled}
    # in turn, so that both see the same machine load, each round in a new order (eager always first
    # left the compiled step the caches eager's leaves, in every round)
    for order in round_orders(list(fns), reps):
        for impl in order:
            f = fns[impl]
            for p in ps:
                t = time.perf_counter()
                step(f, p)
                times[impl].append((time.perf_counter() - t) * 1e3)
    shape_s = f"{net} b{batch} {'x'.join(map(str, shape))} PGD-{steps}"
    names = [precision_name(p) for p in ps]
    recs = [record("train_step", shape_s, None, impl, statistics.median(v), min(v), device=device_name(device),
                   precisions=names) for impl, v in times.items()]
    recs.append(record("compile_warmup", shape_s, None, "compiled", None, device=device_name(device), precisions=names,
                       warmup_s=warmup))
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nets", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--steps", type=nonneg_int, default=3, help="PGD steps of the training attack")
    ap.add_argument("--reps", type=positive_int, default=3, help="timed rounds (each: every precision, both impls)")
    ap.add_argument("--threads", type=threads_arg, default=None)
    ap.add_argument("--json", type=path_arg, default=None)
    a = ap.parse_args(argv)
    output_paths(ap, a, "json")
    if a.threads:
        torch.set_num_threads(a.threads)
    device = device_arg(ap, a.device)
    records = []
    for net in a.nets:
        recs = bench(net, device, a.steps, a.reps)
        records += recs
        e, c, w = recs
        print(f"{net}: eager {e['median_ms']:.1f} ms, compiled {c['median_ms']:.1f} ms per step "
              f"(eager / compiled = {e['median_ms'] / c['median_ms']:.2f}); compile warm-up {w['warmup_s']:.0f} s",
              flush=True)
    if a.json:
        save_json(a.json, records)


if __name__ == "__main__":
    main()

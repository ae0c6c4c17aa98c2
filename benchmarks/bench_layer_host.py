"""The host time a quantized layer adds to a forward (issue 10: on GPUs the eager eval forward is
bound by the host, not by the kernels), float layers against dwq's in one run.

    python benchmarks/bench_layer_host.py [--device cpu|cuda] [--layers 16] [--reps N] [--json FILE]
                                          [--pstats FILE]

A stack of ``--layers`` 3x3 convs, 8 -> 8 channels, on a 4x4 input at batch 1: the arithmetic is
next to nothing, so the time is what the host spends issuing the work (Python, the dispatcher, the
launches). impl "float" (``nn.Conv2d``) against "rpt" (``dwq.nn.QConv2d`` at 4 bits, precisions
[None, 4, 8], ranges tracked as in a trained model) and "rpt_reuse" (the same inside
``dwq.quant.reuse_quantized_weights``, as dwq.eval runs a model); mode "eval" (eval mode under
no_grad), "eval_amp" (the same under autocast: float16 on CUDA, bfloat16 on a CPU; each forward
enters it, as bench_train's eval_forward does) and "train" (train-mode forward and backward). Each
timed call runs 20 forwards (CUDA: event-timed). Records (records.record): {"op": "layer_stack", "shape", "bits", "impl", "median_ms",
"min_ms" (per forward of the stack), "device", "mode", "us_per_layer_added" ((impl - float) / layers,
medians; 0 for float)}. ``--pstats FILE``: where that host time goes, the Python functions of
"rpt" by own time (cProfile, 10 timed calls a mode), as text. Files only where --json / --pstats say.
"""
import argparse
import cProfile
import io
import os
import pstats
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dwq  # noqa: E402
from dwq.nn import QConv2d  # noqa: E402
from dwq.quant import reuse_quantized_weights  # noqa: E402

from dwq.cli.common import path_arg, positive_int  # noqa: E402
from bench_train import time_pair  # noqa: E402  (benchmarks/bench_train.py)
from records import FLOAT32_BITS, device_arg, output_paths, record, save_json  # noqa: E402

FORWARDS = 20  # per timed call
MODES = ("eval", "eval_amp", "train")


def stack_fn(impl, mode, device, layers):
    torch.manual_seed(0)
    if impl == "float":
        net = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(layers)])
    else:
        net = nn.Sequential(*[QConv2d(8, 8, 3, padding=1, precisions=[None, 4, 8]) for _ in range(layers)])
        dwq.set_precision(net, 4)
        with torch.no_grad():
            net.train()(torch.rand(4, 8, 4, 4))  # ranges tracked, as in a trained model
    net = net.to(device).train(mode == "train")
    amp = torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                         enabled=mode == "eval_amp")
    x = torch.rand(1, 8, 4, 4, device=device, requires_grad=mode == "train")
    if impl == "rpt_reuse":
        reuse = reuse_quantized_weights(net)
        reuse.__enter__()
        net._bench_reuse = reuse  # kept alive: a collected context manager closes and ends the reuse

    def run():
        if mode == "train":
            for _ in range(FORWARDS):
                net(x).sum().backward()
        else:
            with torch.no_grad():
                for _ in range(FORWARDS):
                    with amp:
                        net(x)

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", type=positive_int, default=16)
    ap.add_argument("--reps", type=positive_int, default=30, help="timed calls per implementation")
    ap.add_argument("--json", type=path_arg, help="write the records here")
    ap.add_argument("--pstats", type=path_arg, help="write the Python profile of the rpt stack here (text)")
    args = ap.parse_args(argv)
    output_paths(ap, args, "json", "pstats")
    device = device_arg(ap, args.device)
    torch.set_num_threads(1)  # (the host's own time: one thread, as a GPU's host issues the launches)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu x1 thread"
    shape = f"{args.layers} x conv3x3 8->8 4x4 b1"
    records = []
    for mode in MODES:
        fns = {impl: stack_fn(impl, mode, device, args.layers) for impl in ("float", "rpt", "rpt_reuse")}
        res = time_pair(fns, device, args.reps, warmup=3)
        f = res["float"][0]
        for impl, (med, best) in res.items():
            records.append(record("layer_stack", shape, FLOAT32_BITS if impl == "float" else 4, impl,
                                  round(med / FORWARDS, 5), round(best / FORWARDS, 5), device=name, mode=mode,
                                  us_per_layer_added=round((med - f) / FORWARDS * 1e3 / args.layers, 2)))
    print(f"device: {name}, torch {torch.__version__}; {shape}, per forward of the stack")
    for r in records:
        print(f"{r['mode']:8s} {r['impl']:9s} {r['median_ms'] * 1e3:9.1f} us (best {r['min_ms'] * 1e3:.1f})  "
              f"added per layer: {r['us_per_layer_added']:.1f} us")
    if args.json:
        save_json(args.json, records)
        print(f"wrote {args.json}")
    if args.pstats:
        text = []
        for mode in MODES:
            run = stack_fn("rpt", mode, device, args.layers)
            run()
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(10):
                run()
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(40)
            text.append(f"## rpt, {mode}: {10 * FORWARDS} forwards of {shape} on {name}\n{buf.getvalue()}")
        with open(args.pstats, "w") as f:
            f.write("\n".join(text))
        print(f"wrote {args.pstats}")


if __name__ == "__main__":
    main()

"""Whole-model latency per precision (issue 7): dwq's integer model (``dwq.deploy.convert``) against the
float32 eager model, the fake-quant model in eval mode and a Brevitas-built equivalent.

    python benchmarks/bench_models.py [--quick] [--threads N] [--malloc default|keep] [--json FILE] [--png FILE]

Cases: PreActResNet18 on 32x32 images at batch 1 and 32, ResNet-50 on 224x224 at batch 1 and 8, each
with its default quantization policy (PreActResNet18: the 3x3 block convs; ResNet-50: every conv but
the stem), widths 2..16 (``--quick``: 2, 4, 8, 16). One model per architecture carries every width
(switchable BN), is calibrated by one train-mode batch per width and one at full precision, and
converted once. Impls: ``dwq_int`` (the integer model), ``fake_quant`` (the same model, eval mode),
``torch_fp32`` (the same network at full precision, eager; the faster of NCHW and channels_last by
median, its min_ms that layout's; bits 32), ``brevitas``
(every QConv2d replaced by a Brevitas ``QuantConv2d`` with dwq's quantizer recipe,
tests/brevitas_recipes.py; ``--quick``: 8 bits only), and on a CUDA machine ``torch_fp16`` (the float
model in fp16 on the GPU, bits 16). Before timing, the integer model's logits are checked against the
fake-quant model's. All impls of one case are timed in turn, repetition by repetition, so they share
the machine's load: compare ratios measured in one run. Records (records.record):
``{"op", "shape", "bits", "impl", "median_ms", "min_ms"}`` (op = the network, shape = "b32 3x32x32").
Files are written only where --json / --png say.
"""
import argparse
import copy
import os
import sys
import time

import torch

import dwq
from dwq.cli.common import path_arg, threads_arg
from dwq.deploy import code_agreement, compare, convert, time_round_robin
from dwq.memory import keep_freed_memory
from dwq.models import preact_resnet18, resnet50
from dwq.quant import reuse_quantized_weights
from dwq.quant.precision import MAX_BITS, MIN_BITS, parse_precision

from records import (FLOAT32_BITS, cpu_isa, faster_layout, finish, latency_axis,  # noqa: E402  (benchmarks/records.py)
                     output_paths, record)

CASES = [("preact_resnet18", (3, 32, 32), 1), ("preact_resnet18", (3, 32, 32), 32),
         ("resnet50", (3, 224, 224), 1), ("resnet50", (3, 224, 224), 8)]
BUILD = {"preact_resnet18": lambda ps: preact_resnet18(num_classes=10, precisions=ps),
         "resnet50": lambda ps: resnet50(num_classes=1000, precisions=ps)}


def calibrate(model, size, widths):
    """One train-mode batch per width (None: full precision) sets its activation ranges and its
    switchable-BN branch's statistics; then eval mode."""
    g = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for b in widths:
            dwq.set_precision(model, b)
            model(torch.rand(4, *size, generator=g))
    return model.eval()


def brevitas_model(model, bits, x):
    """A copy of ``model`` with every QConv2d/QLinear replaced by its Brevitas twin at ``bits``
    (weights copied; activation statistics from one forward of ``x``), BN branches of ``bits``."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from brevitas.nn import QuantConv2d, QuantLinear
    from brevitas_recipes import act_quant, weight_quant

    from dwq.nn import QConv2d, QLinear

    m = copy.deepcopy(model)
    swapped = []
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, QConv2d):
                new = QuantConv2d(child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                                  padding=child.padding, bias=child.bias is not None, weight_quant=weight_quant(bits),
                                  input_quant=act_quant(bits))
            elif isinstance(child, QLinear):
                new = QuantLinear(child.in_features, child.out_features, bias=child.bias is not None,
                                  weight_quant=weight_quant(bits), input_quant=act_quant(bits))
            else:
                continue
            new.load_state_dict({k: v for k, v in child.state_dict().items() if k in ("weight", "bias")},
                                strict=False)
            setattr(mod, cname, new)
            swapped.append(new)
    dwq.set_precision(m, bits)  # the switchable BNs that remain
    m.eval()
    with torch.no_grad():
        for s in swapped:
            s.train()  # runtime statistics of the inputs from one batch (momentum 1: that batch's range)
        m(x)
        for s in swapped:
            s.eval()
    return m


def bench_case(net, size, batch, widths, brevitas_bits, budget_s, records, models):
    x = torch.rand(batch, *size, generator=torch.Generator().manual_seed(1))
    shape = f"b{batch} {'x'.join(map(str, size))}"
    if net not in models:
        t0 = time.time()
        torch.manual_seed(0)  # the same random weights in every run
        ps = list(widths) + [None]  # calibrated at None too: the fp32 baseline runs that BN branch
        m = calibrate(BUILD[net](ps), size, ps)
        im = convert(m, list(widths))
        models[net] = (m, im)
        print(f"  {net}: calibrated and converted at {len(widths)} widths in {time.time() - t0:.0f}s", flush=True)
    m, im = models[net]
    # check before timing: the integer model computes the fake-quant model's logits
    for name, r in compare(m, im, x[:2]).items():
        if r["rel_max_diff"] >= 5e-2:  # random weights: a rounding tie may cascade (README, Deploy); never more
            steps = code_agreement(m, im, x[:2], parse_precision(name))
            worst = max((v["max_step"] for v in steps.values()), default=0)
            assert worst <= 1, f"{net} at {name} bits: integer and fake-quant codes differ by {worst}: {r}"
            print(f"  note: {net} at {name} bits: logits differ by {r['rel_max_diff']:.1%} of their scale after "
                  f"rounding ties (codes off by one)")
    xcl = x.contiguous(memory_format=torch.channels_last)

    def at(model, p, inp):
        def f():
            with torch.inference_mode(), dwq.precision(model, p):
                return model(inp)
        return f

    mcl = copy.deepcopy(m).to(memory_format=torch.channels_last)  # the network in channels_last, not only its input
    fns = {("torch_fp32", FLOAT32_BITS): at(m, None, x), ("torch_fp32_cl", FLOAT32_BITS): at(mcl, None, xcl)}
    for b in widths:
        fns[("dwq_int", b)] = at(im, b, x)
        fns[("fake_quant", b)] = at(m, b, x)
    for b in brevitas_bits:
        bm = brevitas_model(m, b, x)

        def run_brevitas(bm=bm):
            with torch.inference_mode():
                return bm(x)
        fns[("brevitas", b)] = run_brevitas
    if torch.cuda.is_available():
        mh = copy.deepcopy(m).cuda().half()
        xh = x.cuda().half()

        def fp16():
            with torch.inference_mode(), dwq.precision(mh, None):
                mh(xh)
            torch.cuda.synchronize()
        fns[("torch_fp16", 16)] = fp16
    # fake_quant as dwq's own eval runs it: each precision's weights quantized once, not per forward
    with reuse_quantized_weights(m):
        timed = time_round_robin(fns, budget_s=budget_s, min_reps=3, max_reps=30)
    records += faster_layout([record(net, shape, b, impl, r["median_ms"], r["min_ms"])
                              for (impl, b), r in timed.items()])


def ratio_table(records, key="median_ms"):
    """Markdown: per case, fp32 and dwq 8-bit latency; dwq's speed-up over fp32 and over the fake-quant
    model at the same width, the smallest over widths <= 8 (all cost one 8-bit pass); over Brevitas at 8
    bits; and dwq's 16-bit / 8-bit latency."""
    idx = {(r["op"], r["shape"], r["impl"], r["bits"]): r[key] for r in records}
    lines = ["| network | input | fp32 ms | dwq 8-bit ms | vs fp32 (worst width <= 8) "
             "| vs fake-quant (worst width <= 8) | vs Brevitas 8-bit | dwq 16-bit / 8-bit |",
             "|---|---|---|---|---|---|---|---|"]
    for net, shape in sorted({(r["op"], r["shape"]) for r in records}, key=lambda t: (t[0], int(t[1].split()[0][1:]))):
        d = {b: v for (o, s, i, b), v in idx.items() if o == net and s == shape and i == "dwq_int"}
        fq = {b: v for (o, s, i, b), v in idx.items() if o == net and s == shape and i == "fake_quant"}
        le8 = [b for b in d if b <= 8]
        fp32 = idx.get((net, shape, "torch_fp32", FLOAT32_BITS))
        if 8 not in d or not fp32:
            continue
        brev = idx.get((net, shape, "brevitas", 8))
        ratio_fq = min(fq[b] / d[b] for b in le8 if b in fq)
        ratio_fp = min(fp32 / d[b] for b in le8)
        d16 = f"{d[16] / d[8]:.2f}" if 16 in d else "-"
        lines.append(f"| {net} | {shape} | {fp32:.2f} | {d[8]:.2f} | {ratio_fp:.2f}x | {ratio_fq:.2f}x | "
                     f"{(f'{brev / d[8]:.2f}x' if brev else '-')} | {d16} |")
    return "\n".join(lines)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["op"], r["shape"]) for r in records}, key=lambda t: (t[0], int(t[1].split()[0][1:])))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    for ax, (net, shape) in zip(axes.flat, keys):
        rs = [r for r in records if r["op"] == net and r["shape"] == shape]
        latency_axis(ax, rs, [("dwq_int", "o-"), ("fake_quant", "^-"), ("brevitas", "s--")],
                     [("torch_fp32", "gray"), ("torch_fp16", "green")], f"{net} {shape}", "median ms per forward")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="widths 2, 4, 8, 16; Brevitas at 8 bits (< 5 min on 2 cores)")
    p.add_argument("--json", type=path_arg, help="write the records to this file")
    p.add_argument("--png", type=path_arg, help="write the latency-vs-bits plot to this file")
    p.add_argument("--threads", type=threads_arg, default=None, help="torch threads (default: all cores)")
    p.add_argument("--malloc", choices=["default", "keep"], default="default",
                   help="keep: dwq.memory.keep_freed_memory() first (what the dwq command does), so that large "
                        "tensors reuse freed memory; default: glibc's own thresholds (records: field 'malloc')")
    p.add_argument("--cases", nargs="+", default=None, metavar="NET:BATCH",
                   choices=[f"{n}:{b}" for n, _, b in CASES],  # (an unknown case ran nothing and said nothing)
                   help="only these cases, e.g. preact_resnet18:32 resnet50:8")
    args = p.parse_args(argv)
    output_paths(p, args, "json", "png")
    if not dwq.ops.supported_cpu_isas():
        sys.exit("bench_models: the dwq._C extension is not built")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not keep_freed_memory():
        sys.exit("bench_models: --malloc keep: this C library has no glibc mallopt")
    widths = [2, 4, 8, 16] if args.quick else list(range(MIN_BITS, MAX_BITS + 1))
    brevitas_bits = [8] if args.quick else [2, 4, 8, 12, 16]
    budget_s = 3.0 if args.quick else 8.0
    cases = CASES if not args.cases else [c for c in CASES if f"{c[0]}:{c[2]}" in args.cases]
    try:
        import brevitas  # noqa: F401
    except ImportError:
        print("  brevitas is not installed: no brevitas records")
        brevitas_bits = []
    isa = cpu_isa("bench_models.py")
    print(f"threads={torch.get_num_threads()} isa={isa} torch={torch.__version__} malloc={args.malloc}")
    t0 = time.time()
    records, models = [], {}
    for net, size, batch in cases:
        bench_case(net, size, batch, widths, brevitas_bits, budget_s, records, models)
        print(f"  {net} batch {batch} done ({time.time() - t0:.0f}s)", flush=True)
    for r in records:
        r["malloc"] = args.malloc
    finish(records, args, ratio_table, plot, t0, first_column="network", digits=2)


if __name__ == "__main__":
    main()

"""A float batch norm feeding a quantized layer, fused against composed (CPU): ``affine_quantize_act``
(the affine, its ReLU and the activation quantization in one pass) against what an integer model's
``FloatAffine`` ran before it (``addcmul``, ``quantize_act``, a clamp for the ReLU), alone on
PreActResNet18's activation shapes and inside the whole 8-bit integer model, in one run.

Usage: python benchmarks/bench_affine.py [--threads N] [--budget S] [--json FILE]

Records (benchmarks/records.py): op ``affine_quantize`` (shape "b32 64x32x32 channels_last") or
``preact_resnet18`` (shape "b32 3x32x32", bits 8; its program without the residual fusions of
bench_residual.py, so that each pre-activation batch norm runs as a FloatAffine), impl ``composed``
or ``fused``. Each pair is timed round-robin in one process (dwq.deploy.time_round_robin), so the
ratio does not depend on how loaded the machine was; the codes (and the models' logits, within
rounding ties) are checked equal first.
"""
import argparse
import os
import sys
import time

import torch

import dwq
import dwq.ops as ops
from dwq.cli.common import path_arg, threads_arg
from dwq.deploy import convert, time_round_robin
from dwq.deploy.layers import FloatAffine
from dwq.models import preact_resnet18

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from records import cpu_isa, finish, output_paths, record  # noqa: E402  (benchmarks/records.py)

SHAPES = [(32, 64, 32, 32), (32, 128, 16, 16), (32, 256, 8, 8), (32, 512, 4, 4)]
MODEL_BATCHES = [32, 1]


def composed(x, scale, bias, relu, out_scale, out_zero_point, bits):
    """FloatAffine's codes path before affine_quantize_act: y in memory, then its codes, then ReLU on codes."""
    y = torch.addcmul(bias.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
    q = ops.quantize_act(y, out_scale, out_zero_point, bits)
    return q.clamp_min_(int(out_zero_point)) if relu and int(out_zero_point) else q


def _composed_forward(self, x):
    i = self.precision_index
    if self.out_bits[i] is None:
        return _fused_forward(self, x)
    return composed(x, self.scale[i], self.bias[i], self.relu, self.out_scale[i:i + 1], self.out_zero_point[i:i + 1],
                    self.out_bits[i])


_fused_forward = FloatAffine.forward


def bench_ops(budget, records):
    g = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        for layout in ("channels_last", "nchw") if shape[1] == 64 else ("channels_last",):
            x = torch.randn(shape, generator=g)
            if layout == "channels_last":  # the integer model's layout (qconv2d writes channels-last)
                x = x.contiguous(memory_format=torch.channels_last)
            C = shape[1]
            s, b = torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g)
            qp = (torch.tensor([0.037]), torch.tensor([3], dtype=torch.int32), 8)
            fns = {"composed": lambda: composed(x, s, b, True, *qp),
                   "fused": lambda: ops.affine_quantize_act(x, s, b, True, *qp)}
            # (addcmul rounds once, fused mul + add twice: a code may differ at a rounding tie)
            diff = (fns["composed"]().int() - fns["fused"]().int()).abs()
            assert diff.max() <= 1 and diff.float().mean() < 1e-3, f"{shape}: codes differ beyond ties"
            name = f"b{shape[0]} {'x'.join(map(str, shape[1:]))} {layout}"
            for impl, t in time_round_robin(fns, budget_s=budget, min_reps=10, max_reps=200).items():
                records.append(record("affine_quantize", name, 8, impl, t["median_ms"], t["min_ms"]))
            print(f"  {name} done", flush=True)


def switched_forward(im, x, switch, restore):
    """A forward of the integer model ``im`` at 8 bits with ``switch()`` in effect (``restore()`` after
    it): the variants of a round-robin timing, each set per call."""
    def f():
        switch()
        try:
            with torch.inference_mode(), dwq.precision(im, 8):
                return im(x)
        finally:
            restore()
    return f


def bench_model(budget, records):
    torch.manual_seed(0)
    m = preact_resnet18(num_classes=10, precisions=[8, None])
    g = torch.Generator().manual_seed(0)
    m.train()
    with torch.no_grad():  # one batch per width sets the ranges and the switchable BN's statistics
        for p in (8, None):
            dwq.set_precision(m, p)
            m(torch.rand(4, 3, 32, 32, generator=g))
    im = convert(m.eval(), [8])
    # Without the residual fusions: with them, add_affine_quantize_ takes every batch norm after a
    # residual add, and only the first block's bn1 still runs FloatAffine - swapping it changed nothing.
    im._compile(fuse=False)
    for batch in MODEL_BATCHES:
        x = torch.rand(batch, 3, 32, 32, generator=g)

        def run(fwd):
            return switched_forward(im, x, lambda: setattr(FloatAffine, "forward", fwd),
                                    lambda: setattr(FloatAffine, "forward", _fused_forward))

        fns = {"composed": run(_composed_forward), "fused": run(_fused_forward)}
        a, b = fns["composed"](), fns["fused"]()
        assert (a - b).abs().max() <= 0.05 * a.abs().max(), "the two integer models' logits differ beyond ties"
        for impl, t in time_round_robin(fns, budget_s=budget, min_reps=10, max_reps=200).items():
            records.append(record("preact_resnet18", f"b{batch} 3x32x32", 8, impl, t["median_ms"], t["min_ms"]))
        print(f"  preact_resnet18 b{batch} done", flush=True)


def cpu_ab_parser(doc, budget):
    """The CPU A/B scripts' common flags: --threads (default 2), --budget (seconds of timing per pair)
    and --json; parse with parse_cpu_ab."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=threads_arg, default=2, help="torch threads (default 2)")
    p.add_argument("--budget", type=float, default=budget, help=f"seconds of timing per pair (default {budget:g})")
    p.add_argument("--json", type=path_arg, help="write the records to this file")
    p.set_defaults(png=None)
    return p


def parse_cpu_ab(p, argv):
    """cpu_ab_parser's arguments, with --budget checked."""
    args = p.parse_args(argv)
    if not 0 < args.budget < float("inf"):  # (inf passed "> 0" and failed in time_round_robin after the set-up)
        p.error(f"--budget must be a finite number of seconds > 0, got {args.budget}")
    return args


def start_cpu_run(script, threads):
    """The CPU A/B scripts' start: exits where dwq._C is not built, sets torch's threads and prints
    them with the engine's ISA and torch's version. Returns the start time."""
    if not ops.supported_cpu_isas():
        sys.exit(f"{script}: the dwq._C extension is not built")
    torch.set_num_threads(threads)
    isa = cpu_isa(script)
    print(f"threads={torch.get_num_threads()} isa={isa} torch={torch.__version__}")
    return time.time()


def ratio_table(records, key="median_ms", impls=("composed", "fused")):
    """The two ``impls`` (before, after) of each (op, shape, bits) side by side, and their ratio."""
    a, b = impls
    idx = {(r["op"], r["shape"], r["bits"], r["impl"]): r[key] for r in records}
    lines = [f"| op | shape | bits | {a} ms | {b} ms | {a} / {b} |", "|---|---|---|---|---|---|"]
    for op, shape, bits in dict.fromkeys((r["op"], r["shape"], r["bits"]) for r in records):
        c, f = idx[(op, shape, bits, a)], idx[(op, shape, bits, b)]
        lines.append(f"| {op} | {shape} | {bits} | {c:.3f} | {f:.3f} | {c / f:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    p = cpu_ab_parser(__doc__, 4.0)
    args = parse_cpu_ab(p, argv)
    output_paths(p, args, "json")
    t0, records = start_cpu_run("bench_affine", args.threads), []
    bench_ops(args.budget, records)
    bench_model(args.budget * 2, records)
    finish(records, args, ratio_table, None, t0, digits=3)


if __name__ == "__main__":
    main()

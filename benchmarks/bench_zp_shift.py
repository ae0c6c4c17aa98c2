"""Weights of at most 7 bits packed less their channel's zero point (``zp_shift``: the engine then needs
no activation row sums and no multiply per output for them) against the same weights packed with the
128 offset of wider codes (``offset128``: every blob before, and ``DWQ_PACK_ZP_SHIFT=0`` now), on the
CPU, in one process: the 3x3 convs of ``bench_kernels.py --quick`` at batch 32 and 1 (codes in, requantized codes out, each call
timed warm) and whole ResNet-50 / PreActResNet-18 integer models converted once each way.

Usage: python benchmarks/bench_zp_shift.py [--threads N] [--budget S] [--bits 4 7] [--json FILE]

Records (benchmarks/records.py): op ``conv3x3`` (shape as ``bench_kernels.py``'s), ``resnet50`` or
``preact_resnet18`` (shape "b8 3x224x224"), ``bits`` the width of weights and activations, impl
``offset128`` or ``zp_shift``. Each pair is timed round-robin (dwq.deploy.time_round_robin) after its
outputs were checked equal.
"""
import os
import sys

import torch

import dwq
import dwq.ops as ops
from dwq.deploy import convert, time_round_robin
from dwq.memory import keep_freed_memory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_affine import cpu_ab_parser, parse_cpu_ab, ratio_table, start_cpu_run  # noqa: E402
from bench_kernels import QUICK_CONVS  # noqa: E402
from bench_models import BUILD, calibrate  # noqa: E402
from records import conv_shape, env_vars, finish, output_paths, record  # noqa: E402  (benchmarks/records.py)

IMPLS = ("offset128", "zp_shift")
MODELS = [("resnet50", (3, 224, 224), (8, 1)), ("preact_resnet18", (3, 32, 32), (32, 1))]


def both_ways(pack):
    """{impl: pack()} for the two packings: ``offset128`` under DWQ_PACK_ZP_SHIFT=0, then ``zp_shift``
    with the variable unset (a DWQ_PACK_ZP_SHIFT=0 of the caller's shell would make both the same)."""
    out = {}
    for impl, value in (("offset128", "0"), ("zp_shift", None)):
        with env_vars(DWQ_PACK_ZP_SHIFT=value):
            out[impl] = pack()
    return out


def bench_convs(budget, bits_list, records):
    g = torch.Generator().manual_seed(0)
    for batch, (cin, cout, hw, stride) in [(b, c) for b in (32, 1) for c in QUICK_CONVS]:
        for bits in bits_list:
            x = torch.randint(0, 1 << bits, (batch, cin, hw, hw), generator=g, dtype=torch.uint8)
            x = x.contiguous(memory_format=torch.channels_last)
            w = torch.randint(0, 1 << bits, (cout, cin, 3, 3), generator=g, dtype=torch.uint8)
            zw = torch.randint(0, 1 << bits, (cout,), generator=g, dtype=torch.int32)
            blobs = both_ways(lambda: ops.pack_conv_weight(w, zw, bits))
            assert not torch.equal(*blobs.values()), "the two packings are the same bytes"
            sx, zx = torch.tensor([0.01]), torch.tensor([(1 << bits) // 3], dtype=torch.int32)
            sw = torch.rand(cout, generator=g) * 0.01 + 1e-3
            so, zo = torch.tensor([0.37]), torch.tensor([(1 << bits) // 2], dtype=torch.int32)
            fns = {k: (lambda wp=wp: ops.qconv2d(x, sx, zx, bits, wp, sw, 3, stride, 1, None, None, False, so, zo,
                                                 bits)) for k, wp in blobs.items()}
            assert torch.equal(fns["offset128"](), fns["zp_shift"]()), "the codes differ"
            shape = conv_shape(batch, cin, cout, hw, stride)
            for impl, t in time_round_robin(fns, budget_s=budget, min_reps=10, max_reps=400, warm=True).items():
                records.append(record("conv3x3", shape, bits, impl, t["median_ms"], t["min_ms"]))
        print(f"  conv {shape} done", flush=True)


def bench_models(budget, bits_list, records):
    for net, size, batches in MODELS:
        for bits in bits_list:
            torch.manual_seed(0)
            model = calibrate(BUILD[net]([bits]), size, [bits])
            ims = both_ways(lambda: convert(model, [bits]))
            g = torch.Generator().manual_seed(0)
            for batch in batches:
                x = torch.rand(batch, *size, generator=g)

                def run(im):
                    def f():
                        with torch.inference_mode(), dwq.precision(im, bits):
                            return im(x)
                    return f

                fns = {k: run(im) for k, im in ims.items()}
                assert torch.equal(fns["offset128"](), fns["zp_shift"]()), f"{net}: the logits differ"
                shape = f"b{batch} {'x'.join(map(str, size))}"
                for impl, t in time_round_robin(fns, budget_s=budget, min_reps=5, max_reps=200).items():
                    records.append(record(net, shape, bits, impl, t["median_ms"], t["min_ms"]))
                print(f"  {net} {shape} {bits} bits done", flush=True)


def main(argv=None):
    p = cpu_ab_parser(__doc__, 3.0)
    p.add_argument("--bits", type=int, nargs="+", default=[4, 7], help="widths, each 2..7 (default 4 7)")
    args = parse_cpu_ab(p, argv)
    if not all(2 <= b <= 7 for b in args.bits):
        p.error(f"--bits must each be 2..7 (wider codes have one packing), got {args.bits}")
    output_paths(p, args, "json")
    keep_freed_memory()
    t0, records = start_cpu_run("bench_zp_shift", args.threads), []
    bench_convs(args.budget, args.bits, records)
    bench_models(args.budget * 2, args.bits, records)
    finish(records, args, lambda recs, key="median_ms": ratio_table(recs, key, IMPLS), None, t0, digits=3)


if __name__ == "__main__":
    main()

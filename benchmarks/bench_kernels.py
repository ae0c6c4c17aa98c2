"""Kernel benchmark of issue 3: dwq's true-integer CPU GEMM / conv2d at every bit width against
torch fp32 (matmul, conv2d), torch._int_mm (oneDNN int8), torch's x86 quantized conv
(torch.ao.nn.quantized.Conv2d) and a Brevitas fake-quant layer.

    python benchmarks/bench_kernels.py [--quick] [--json FILE] [--png FILE] [--threads N]

Shapes: GEMM (M, N, K) 1024x1024x1024, 4096x512x1152, 32x4096x4096; the 3x3 convolutions of
PreActResNet18 on 32x32 inputs at batch 1 and 32. ``--quick`` (< 3 min on 2 cores) times bits
2, 4, 8, 12, 16 and four of the convolutions. Every dwq result is checked against the int64
reference on a slice before it is timed. All candidates of a shape, the Brevitas layers included, are
timed in one round robin (dwq.deploy.time_round_robin), each call warm (right after one of its own). Records (records.record):
``{"op", "shape", "bits", "impl", "median_ms", "min_ms"}`` with impl in dwq, torch_fp32 (the faster
layout by median; its min_ms is that layout's), torch_int_mm, torch_qlinear, torch_qconv, brevitas
(fp32 baselines record bits 32, int8 ones bits 8). The machine is shared: compare ratios measured
in one run, not absolute times.
"""
import argparse
import functools
import os
import sys
import time

import torch
import torch.nn.functional as F

import dwq.ops.qgemm as q
from dwq.cli.common import path_arg, threads_arg
from dwq.deploy.timing import time_round_robin as deploy_time_round_robin
from dwq.ops.qgemm_reference import epilogue_ref, qconv2d_acc_ref, qgemm_acc_ref

from records import (FLOAT32_BITS, cpu_isa, calibrated_out_scale, conv_shape,  # noqa: E402  (benchmarks/records.py)
                     faster_layout, finish, latency_axis, output_paths, record)

GEMMS = [(1024, 1024, 1024), (4096, 512, 1152), (32, 4096, 4096)]
# (C_in, C_out, H=W of the input, stride) of PreActResNet18's 3x3 convs on 32x32 images
CONVS = [(64, 64, 32, 1), (64, 128, 32, 2), (128, 128, 16, 1), (128, 256, 16, 2), (256, 256, 8, 1),
         (256, 512, 8, 2), (512, 512, 4, 1)]
QUICK_CONVS = [(64, 64, 32, 1), (128, 128, 16, 1), (256, 256, 8, 1), (512, 512, 4, 1)]


def time_round_robin(cands, budget_s=1.5, min_reps=7, max_reps=60):
    """Times every (impl, bits, fn) of one shape with dwq.deploy.time_round_robin (in turn, repetition
    by repetition, each round in a new random order, so that all of them see the same load of a shared
    machine), warm: each timed call right after an untimed one of the same candidate, so that none is
    timed on the caches and clock an fp32 or Brevitas candidate left (which made torch's int8 conv up
    to 2x slower here). Returns [(impl, bits, median_ms, min_ms)]."""
    timed = deploy_time_round_robin({(impl, bits): fn for impl, bits, fn in cands}, budget_s, min_reps, max_reps,
                                    warm=True)
    return [(impl, bits, t["median_ms"], t["min_ms"]) for (impl, bits), t in timed.items()]


def add_timed(records, op, shape, cands, budget_s):
    """Times cands without autograd (the Brevitas layers would record a graph) and appends their records,
    fp32 as the faster of its layouts (records.faster_layout)."""
    with torch.no_grad():
        timed = [record(op, shape, bits, impl, med, best)
                 for impl, bits, med, best in time_round_robin(cands, budget_s)]
    records += faster_layout(timed)


def codes(shape, bits, g):
    c = torch.randint(0, 1 << bits, shape, generator=g, dtype=torch.int32)
    return c.to(torch.uint8) if bits <= 8 else c


def torch_quantized():
    """``torch.ao.nn.quantized`` on torch's x86 engine (oneDNN/fbgemm), the int8 baselines' engine."""
    torch.backends.quantized.engine = "x86"
    import torch.ao.nn.quantized as nnq

    return nnq


def bench_gemm(M, N, K, bits_list, records, brevitas_bits, budget_s):
    g = torch.Generator().manual_seed(0)
    shape = f"{M}x{N}x{K}"
    a = torch.randn(M, K, generator=g)
    b = torch.randn(K, N, generator=g)
    a8 = torch.randint(-128, 128, (M, K), dtype=torch.int8, generator=g)
    b8 = torch.randint(-128, 128, (K, N), dtype=torch.int8, generator=g)
    cands = [("torch_fp32", FLOAT32_BITS, lambda: a @ b), ("torch_int_mm", 8, lambda: torch._int_mm(a8, b8))]
    # _int_mm reorders its weight in every call; torch's int8 linear with a prepacked weight (x86
    # engine, as torch_qconv) is the like-for-like baseline of dwq's packed weight
    qlin = torch_quantized().Linear(K, N, bias_=False)
    qlin.set_weight_bias(torch.quantize_per_channel(torch.randn(N, K, generator=g) * 0.05, torch.full((N,), 0.002),
                                                    torch.zeros(N, dtype=torch.long), 0, torch.qint8), None)
    qlin.scale, qlin.zero_point = 0.05, 64
    qa = torch.quantize_per_tensor(a, 0.03, 128, torch.quint8)
    cands.append(("torch_qlinear", 8, lambda: qlin(qa)))
    for bits in bits_list:
        x, w = codes((M, K), bits, g), codes((N, K), bits, g)
        zx = torch.tensor([(1 << bits) // 3], dtype=torch.int32)
        zw = torch.randint(0, 1 << bits, (N,), generator=g, dtype=torch.int32)
        sx, sw = torch.tensor([0.01]), torch.rand(N, generator=g) * 0.01 + 1e-3
        wp = q.pack_weight(w, zw, bits)
        rows = slice(0, min(M, 8))
        acc = qgemm_acc_ref(x[rows], zx, w, zw)
        assert torch.equal(q.qgemm_acc(x[rows], zx, bits, wp), acc), "dwq check failed"
        assert torch.equal(q.qlinear(x[rows], sx, zx, bits, wp, sw), epilogue_ref(acc, sx, sw, 1)), \
            "dwq check failed: the timed op's float epilogue"
        cands.append(("dwq", bits, functools.partial(q.qlinear, x, sx, zx, bits, wp, sw)))
    cands += [("brevitas", bits, brevitas_layer("linear", bits, a, (N, K))) for bits in brevitas_bits]
    add_timed(records, "gemm", shape, cands, budget_s)


def brevitas_layer(kind, bits, x, wshape, stride=1):
    """A Brevitas QuantLinear / 3x3 QuantConv2d (weight [C_out, C_in] = ``wshape``) with dwq's quantizer
    recipe at ``bits``, its input statistics collected from one forward of ``x``, in eval mode: a
    candidate ``() -> layer(x)`` for the round robin (to be called without autograd)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from brevitas.nn import QuantConv2d, QuantLinear
    from brevitas_recipes import act_quant, weight_quant

    if kind == "linear":
        layer = QuantLinear(wshape[1], wshape[0], bias=False, weight_quant=weight_quant(bits),
                            input_quant=act_quant(bits))
    else:
        layer = QuantConv2d(wshape[1], wshape[0], 3, stride=stride, padding=1, bias=False,
                            weight_quant=weight_quant(bits), input_quant=act_quant(bits))
    layer.train()
    with torch.no_grad():
        layer(x)
    layer.eval()
    return lambda: layer(x)


def bench_conv(B, cin, cout, hw, stride, bits_list, records, brevitas_bits, budget_s):
    g = torch.Generator().manual_seed(1)
    shape = conv_shape(B, cin, cout, hw, stride)
    xf = torch.randn(B, cin, hw, hw, generator=g)
    wf = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
    xcl = xf.contiguous(memory_format=torch.channels_last)
    cands = [("torch_fp32", FLOAT32_BITS, lambda: F.conv2d(xf, wf, stride=stride, padding=1)),
             ("torch_fp32_cl", FLOAT32_BITS, lambda: F.conv2d(xcl, wf, stride=stride, padding=1))]
    # torch's x86 quantized conv (oneDNN/fbgemm), quint8 activations, qint8 per-channel weights
    qconv = torch_quantized().Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    qw = torch.quantize_per_channel(wf, torch.full((cout,), 0.002), torch.zeros(cout, dtype=torch.long), 0, torch.qint8)
    qconv.set_weight_bias(qw, None)
    qconv.scale, qconv.zero_point = 0.05, 64
    qx = torch.quantize_per_tensor(xcl, 0.03, 128, torch.quint8)
    cands.append(("torch_qconv", 8, lambda: qconv(qx)))
    for bits in bits_list:
        x = codes((B, cin, hw, hw), bits, g).contiguous(memory_format=torch.channels_last)
        w = codes((cout, cin, 3, 3), bits, g)
        zx = torch.tensor([(1 << bits) // 3], dtype=torch.int32)
        zw = torch.randint(0, 1 << bits, (cout,), generator=g, dtype=torch.int32)
        sx, sw = torch.tensor([0.01]), torch.rand(cout, generator=g) * 0.01 + 1e-3
        wp = q.pack_conv_weight(w, zw, bits)
        xs = x[:1, :, :6, :6]
        acc = qconv2d_acc_ref(xs, zx, w, zw, (stride, stride), (1, 1))
        # the output scale calibrated on the checked slice, as a model's is (and not a power of two:
        # the requantization divides), so that the timed codes spread over the range
        so = calibrated_out_scale(epilogue_ref(acc, sx, sw, 1), bits)
        zo = torch.tensor([(1 << bits) // 2], dtype=torch.int32)
        assert torch.equal(q.qconv2d_acc(xs, zx, bits, wp, 3, stride, 1), acc), "dwq check failed"
        assert torch.equal(q.qconv2d(xs, sx, zx, bits, wp, sw, 3, stride, 1, None, None, False, so, zo, bits),
                           epilogue_ref(acc, sx, sw, 1, None, None, False, so, zo, bits)), \
            "dwq check failed: the timed op's requantized codes"
        # integer model layout: codes in, requantized codes of the same width out (like torch_qconv)
        cands.append(("dwq", bits, functools.partial(q.qconv2d, x, sx, zx, bits, wp, sw, 3, stride, 1, None, None,
                                                     False, so, zo, bits)))
    cands += [("brevitas", bits, brevitas_layer("conv", bits, xf, (cout, cin), stride)) for bits in brevitas_bits]
    add_timed(records, "conv3x3", shape, cands, budget_s)


def ratio_table(records, key="median_ms"):
    """Markdown table of the issue-3 target ratios from `key` latencies (speed-ups = baseline
    latency / dwq latency; the 16/8 column is a latency ratio)."""
    idx = {}
    for r in records:
        idx[(r["op"], r["shape"], r["impl"], r["bits"])] = r[key]
    lines = [f"| op | shape | dwq 8-bit {key} | best <=8-bit vs int8 baseline | vs fp32 | 16-bit / 8-bit latency |",
             "|---|---|---|---|---|---|"]
    for op, shape in sorted({(r["op"], r["shape"]) for r in records}, key=lambda t: (t[0], t[1])):
        d8 = idx.get((op, shape, "dwq", 8))
        if d8 is None:
            continue
        best_le8 = min(v for (o, s, i, b), v in idx.items() if o == op and s == shape and i == "dwq" and b <= 8)
        # GEMM: the faster of _int_mm (weight reordered per call) and the prepacked int8 linear
        names = ("torch_int_mm", "torch_qlinear") if op == "gemm" else ("torch_qconv",)
        found = [(idx[(op, shape, n, 8)], n) for n in names if (op, shape, n, 8) in idx]
        base, base_name = min(found) if found else (None, names[0])
        fp32 = idx.get((op, shape, "torch_fp32", FLOAT32_BITS))
        d16 = idx.get((op, shape, "dwq", 16))
        lines.append(f"| {op} | {shape} | {d8:.3f} | {base / best_le8:.2f}x ({base_name}) | {fp32 / best_le8:.2f}x | "
                     f"{d16 / d8:.2f} |" if base and fp32 and d16 else f"| {op} | {shape} | {d8:.3f} | - | - | - |")
    return "\n".join(lines)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["op"], r["shape"]) for r in records})
    cols = 3
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, (op, shape) in zip(axes.flat, keys):
        rs = [r for r in records if r["op"] == op and r["shape"] == shape]
        latency_axis(ax, rs, [("dwq", "o-"), ("brevitas", "s--")],
                     [("torch_fp32", "gray"), ("torch_int_mm", "red"), ("torch_qlinear", "orange"),
                      ("torch_qconv", "red")], f"{op} {shape}",
                     "median ms")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="bits 2,4,8,12,16 and 4 convs (< 3 min on 2 cores)")
    p.add_argument("--json", type=path_arg, help="write the records to this file")
    p.add_argument("--png", type=path_arg, default=None, help="latency-vs-bits plot (written only when given)")
    p.add_argument("--threads", type=threads_arg, default=None, help="torch threads (default: all cores)")
    args = p.parse_args(argv)
    output_paths(p, args, "json", "png")
    if not q.supported_cpu_isas():
        sys.exit("bench_kernels: the dwq._C extension is not built")
    if args.threads:
        torch.set_num_threads(args.threads)
    bits_list = [2, 4, 8, 12, 16] if args.quick else list(range(2, 17))
    brevitas_bits = [8] if args.quick else [2, 4, 8, 12, 16]
    try:
        import brevitas  # noqa: F401
    except ImportError:  # an optional (test) dependency
        print("  brevitas is not installed: no brevitas records")
        brevitas_bits = []
    convs = QUICK_CONVS if args.quick else CONVS
    budget_s = 1.5 if args.quick else 3.0
    isa = cpu_isa("bench_kernels.py")
    print(f"threads={torch.get_num_threads()} isa={isa} torch={torch.__version__}")
    t0 = time.time()
    records = []
    for M, N, K in GEMMS:
        bench_gemm(M, N, K, bits_list, records, brevitas_bits, budget_s)
        print(f"  gemm {M}x{N}x{K} done ({time.time() - t0:.0f}s)", flush=True)
    for B in (1, 32):
        for cin, cout, hw, s in convs:
            bench_conv(B, cin, cout, hw, s, bits_list, records, brevitas_bits, budget_s)
        print(f"  conv batch {B} done ({time.time() - t0:.0f}s)", flush=True)
    finish(records, args, ratio_table, plot, t0, first_column="op", digits=3)


if __name__ == "__main__":
    main()

"""Kernel benchmark of issue 9 on a CUDA GPU: dwq's true-integer GEMM / conv2d (csrc/cuda/qgemm*.cu)
at each bit width against torch._int_mm (cuBLAS int8), fp16 / bf16 matmul and cuDNN fp16
channels-last convolution.

    python benchmarks/bench_kernels_cuda.py [--quick] [--json FILE] [--png FILE]

GEMM (M, N, K): 4096^3, 8192^3, 32x4096x4096, 4096x512x1152 (dwq: qlinear, uint8/int32 codes in,
float32 out with the fused epilogue). Convs at batch 256: the 3x3 convs of PreActResNet18 (32x32
inputs) and the 3x3 and 1x1 convs of ResNet-50 (224x224 inputs), dwq qconv2d on channels-last codes
with requantized codes of the same width out (an integer model's layer, as bench_kernels.py times it
on the CPU) vs cuDNN fp16 channels-last. Every dwq result is checked bit-exactly against the int64 reference on
a slice before it is timed (with the ops' value checks on); timing runs with DWQ_CUDA_CHECKS=0 (no
host sync per op). Medians of CUDA-event timings. Records (bench_kernels.py's format, records.record):
``{"op" ("gemm", "conv3x3", "conv1x1"), "shape" ("MxNxK"; convs "b256 64->64 32x32 s1"), "bits",
"impl", "median_ms", "min_ms", "tops", "device"}``, convs also ``"network"`` (preact_resnet18,
resnet50: whose layer the shape is); impl in dwq (the mma.sync engine), dwq_wgmma (the Hopper engine,
DWQ_CUDA_GEMM=wgmma, on compute capability 9.0 only), dwq_wgmma_tma (its warp-specialized variant,
DWQ_CUDA_GEMM=wgmma_tma), dwq_wgmma_pp (that kernel with ping-pong consumer warpgroups,
DWQ_CUDA_GEMM=wgmma_pp), dwq_auto (the default engine: DWQ_CUDA_GEMM=auto, one of those per
product; the Hopper engines' K-major weight copy is made at the checked call and kept, as for a
model's fixed weights), dwq_auto_repack (8 bits only: auto with that copy made per call,
DWQ_CUDA_WEIGHT_CACHE=0), torch_int_mm, torch_fp16, torch_bf16, cudnn_fp16
(float baselines record bits 16, int8 ones bits 8). An engine whose result differs from the reference
gets a record with "error" and median_ms None (so does one whose op raises), and the run goes on;
the baselines of a shape are timed before its dwq engines. --json FILE.partial is rewritten after
every record, so a run cut short keeps what it measured (under a name that says so), and a
measurement that hangs for --hang-s seconds ends the process (faulthandler prints where); FILE is
written when the run ends. Writes files only where --json / --png say.
"""
import argparse
import faulthandler
import json
import statistics
import sys

import torch
import torch.nn.functional as F

from dwq._errors import first_line
import dwq.ops.qgemm as q
from dwq.ops.qgemm_reference import epilogue_ref, qconv2d_acc_ref, qgemm_acc_ref

from dwq.cli.common import path_arg, positive_float, positive_int
from records import (calibrated_out_scale, conv_shape, env_vars,  # noqa: E402  (benchmarks/records.py)
                     output_paths, record, save_records)

GEMMS = [(4096, 4096, 4096), (8192, 8192, 8192), (32, 4096, 4096), (4096, 512, 1152)]  # (--quick too)
# (network, C_in, C_out, H=W of the input, kernel, stride)
CONVS = [("preact_resnet18", 64, 64, 32, 3, 1), ("preact_resnet18", 128, 128, 16, 3, 1),
         ("preact_resnet18", 256, 256, 8, 3, 1), ("preact_resnet18", 512, 512, 4, 3, 1),
         ("resnet50", 64, 64, 56, 3, 1), ("resnet50", 128, 128, 28, 3, 1), ("resnet50", 256, 256, 14, 3, 1),
         ("resnet50", 512, 512, 7, 3, 1), ("resnet50", 256, 64, 56, 1, 1), ("resnet50", 64, 256, 56, 1, 1),
         ("resnet50", 1024, 256, 14, 1, 1), ("resnet50", 2048, 512, 7, 1, 1)]
QUICK_CONVS = [CONVS[0], CONVS[2], CONVS[5], CONVS[8]]
BITS = [2, 4, 8, 12, 16]
BATCH = 256


HANG_S = 60.0  # --hang-s
OUT = {}  # "json": the --json path (its .partial file rewritten after every record)


def cuda_time(fn, reps=20, warmup=3):
    """(median, min) milliseconds of fn by CUDA events; the process ends if it hangs for HANG_S."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:  # (disarmed on a raise too: an op that raised, recorded as an error, ended the run HANG_S later)
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    finally:
        faulthandler.cancel_dump_traceback_later()
    return statistics.median(times), min(times)


def codes(shape, bits, g, device="cuda"):
    c = torch.randint(0, 1 << bits, shape, generator=g, dtype=torch.int32)
    return (c.to(torch.uint8) if bits <= 8 else c).to(device)


def emit(records, rec):
    records.append(rec)
    print(json.dumps(rec), flush=True)
    if OUT.get("json"):
        save_records(OUT["json"], records, done=False)


def emit_time(records, op, shape, bits, impl, times, ops_count, **extra):
    """The record of one timing: (median, min) ms and the T(int-)ops/s of ``ops_count`` at the median."""
    med, best = times
    emit(records, record(op, shape, bits, impl, round(med, 5), round(best, 5),
                         tops=round(ops_count / (med * 1e-3) / 1e12, 2), device=torch.cuda.get_device_name(0), **extra))


# auto: the default (DWQ_CUDA_GEMM unset), which picks one of the others per product; auto_repack: the
# same with DWQ_CUDA_WEIGHT_CACHE=0, the wgmma engines' K-major weight copy made per call as before
# the cache (timed at 8 bits only: what the cache saves)
ENGINES = {"mma": "dwq", "wgmma": "dwq_wgmma", "wgmma_tma": "dwq_wgmma_tma", "wgmma_pp": "dwq_wgmma_pp",
           "auto": "dwq_auto", "auto_repack": "dwq_auto_repack"}
WANTED = list(ENGINES)  # --engines


def engines():
    """(impl, DWQ_CUDA_GEMM value) of each wanted dwq engine that this GPU runs."""
    runs = [e for e in WANTED if not e.startswith("wgmma") or torch.cuda.get_device_capability() == (9, 0)]
    return [(ENGINES[e], e) for e in runs]


def time_engines(records, op, shape, bits, ops_count, check, run, reps, **extra):
    """Per engine: check() (value checks on) must hold, then run() is timed without the checks' sync; an
    engine whose result differs or whose op raises gets an error record. extra: the records' own fields."""
    for impl, engine in engines():
        if engine == "auto_repack" and bits != 8:
            continue
        error = None
        try:
            with env_vars(DWQ_CUDA_GEMM="auto" if engine == "auto_repack" else engine,
                          DWQ_CUDA_WEIGHT_CACHE="0" if engine == "auto_repack" else None, DWQ_CUDA_CHECKS=None):
                if check():
                    with env_vars(DWQ_CUDA_CHECKS="0"):
                        emit_time(records, op, shape, bits, impl, cuda_time(run, reps), ops_count, **extra)
                else:
                    error = "differs from the int64 reference"
        except RuntimeError as e:  # (a launch error; a device fault ends the process anyway)
            error = f"raised: {first_line(e)[:300]}"
        if error is not None:
            emit(records, record(op, shape, bits, impl, None, error=error, device=torch.cuda.get_device_name(0),
                                 **extra))


def edges(n, k):
    """Indices of the first and last k of n (all of them when n <= 2k)."""
    return torch.arange(n) if n <= 2 * k else torch.cat([torch.arange(k), torch.arange(n - k, n)])


def bench_gemm(M, N, K, bits_list, records, reps):
    g = torch.Generator().manual_seed(M + N + K)
    flops = 2 * M * N * K
    shape = f"{M}x{N}x{K}"
    a8 = torch.randint(-128, 128, (M, K), dtype=torch.int8, device="cuda")
    b8 = torch.randint(-128, 128, (K, N), dtype=torch.int8, device="cuda")
    if M > 16 and K % 8 == 0 and N % 8 == 0:
        emit_time(records, "gemm", shape, 8, "torch_int_mm", cuda_time(lambda: torch._int_mm(a8, b8), reps), flops)
    del a8, b8
    for dt, name in ((torch.float16, "torch_fp16"), (torch.bfloat16, "torch_bf16")):
        a, b = torch.randn(M, K, device="cuda", dtype=dt), torch.randn(K, N, device="cuda", dtype=dt)
        emit_time(records, "gemm", shape, 16, name, cuda_time(lambda: a @ b, reps), flops)
    rows, cols = edges(M, 8).cuda(), edges(N, 64).cuda()  # the output's corners: every tile row and column
    for bits in bits_list:
        x, w = codes((M, K), bits, g), codes((N, K), bits, g)
        zx = torch.tensor([1 << (bits - 1)], dtype=torch.int32, device="cuda")
        zw = torch.full((N,), 1 << (bits - 1), dtype=torch.int32, device="cuda")
        sx, sw = torch.tensor([0.01], device="cuda"), torch.full((N,), 0.001, device="cuda")
        wp = q.pack_weight(w, zw, bits)
        want = qgemm_acc_ref(x[rows].cpu(), zx.cpu(), w[cols].cpu(), zw[cols].cpu())
        want_y = epilogue_ref(want, sx.cpu(), sw[cols].cpu(), 1)  # the timed op's own float epilogue too
        time_engines(records, "gemm", shape, bits, flops,
                     lambda: (torch.equal(q.qgemm_acc(x, zx, bits, wp)[rows][:, cols].cpu(), want)
                              and torch.equal(q.qlinear(x, sx, zx, bits, wp, sw)[rows][:, cols].cpu(), want_y)),
                     lambda: q.qlinear(x, sx, zx, bits, wp, sw), reps)


def bench_conv(network, cin, cout, hw, k, stride, bits_list, records, reps):
    g = torch.Generator().manual_seed(cin + cout + hw)
    pad = k // 2
    oh = (hw + 2 * pad - k) // stride + 1
    flops = 2 * BATCH * oh * oh * cout * cin * k * k
    op, shape = f"conv{k}x{k}", conv_shape(BATCH, cin, cout, hw, stride)
    xf = torch.randn(BATCH, cin, hw, hw, device="cuda", dtype=torch.float16)
    xf = xf.contiguous(memory_format=torch.channels_last)
    wf = torch.randn(cout, cin, k, k, device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    emit_time(records, op, shape, 16, "cudnn_fp16", cuda_time(lambda: F.conv2d(xf, wf, None, stride, pad), reps), flops,
              network=network)
    del xf, wf
    ends = [0, BATCH - 1]  # the first and last image: the first and last output tiles
    for bits in bits_list:
        x = codes((BATCH, cin, hw, hw), bits, g).contiguous(memory_format=torch.channels_last)
        w = codes((cout, cin, k, k), bits, g)
        zx = torch.tensor([1 << (bits - 1)], dtype=torch.int32, device="cuda")
        zw = torch.full((cout,), 1 << (bits - 1), dtype=torch.int32, device="cuda")
        sx, sw = torch.tensor([0.01], device="cuda"), torch.full((cout,), 0.001, device="cuda")
        zo = torch.tensor([1 << (bits - 1)], dtype=torch.int32, device="cuda")
        wp = q.pack_conv_weight(w, zw, bits)
        want = qconv2d_acc_ref(x[ends].cpu(), zx.cpu(), w.cpu(), zw.cpu(), (stride, stride), (pad, pad))
        # calibrated on the checked images, as bench_kernels.py's CPU conv is: the timed codes spread over the range
        so = calibrated_out_scale(epilogue_ref(want, sx.cpu(), sw.cpu(), 1), bits).to("cuda")
        want_codes = epilogue_ref(want, sx.cpu(), sw.cpu(), 1, None, None, False, so.cpu(), zo.cpu(), bits)

        # An integer model's layer, as bench_kernels.py times it on the CPU: codes in, requantized
        # codes of the same width out (uint8, or int32 above 8 bits); checked with its epilogue.
        def layer():
            return q.qconv2d(x, sx, zx, bits, wp, sw, k, stride, pad, None, None, False, so, zo, bits)

        time_engines(records, op, shape, bits, flops,
                     lambda: (torch.equal(q.qconv2d_acc(x, zx, bits, wp, k, stride, pad)[ends].cpu(), want)
                              and torch.equal(layer()[ends].cpu(), want_codes)),
                     layer, reps, network=network)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if "tops" in r]  # an engine that failed its check has no time
    keys = sorted({(r["op"], r["shape"]) for r in records}, key=str)
    fig, ax = plt.subplots(figsize=(max(8, len(keys) * 0.9), 5))
    impls = sorted({(r["impl"], r["bits"]) for r in records}, key=str)
    width = 0.8 / max(1, len(impls))
    for j, (impl, bits) in enumerate(impls):
        ys = []
        for key in keys:
            m = [r["tops"] for r in records
                 if (r["op"], r["shape"]) == key and (r["impl"], r["bits"]) == (impl, bits)]
            ys.append(m[0] if m else 0)
        ax.bar([i + j * width for i in range(len(keys))], ys, width, label=f"{impl} {bits}b")
    ax.set_xticks([i + 0.4 for i in range(len(keys))])
    ax.set_xticklabels([f"{op}\n{s}" for op, s in keys], rotation=60, fontsize=7)
    ax.set_ylabel("T(int-)ops/s (2 x MACs / time)")
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the 4 GEMMs, 4 of the 12 convs")
    p.add_argument("--json", type=path_arg, help="write the records to this file")
    p.add_argument("--png", type=path_arg, help="throughput plot (written only when given)")
    p.add_argument("--reps", type=positive_int, default=20)
    p.add_argument("--hang-s", type=positive_float, default=60.0,
                   help="end the process when one measurement takes longer (default 60 s)")
    p.add_argument("--engines", default="mma,wgmma,wgmma_tma,wgmma_pp,auto,auto_repack",
                   help="dwq engines to time, comma-separated (wgmma, wgmma_tma and wgmma_pp only run on compute "
                        "capability 9.0; auto, the default engine, picks one per product; auto_repack, at 8 bits "
                        "only: auto with the Hopper engines' weight copy made per call, DWQ_CUDA_WEIGHT_CACHE=0)")
    args = p.parse_args(argv)
    output_paths(p, args, "json", "png")
    WANTED[:] = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in WANTED if e not in ENGINES]
    if bad or not WANTED:
        p.error(f"--engines {args.engines!r}: expected a comma-separated list of {', '.join(ENGINES)}")
    if not torch.cuda.is_available():
        print("bench_kernels_cuda: error: needs a CUDA GPU", file=sys.stderr)
        return 2
    global HANG_S
    HANG_S = args.hang_s
    OUT["json"] = args.json
    records = []
    for M, N, K in GEMMS:
        bench_gemm(M, N, K, BITS, records, args.reps)
    for c in (QUICK_CONVS if args.quick else CONVS):
        bench_conv(*c, BITS, records, args.reps)
    if args.json:
        save_records(args.json, records, done=True)
    if args.png:
        plot(records, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())

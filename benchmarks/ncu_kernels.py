"""Hardware counters of the kernels that miss their targets (issues 9 and 10), for the next tuning
step: one launch of each, profiled by Nsight Compute (``ncu``), where the GPU machine has it.

    python benchmarks/ncu_kernels.py --out FILE.csv [--ncu PATH]   (runs itself under ncu)
    python benchmarks/ncu_kernels.py --target                      (the launches alone: what ncu runs)

Cases, in launch order (printed to stderr by the target): the 8-bit 4096^3 ``qlinear`` on each
tensor-core engine this GPU runs (mma; wgmma, wgmma_tma and wgmma_pp on compute capability 9.0) and on mma at
16 bits; the 3x3 conv of PreActResNet18 at batch 256 (64 -> 64, 32x32) at 8 bits on each engine and
at 16 bits on the default one (auto: on Hopper, the wgmma kernel on the input's limb planes);
``fake_quantize`` per tensor on 64M float32 elements and ``torch.fake_quantize_per_tensor_affine``
on the same tensor (its bandwidth baseline); ``act_qparams`` in train mode on half of it. ncu
keeps every dwq kernel (packing and epilogue ones included) and torch's fake quantization, with the sections Speed Of Light, Memory and Compute Workload, Occupancy, Launch and
Warp State statistics, ``--clock-control none`` (the device's clocks as they are), as CSV in
FILE. Nothing here is timed; ``bench_kernels_cuda.py`` and ``bench_train.py`` time these kernels.
"""
import argparse
import os
import shutil
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dwq.ops.qgemm as q  # noqa: E402
from dwq.cli.common import path_arg  # noqa: E402
from dwq.ops import fake_quantize  # noqa: E402
from records import env_vars, find_ncu, output_paths  # noqa: E402  (benchmarks/records.py)

# Matched against demangled names: every dwq kernel, and torch's fake quantization (a lambda of
# fake_quantize_tensor_cachemask_kernel_cuda inside an elementwise kernel template).
KERNELS = "regex:dwq::|fake_quantize"
SECTIONS = ["SpeedOfLight", "MemoryWorkloadAnalysis", "ComputeWorkloadAnalysis", "Occupancy", "LaunchStats",
            "WarpStateStats"]


def target(device="cuda", small=False):
    """One call of each case, value checks off (DWQ_CUDA_CHECKS=0, the timed path); a case may launch
    several kernels (the packing and the epilogue ones too), in this order. ``small``: the same calls
    on tiny shapes (the tests run them on the CPU)."""
    def say(case):
        print(f"[ncu_kernels] {case}", file=sys.stderr, flush=True)

    g = torch.Generator(device=device).manual_seed(0)
    cuda = device == "cuda"

    def codes(shape, bits):
        return torch.randint(0, 1 << bits, shape, device=device, generator=g).to(
            torch.uint8 if bits <= 8 else torch.int32)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    hopper = cuda and torch.cuda.get_device_capability() == (9, 0)
    engines = ["mma"] + (["wgmma", "wgmma_tma", "wgmma_pp"] if hopper else [])
    M = N = K = 64 if small else 4096
    batch, numel = (2, 1 << 12) if small else (256, 64 << 20)
    for bits, names in ((8, engines), (16, ["mma"])):
        x, w = codes((M, K), bits), codes((N, K), bits)
        zx = torch.tensor([1 << (bits - 1)], dtype=torch.int32, device=device)
        zw = torch.full((N,), 1 << (bits - 1), dtype=torch.int32, device=device)
        sx, sw = torch.tensor([0.01], device=device), torch.full((N,), 0.001, device=device)
        wp = q.pack_weight(w, zw, bits)
        for engine in names:
            with env_vars(DWQ_CUDA_GEMM=engine, DWQ_CUDA_CHECKS="0"):
                say(f"qlinear {M}x{N}x{K} {bits}-bit {engine}")
                q.qlinear(x, sx, zx, bits, wp, sw)
        sync()
    for bits, names in ((8, engines), (16, ["auto"])):  # (16 bits: the default engine's conv on limb planes)
        x = codes((batch, 64, 32, 32), bits).contiguous(memory_format=torch.channels_last)
        zx = torch.tensor([1 << (bits - 1)], dtype=torch.int32, device=device)
        zw = torch.full((64,), 1 << (bits - 1), dtype=torch.int32, device=device)
        wp = q.pack_conv_weight(codes((64, 64, 3, 3), bits), zw, bits)
        sx, sw = torch.tensor([0.01], device=device), torch.full((64,), 0.001, device=device)
        so = torch.tensor([0.5], device=device)
        for engine in names:
            # the op bench_kernels_cuda.py times: requantized codes out (qconv2d_acc's int64 accumulators
            # are another epilogue and 8x the output bytes at 8 bits)
            with env_vars(DWQ_CUDA_GEMM=engine, DWQ_CUDA_CHECKS="0"):
                say(f"qconv2d b{batch} 64->64 32x32 3x3 {bits}-bit {engine}")
                q.qconv2d(x, sx, zx, bits, wp, sw, 3, 1, 1, None, None, False, so, zx, bits)
        sync()
    xf = torch.randn(numel, device=device, generator=g)
    s1, z1 = torch.tensor([0.05], device=device), torch.tensor([128], dtype=torch.int32, device=device)
    say(f"fake_quantize per tensor {numel} float32")
    fake_quantize(xf, s1, z1, 8)
    say(f"torch.fake_quantize_per_tensor_affine {numel} float32")
    torch.fake_quantize_per_tensor_affine(xf, 0.05, 128, 0, 255)
    state = (torch.zeros(3, device=device), torch.zeros(3, device=device),
             torch.zeros(3, dtype=torch.bool, device=device))
    say(f"act_qparams train {numel // 2} float32")
    torch.ops.dwq.act_qparams(xf[: numel // 2], *state, 0, 2, 8, 0.1, True)
    sync()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=path_arg, help="the CSV that ncu writes (runs this script under ncu)")
    ap.add_argument("--ncu", default=None, help="the ncu binary (default: ncu on PATH, else Nsight Compute's "
                                                "usual folders: records.find_ncu)")
    ap.add_argument("--target", action="store_true", help="run the launches only (what ncu profiles)")
    args = ap.parse_args(argv)
    output_paths(ap, args, "out")
    if not args.target and not args.out:
        ap.error("give --out FILE.csv (or --target)")
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (ncu reads a GPU's counters)")
    if args.target:
        target()
        return 0
    ncu = args.ncu or find_ncu()
    if ncu is None:
        ap.error("ncu (Nsight Compute) not found: give --ncu PATH")
    if not (os.path.isfile(ncu) and os.access(ncu, os.X_OK)) and shutil.which(ncu) is None:
        # (a traceback from subprocess, after --out had been made empty)
        ap.error(f"--ncu {ncu}: no such executable")
    cmd = [ncu, "--clock-control", "none", "--target-processes", "all", "--kernel-name-base", "demangled", "-k",
           KERNELS, "--csv", "--page", "details"]
    for s in SECTIONS:
        cmd += ["--section", s]
    cmd += [sys.executable, os.path.abspath(__file__), "--target"]
    try:
        with open(args.out, "w") as f:
            rc = subprocess.run(cmd, stdout=f, timeout=600).returncode
    except subprocess.TimeoutExpired:  # (an empty or partial CSV was left as if it were the profile)
        os.remove(args.out)
        sys.exit(f"ncu_kernels.py: ncu ran past 600 s; {args.out} removed")
    print(f"ncu exit status {rc}; wrote {args.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

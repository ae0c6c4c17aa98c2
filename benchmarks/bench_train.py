"""Random Precision Training cost against float training, in one run (issue 10).

    python benchmarks/bench_train.py [--device cpu|cuda] [--quick] [--json FILE] [--threads N]

Times, float model against dwq's quantized one, on the same machine load (the two are timed in
turn, step by step):
  train_step    PGD-k adversarial training step of PreActResNet18 (dwq.attacks.pgd, then
                cross-entropy, backward, SGD with momentum): impl "float" (precisions=[None]) vs
                "rpt" (precisions 4..16, switchable BN, a precision drawn per step); mode fp32,
                and amp (autocast fp16 + GradScaler on CUDA, autocast bfloat16 on CPU); on CUDA also
                fp32_graphs, the fp32 step replayed from one CUDA graph per precision (a failed
                capture is recorded with "error"), and fp32_attack_graphs / amp_attack_graphs, the
                step as dwq train --cuda-graphs runs it (the attack from a graph per precision, the
                update eager)
  eval_forward  eval-mode forward: "float" vs "rpt" (precisions [None, 4, 8] at 4 bits, ranges
                tracked as in a trained model) and "rpt_reuse" (the same inside
                dwq.quant.reuse_quantized_weights, as dwq.eval runs it: weights quantized once);
                mode fp32 and fp16 (autocast; bfloat16 on CPU), and fp32_compiled (--modes compiled:
                float and rpt under torch.compile); in fp32 also at batch 1, where a GPU
                has next to nothing to do: the host time each quantized layer adds (on a CPU the
                weights' quantization still costs there)
  fake_quantize dwq.ops.fake_quantize per tensor / per channel on float32 vs
                torch.fake_quantize_per_tensor_affine and a plain copy; GB/s = bytes read + written
JSON records (records.record): {"op", "shape", "bits", "impl", "median_ms", "min_ms", "device", "mode",
"precisions", ...}; "bits" is the width the record's impl ran at: 32 for "float" (also in the
autocast modes, which "mode" names) and for "copy", 4 for eval_forward's "rpt" / "rpt_reuse", 8 for
the quantizers, None for train_step's "rpt" (a precision drawn per step); "precisions" is the model's
precision set (precision names: ["fp"] for the float model, ["4", ..., "16"] for RPT). The
script prints the rpt/float ratios (the issue's targets: <= 1.25x on an H200 in both modes, <= 1.15x
for the batch-32 fp32 step on the 2-core CPU). Random CIFAR-shaped data, fixed seeds, cudnn.benchmark
on; CUDA times are CUDA-event medians after warm-up. Nothing is asserted: see the printed table.
--json FILE is written when the run ends; until then FILE.partial holds the records measured so far
(what a run cut short leaves).
"""
import argparse
import os
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dwq  # noqa: E402
from dwq._errors import typed_first_line  # noqa: E402
from dwq.attacks import pgd  # noqa: E402
from dwq.deploy.timing import round_orders  # noqa: E402
from dwq.models import preact_resnet18  # noqa: E402
from dwq.nn import QConv2d, QLinear  # noqa: E402
from dwq.ops import fake_quantize  # noqa: E402
from dwq.ops.fake_quant import inductor_exact_division  # noqa: E402
from dwq.train.graphs import AttackGraphs, on_side_stream  # noqa: E402
from dwq.quant import precision_name, reuse_quantized_weights  # noqa: E402

from dwq.cli.common import path_arg, positive_int, threads_arg  # noqa: E402
from records import FLOAT32_BITS, device_arg, output_paths, record, save_records  # noqa: E402  (benchmarks/records.py)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_pair(fns, device, reps, warmup):
    """Median / best ms of each fn, interleaved rep by rep (same load for all), each rep in a new random
    order (dwq.deploy.timing.round_orders), so that none always runs after the same one (the caches the
    previous call leaves cost the next up to 28% on small shapes)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {k: [] for k in fns}
    for order in round_orders(fns, reps):
        for k in order:
            fn = fns[k]
            if device.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times[k].append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def labelled(fn, model, bits):
    """fn with what its records say of it: ``bits``, the width each call runs at (None: drawn per call),
    and ``precisions``, its model's precision set by name."""
    fn.bits, fn.precisions = bits, [precision_name(p) for p in dwq.precision_set(model)]
    return fn


def make_model(impl, device, precisions=None):
    if impl == "float":
        m = preact_resnet18(num_classes=10, precisions=[None])
    else:
        m = preact_resnet18(num_classes=10, precisions=precisions or list(range(4, 17)))
    return m.to(device)


def _train_setup(impl, device, batch, seed):
    """The model (train mode), its SGD and the random CIFAR-shaped batch of a train-step benchmark."""
    torch.manual_seed(seed)
    model = make_model(impl, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return model, opt, x, y


def train_step_fn(impl, device, batch, steps, amp, seed=0):
    model, opt, x, y = _train_setup(impl, device, batch, seed)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    pick = random.Random(seed)
    precisions = dwq.precision_set(model)

    def step():
        if impl == "rpt":
            dwq.set_precision(model, pick.choice(precisions))
        # as dwq.train.Trainer: the weights change only at the optimizer step, so the attack and the
        # update reuse each layer's fake-quantized weight
        with reuse_quantized_weights(model):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                x_adv = pgd(model, x, y, 8 / 255, 2 / 255, steps)
                loss = F.cross_entropy(model(x_adv), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return labelled(step, model, FLOAT32_BITS if impl == "float" else None)


def attack_graphs_train_step_fn(impl, device, batch, steps, amp, seed=0):
    """The train step as ``dwq train --cuda-graphs`` runs it: the attack replayed from a CUDA graph per
    precision (dwq.train.graphs.AttackGraphs; random starts from a CPU generator, as dwq.train draws
    them; with ``amp`` under float16 autocast, scaled as dwq.train scales it), the update eager. Every
    precision's graph is captured here, before the timing."""
    model, opt, x, y = _train_setup(impl, device, batch, seed)
    precisions = dwq.precision_set(model) if impl == "rpt" else [None]
    graphs = AttackGraphs(model, 8 / 255, 2 / 255, steps, torch.Generator().manual_seed(seed), "cuda" if amp else None)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    pick = random.Random(seed)

    def step(p=None):
        p = pick.choice(precisions) if p is None else p
        if impl == "rpt":
            dwq.set_precision(model, p)
        scale = scaler.scale(torch.full((), 1.0 / batch, device=device)) if amp else None
        x_adv = graphs.craft(x, y, p, scale)
        with reuse_quantized_weights(model):
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(model(x_adv).float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for p in precisions:
        step(p)
    return labelled(step, model, FLOAT32_BITS if impl == "float" else None)


def graphed_train_step_fn(impl, device, batch, steps, seed=0):
    """The fp32 train step replayed from CUDA graphs: one graph per precision (the precision, and with
    it the switchable BN branch, is Python state fixed at capture), each captured after warm-up on a
    side stream, with its own memory pool; a step replays the drawn precision's graph. Everything a
    step reads across replays (parameters, momentum, BN and range statistics, x, y) lives outside the
    graphs' pools. Measures whether graphs pay for the attack loop (issue 10); dwq train --cuda-graphs
    replays the attack only (attack_graphs_train_step_fn)."""
    model, opt, x, y = _train_setup(impl, device, batch, seed)
    precisions = dwq.precision_set(model) if impl == "rpt" else [None]

    def body():
        with reuse_quantized_weights(model):
            x_adv = pgd(model, x, y, 8 / 255, 2 / 255, steps)
            loss = F.cross_entropy(model(x_adv), y)
            loss.backward()
        opt.step()

    def warm():  # cuDNN plans, lazy state (momentum buffers, BN branches)
        for p in precisions:
            if impl == "rpt":
                dwq.set_precision(model, p)
            for _ in range(2):
                opt.zero_grad(set_to_none=True)
                body()

    on_side_stream(warm)
    graphs = {}
    for p in precisions:
        if impl == "rpt":
            dwq.set_precision(model, p)
        opt.zero_grad(set_to_none=True)  # the graph allocates (and each replay rewrites) the gradients
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            body()
        graphs[p] = g
    pick = random.Random(seed)

    def step():
        graphs[pick.choice(precisions)].replay()

    # The graphs read x and y (and write through body's tensors) at their addresses: they must outlive
    # this function. Collected, their memory went to later allocations, and the replays read whatever
    # was there (on the H200: labels out of range, a device assert in the loss).
    step.captured = (x, y, body)

    return labelled(step, model, FLOAT32_BITS if impl == "float" else None)


def eval_fn(impl, device, batch, half, seed=0, compiled=False):
    torch.manual_seed(seed)
    model = make_model(impl, device, precisions=[None, 4, 8])
    bits = FLOAT32_BITS if impl == "float" else 4
    if impl != "float":
        dwq.set_precision(model, bits)
    x = torch.rand(batch, 3, 32, 32, device=device)
    with torch.no_grad():  # as a trained model: BN statistics and the 4-bit activation ranges are tracked, so
        model.train()(torch.rand(max(batch, 8), 3, 32, 32, device=device))  # eval reads them, not each batch's
    model.eval()
    if impl == "rpt_reuse":  # as dwq.eval runs a model: each weight quantized once, then reused
        reuse = reuse_quantized_weights(model)
        reuse.__enter__()
        model._bench_reuse = reuse  # kept alive: a collected context manager closes and ends the reuse
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if compiled:
        inductor_exact_division()  # (as dwq train --compile: the quantizers' x / s correctly rounded on GPUs)
    run = torch.compile(model) if compiled else model  # (compiled at the first, warm-up, call)

    @torch.no_grad()
    def fwd():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=half):
            run(x)

    fwd.layers = sum(isinstance(m, (QConv2d, QLinear)) for m in model.modules())
    return labelled(fwd, model, bits)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (CPU: about 2 minutes)")
    ap.add_argument("--json", type=path_arg, help="write the records here (FILE.partial while the run lasts)")
    ap.add_argument("--threads", type=threads_arg, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--only", choices=["train_step", "eval_forward", "fake_quantize"], action="append")
    ap.add_argument("--modes", nargs="+", choices=["fp32", "amp", "half", "graphs", "attack_graphs", "compiled"],
                    default=["fp32", "amp", "half", "graphs", "attack_graphs"],
                    help="fp32, amp (train step), half (eval forward: fp16 on CUDA, bf16 on CPU), graphs "
                         "(the fp32 train step replayed from CUDA graphs; CUDA only), attack_graphs (the fp32 "
                         "and AMP steps as dwq train --cuda-graphs runs them: the attack from CUDA graphs, the "
                         "update eager; CUDA only) and compiled (eval forward "
                         "fp32, both models under torch.compile; not by default: each compiles for a minute)")
    ap.add_argument("--reps", type=positive_int, default=None, help="timed repetitions per implementation")
    args = ap.parse_args(argv)
    output_paths(ap, args, "json")
    device = device_arg(ap, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    gpu = device.type == "cuda"
    only = set(args.only or ["train_step", "eval_forward", "fake_quantize"])
    modes = set(args.modes)
    # a selection that measures nothing wrote [] and said nothing
    if not ("fake_quantize" in only or "train_step" in only and (modes & {"fp32", "amp"}
                                                                  or modes & {"graphs", "attack_graphs"} and gpu)
            or "eval_forward" in only and modes & {"fp32", "half", "compiled"}):
        ap.error(f"--only {' '.join(sorted(only))} --modes {' '.join(args.modes)} on {device.type}: measures nothing "
                 f"(train_step takes fp32, amp and, on CUDA, graphs and attack_graphs; eval_forward fp32, half and "
                 f"compiled)")
    train_batch, eval_batch = (128, 256) if gpu else (32, 32)
    pgd_steps = 7
    reps = args.reps or ((5 if args.quick else 10) if gpu else (3 if args.quick else 7))
    warm = 3 if gpu else 1
    name = torch.cuda.get_device_name(device) if gpu else f"cpu x{torch.get_num_threads()} threads"
    records = []

    def save(done=False):  # after every measurement: a run cut short keeps what it measured (in FILE.partial)
        if args.json:
            save_records(args.json, records, done)

    def emit(op, shape, mode, fns, res):
        for impl, (med, best) in res.items():
            records.append(record(op, shape, fns[impl].bits, impl, round(med, 4), round(best, 4), device=name,
                                  mode=mode, precisions=fns[impl].precisions))
        save()
        ratios.append((op, shape, mode, res))
        if "rpt" in res:  # as soon as measured: a long CPU run shows its progress
            print(f"{op} {shape} {mode}: float {res['float'][0]:.1f} ms, rpt {res['rpt'][0]:.1f} ms, ratio "
                  f"{res['rpt'][0] / res['float'][0]:.3f} (best-of ratio {res['rpt'][1] / res['float'][1]:.3f})",
                  flush=True)

    ratios = []
    if "train_step" in only:
        step_shape = f"PreActResNet18 b{train_batch} PGD-{pgd_steps}"
        for mode in [m for m in ("fp32", "amp") if m in args.modes]:
            fns = {impl: train_step_fn(impl, device, train_batch, pgd_steps, mode == "amp") for impl in ("float", "rpt")}
            res = time_pair(fns, device, reps, warm)
            emit("train_step", step_shape, mode, fns, res)
        for amp in ((False, True) if "attack_graphs" in args.modes and gpu else ()):  # (dwq train --cuda-graphs)
            fns = {impl: attack_graphs_train_step_fn(impl, device, train_batch, pgd_steps, amp)
                   for impl in ("float", "rpt")}
            res = time_pair(fns, device, reps, warm)
            mode = ("amp" if amp else "fp32") + "_attack_graphs"
            emit("train_step", step_shape, mode, fns, res)
        if "graphs" in args.modes and gpu:
            try:
                fns = {impl: graphed_train_step_fn(impl, device, train_batch, pgd_steps) for impl in ("float", "rpt")}
                res = time_pair(fns, device, reps, warm)
                emit("train_step", step_shape, "fp32_graphs", fns, res)
            except Exception as e:  # a capture that fails is a finding; the other measurements go on
                msg = typed_first_line(e)
                records.append(record("train_step", step_shape, None, None, None, device=name, mode="fp32_graphs",
                                      error=msg))
                save()
                print(f"train_step fp32_graphs: failed ({msg})", flush=True)
    if "eval_forward" in only:
        for mode in [m for m in ("fp32", "fp16" if gpu else "bf16") if m == "fp32" and "fp32" in args.modes
                     or m != "fp32" and "half" in args.modes]:
            # Batch 1 too (fp32): there the device has next to nothing to do, so the time is the host's, and
            # (rpt - float) / layers is the host time a quantized layer adds (on GPUs the eager eval forward is host-bound).
            for batch in (eval_batch, 1) if mode == "fp32" else (eval_batch,):
                fns = {impl: eval_fn(impl, device, batch, mode != "fp32") for impl in ("float", "rpt", "rpt_reuse")}
                res = time_pair(fns, device, reps * 3, warm)
                emit("eval_forward", f"PreActResNet18 b{batch}", mode, fns, res)
                if batch == 1:
                    n = fns["rpt"].layers
                    print(f"time a quantized layer adds at batch 1 ({n} layers; on a GPU, host time): rpt "
                          f"{(res['rpt'][0] - res['float'][0]) * 1e3 / n:.1f} us, rpt_reuse "
                          f"{(res['rpt_reuse'][0] - res['float'][0]) * 1e3 / n:.1f} us", flush=True)
        if "compiled" in modes:  # compiled against compiled (issue 10); reuse does nothing under compile
            fns = {impl: eval_fn(impl, device, eval_batch, False, compiled=True) for impl in ("float", "rpt")}
            res = time_pair(fns, device, reps * 3, warm)
            emit("eval_forward", f"PreActResNet18 b{eval_batch}", "fp32_compiled", fns, res)
    if "fake_quantize" in only:
        n = (64 << 20) if gpu else (16 << 20)
        x = torch.randn(n // 1024, 1024, device=device)
        s1, z1 = torch.tensor([0.05], device=device), torch.tensor([128], dtype=torch.int32, device=device)
        sc = torch.rand(n // 1024, device=device) + 0.01
        zc = torch.randint(0, 256, (n // 1024,), dtype=torch.int32, device=device)
        fns = {
            "dwq_per_tensor": lambda: fake_quantize(x, s1, z1, 8),
            "dwq_per_channel": lambda: fake_quantize(x, sc, zc, 8, axis=0),
            "torch_fake_quantize_per_tensor_affine": lambda: torch.fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255),
            "copy": lambda: x.clone(),
        }
        res = time_pair(fns, device, reps * 2, warm)
        for impl, (med, best) in res.items():  # the quantizers' codes are 8-bit; the copy moves float32
            records.append(record("fake_quantize", f"{n} float32", FLOAT32_BITS if impl == "copy" else 8, impl,
                                  round(med, 4), round(best, 4), device=name, mode="fp32",
                                  precisions=["fp"] if impl == "copy" else ["8"],
                                  gb_per_s=round(2 * 4 * n / (med * 1e-3) / 1e9, 1)))
        save()
    print(f"device: {name}, torch {torch.__version__}")
    for r in records:
        if "error" in r:
            print(f"{r['op']:14s} {r['shape']:30s} {r['mode']:5s} error: {r['error']}")
            continue
        extra = f"  {r['gb_per_s']} GB/s" if "gb_per_s" in r else ""
        print(f"{r['op']:14s} {r['shape']:30s} {r['mode']:5s} {r['impl']:38s} {r['median_ms']:10.3f} ms "
              f"(best {r['min_ms']:.3f}){extra}")
    for op, shape, mode, res in ratios:  # (eval_forward fp32 runs at two batches: the shape tells them apart)
        for impl in [k for k in res if k != "float"]:
            print(f"ratio {impl + '/float':16s} {op:13s} {shape:30s} {mode:5s} median "
                  f"{res[impl][0] / res['float'][0]:.3f}  best {res[impl][1] / res['float'][1]:.3f}")
    if args.json:
        save(done=True)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""Where the time of an RPT step goes (issue 10, item 1): one PGD-k training step and one eval
forward of PreActResNet18, float against RPT at one precision, under torch.profiler, with the device
time, launch count and bytes of each kind of work, and the host syncs of the step.

    python benchmarks/profile_rpt.py [--device cuda|cpu] [--batch 128] [--bits 4]
                                     [--eval-modes fp32 half compiled] [--json FILE] [--md FILE]

The eval forward runs in each of --eval-modes (default fp32 and half): fp32; half, under autocast
(float16 on CUDA, bfloat16 on CPU); compiled, fp32 under torch.compile (inductor's generated
kernels are the kind "inductor"; compiling takes a minute or so per model).

Kinds (by kernel name on CUDA, by op name on the CPU): conv (cuDNN / oneDNN convolutions and their
backward), act_qparams, fake_quantize, weight_fake_quantize (dwq's fused kernels), batchnorm,
elementwise (ReLU, adds, the attack's sign / clamp steps, casts), reduce (sums, the loss),
optimizer, memset/copy, other. Bytes: what dwq's quantizer kernels must move at the least (read x,
write out, by the tensor sizes recorded), against their time, as GB/s. Syncs: the step runs once
under torch.cuda.set_sync_debug_mode("warn") and the warnings are counted (CUDA only). Writes files
only where --json / --md say; prints the markdown table.
"""
import argparse
import collections
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dwq  # noqa: E402
from dwq.attacks import pgd  # noqa: E402
from dwq.models import preact_resnet18  # noqa: E402
from dwq.cli.common import nonneg_int, path_arg, positive_int  # noqa: E402
from dwq.ops.fake_quant import inductor_exact_division  # noqa: E402
from dwq.quant import reuse_quantized_weights  # noqa: E402
from dwq.quant.precision import MAX_BITS, MIN_BITS  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from records import device_arg, output_paths, save_json  # noqa: E402  (benchmarks/records.py)

KINDS = [  # (kind, substrings of a kernel or op name), first match wins
    ("inductor", ["triton_"]),  # (a compiled forward's generated kernels: fused batch norm, ReLU, quantizers)
    ("act_qparams", ["act_qparams"]),
    ("weight_fake_quantize", ["weight_fake_quant"]),
    ("fake_quantize", ["fake_quant"]),
    ("conv", ["conv", "cudnn", "implicit_gemm", "sm90_xmma", "sm80_xmma", "wgrad", "dgrad", "fprop", "mkldnn"]),
    ("batchnorm", ["batch_norm", "batchnorm", "bn_fw", "bn_bw"]),
    ("optimizer", ["multi_tensor", "foreach", "sgd"]),
    ("memset/copy", ["memset", "memcpy", "copy", "fill"]),
    ("reduce", ["reduce", "sum", "nll", "softmax", "cross_entropy"]),
    ("elementwise", ["elementwise", "vectorized", "relu", "threshold", "add", "mul", "sign", "clamp", "where",
                     "unrolled", "sub", "div"]),
]


ELEMENT_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2}  # (the profiler's dtype names)
SCALAR_TYPE_BYTES = {5: 2, 6: 4, 7: 8, 15: 2}  # (c10::ScalarType codes: half, float, double, bfloat16)


def kind_of(name):
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def make(impl, device, batch, bits):
    torch.manual_seed(0)
    m = preact_resnet18(num_classes=10, precisions=[None] if impl == "float" else [None, bits]).to(device)
    if impl == "rpt":
        dwq.set_precision(m, bits)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return m, x, y


def train_step(m, x, y, opt, steps):
    with reuse_quantized_weights(m):
        xa = pgd(m, x, y, 8 / 255, 2 / 255, steps)
        loss = F.cross_entropy(m(xa), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    opt.step()


def eval_forward(m, x, mode, device):
    """The eval forward of ``m`` on ``x`` in ``mode`` (see the module's doc), as a function of nothing."""
    run = m
    if mode == "compiled":
        inductor_exact_division()  # (as dwq train --compile and bench_train.py)
        run = torch.compile(m)  # (compiled at profile()'s first, warm-up, call)
    half = torch.float16 if device.type == "cuda" else torch.bfloat16

    @torch.no_grad()
    def fwd():
        with torch.autocast(device.type, dtype=half, enabled=mode == "half"):
            run(x)

    return fwd


def profile(fn, device):
    from torch.profiler import ProfilerActivity, profile as prof

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    with prof(activities=acts, record_shapes=True) as p:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    rows = collections.defaultdict(lambda: dict(us=0.0, launches=0))
    if device.type == "cuda":
        for e in p.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                r = rows[kind_of(e.name)]
                r["us"] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
                r["launches"] += 1
    else:
        for e in p.key_averages():
            if e.key.startswith(("aten::", "dwq::")) and e.self_cpu_time_total > 0:
                r = rows[kind_of(e.key)]
                r["us"] += e.self_cpu_time_total
                r["launches"] += e.count
    quant_bytes = 0
    # The least bytes dwq's quantizers move: read x, write out (fake quant), in their dtypes (bfloat16 or
    # float16 under autocast: counted at 4 bytes, half mode's GB/s came out 1.5-1.7x too high).
    # FunctionEvent has no dtypes; its id is the kineto event's correlation id.
    dtypes = {k.correlation_id(): k.dtypes() for k in p.profiler.kineto_results.events()}
    for e in p.events():
        if e.name in ("dwq::fake_quantize", "dwq::weight_fake_quantize", "dwq::act_qparams") and e.input_shapes:
            n = 1
            for d in e.input_shapes[0]:
                n *= d
            read = ELEMENT_BYTES[dtypes[e.id][0]]
            if e.name == "dwq::act_qparams":
                quant_bytes += n * read
                continue
            out_dtype = e.concrete_inputs[2] if e.name == "dwq::weight_fake_quantize" else None
            quant_bytes += n * (read + (read if out_dtype is None else SCALAR_TYPE_BYTES[out_dtype]))
    return dict(rows), quant_bytes


def count_syncs(fn, device):
    if device.type != "cuda":
        return None
    fn()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fn()
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum(1 for x in w if "synchroniz" in str(x.message).lower())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=positive_int, default=None,
                    help="train batch (eval: twice it); default 128 on CUDA, 16 on CPU")
    ap.add_argument("--bits", type=int, default=4, choices=range(MIN_BITS, MAX_BITS + 1), metavar="BITS")
    ap.add_argument("--steps", type=nonneg_int, default=7, help="PGD steps of the training step")
    ap.add_argument("--eval-modes", nargs="+", choices=["fp32", "half", "compiled"], default=["fp32", "half"],
                    help="the eval forward's modes (issue 10's targets are per mode)")
    ap.add_argument("--json", type=path_arg)
    ap.add_argument("--md", type=path_arg)
    args = ap.parse_args(argv)
    output_paths(ap, args, "json", "md")
    device = device_arg(ap, args.device)
    batch = args.batch or (128 if device.type == "cuda" else 16)
    torch.backends.cudnn.benchmark = True
    out = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", batch=batch,
               bits=args.bits, pgd_steps=args.steps, torch=torch.__version__, runs={})
    for impl in ("float", "rpt"):
        m, x, y = make(impl, device, batch, args.bits)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        m.train()
        rows, qbytes = profile(lambda: train_step(m, x, y, opt, args.steps), device)
        syncs = count_syncs(lambda: train_step(m, x, y, opt, args.steps), device)
        out["runs"][f"train_step/{impl}"] = dict(kinds=rows, quantizer_bytes=qbytes, host_syncs=syncs)
        m.eval()
        xe = torch.rand(2 * batch, 3, 32, 32, device=device)
        for mode in [md for md in ("fp32", "half", "compiled") if md in args.eval_modes]:
            fwd = eval_forward(m, xe, mode, device)
            rows, qbytes = profile(fwd, device)
            name = "eval_forward" if mode == "fp32" else f"eval_forward_{mode}"
            out["runs"][f"{name}/{impl}"] = dict(kinds=rows, quantizer_bytes=qbytes,
                                                 host_syncs=count_syncs(fwd, device))
    lines = [f"Profile on {out['device']} (torch {out['torch']}): PreActResNet18, train batch {batch} PGD-{args.steps}, "
             f"eval batch {2 * batch}, RPT at {args.bits} bits; time in ms ({'device' if device.type == 'cuda' else 'host self'} "
             f"time), launches (ops on the CPU).", "",
             "| run | kind | ms | launches |", "|---|---|---|---|"]
    for run, r in out["runs"].items():
        total = sum(v["us"] for v in r["kinds"].values())
        for kind, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1]["us"]):
            lines.append(f"| {run} | {kind} | {v['us'] / 1e3:.2f} | {v['launches']} |")
        extra = f"; host syncs {r['host_syncs']}" if r["host_syncs"] is not None else ""
        qt = sum(r["kinds"].get(k, {}).get("us", 0) for k in ("act_qparams", "fake_quantize", "weight_fake_quantize"))
        bw = f", quantizers {r['quantizer_bytes'] / 1e6:.0f} MB at {r['quantizer_bytes'] / (qt * 1e-6) / 1e9:.0f} GB/s" if qt else ""
        lines.append(f"| {run} | **total** | {total / 1e3:.2f} | {sum(v['launches'] for v in r['kinds'].values())}{bw}{extra} |")
    md = "\n".join(lines)
    print(md)
    if args.json:
        save_json(args.json, out)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md + "\n")


if __name__ == "__main__":
    main()

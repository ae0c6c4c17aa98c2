"""A ResNet block's residual add and ReLU, fused against composed (CPU): ``dwq.ops.add_relu_`` (one
pass) against ``x.add_(other).relu_()`` (what an integer model ran before), and
``dwq.ops.add_relu_quantize_`` (also the next layer's input codes, in that pass) against that and
``quantize_act``, alone on ResNet-50's residual shapes; ``dwq.ops.qconv2d_residual`` (the block's last
conv with the add, ReLU and codes in its epilogue) against ``qconv2d`` and ``add_relu_quantize_`` on
ResNet-50's conv3 shapes; ``dwq.ops.add_affine_quantize_`` (a
pre-activation block's add and the next block's batch norm, ReLU and codes) against ``add_`` and
``affine_quantize_act`` on PreActResNet-18's; and the whole 8-bit ResNet-50 and PreActResNet-18
integer models with their programs' fused steps and without, in one run.

Usage: python benchmarks/bench_residual.py [--threads N] [--budget S] [--batches 8 1]
                                           [--preact-batches 128 32] [--json FILE]

Records (benchmarks/records.py): op ``add_relu``, ``add_relu_quantize``, ``add_affine_quantize``
(shape "b8 256x56x56 channels_last"), ``qconv2d_residual`` (shape "b8 64->256x56x56 1x1
channels_last"), ``resnet50`` or ``preact_resnet18`` (shape "b8 3x224x224", bits 8), impl ``composed``
or ``fused``; the models also ``fused_add`` (the fused steps but the conv + add + relu ones). Each
pair (or triple) is timed round-robin in one process (dwq.deploy.time_round_robin); the outputs are
checked bit-equal first. It sets the allocator as the ``dwq`` command does
(``dwq.memory.keep_freed_memory``).
"""
import os
import sys

import torch

import dwq.ops as ops
from dwq.deploy import convert, time_round_robin
from dwq.memory import keep_freed_memory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_affine import cpu_ab_parser, parse_cpu_ab, ratio_table, start_cpu_run, switched_forward  # noqa: E402
from bench_models import BUILD, calibrate  # noqa: E402
from records import FLOAT32_BITS, finish, output_paths, record  # noqa: E402  (benchmarks/records.py)

# ResNet-50's block outputs at batch 8 (channels, side); the model has 3, 4, 6 and 3 of each.
SHAPES = [(256, 56), (512, 28), (1024, 14), (2048, 7)]
# PreActResNet-18's (at batch 128), where each add's sum goes to the next block's batch norm.
PREACT_SHAPES = [(64, 32), (128, 16), (256, 8), (512, 4)]
SIZE = {"resnet50": (3, 224, 224), "preact_resnet18": (3, 32, 32)}


def _operands(g, shape):
    """x and other, channels-last (as the integer model passes them)."""
    return [torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last) for _ in range(2)]


def bench_ops(budget, batch, records):
    g = torch.Generator().manual_seed(0)
    for C, side in SHAPES:
        shape = (batch, C, side, side)
        a, b = _operands(g, shape)
        assert torch.equal(a.clone().add_(b).relu_(), ops.add_relu_(a.clone(), b)), f"{shape}: values differ"
        want = ops.quantize_act(a.clone().add_(b).relu_(), torch.tensor([0.05]), torch.tensor([0], dtype=torch.int32), 8)
        got = ops.add_relu_quantize_(a.clone(), b, torch.tensor([0.05]), torch.tensor([0], dtype=torch.int32), 8)
        assert torch.equal(want, got), f"{shape}: codes differ"
        # Each impl rewrites its own buffer in place, as the model does (the values grow by at most
        # |b| a call: no overflow in any number of repetitions the budget allows).
        bufs = {"composed": a.clone(), "fused": a.clone()}
        qp = (torch.tensor([0.05]), torch.tensor([0], dtype=torch.int32), 8)
        pairs = {"add_relu": {"composed": lambda: bufs["composed"].add_(b).relu_(),
                              "fused": lambda: ops.add_relu_(bufs["fused"], b)},
                 "add_relu_quantize": {"composed": lambda: ops.quantize_act(bufs["composed"].add_(b).relu_(), *qp),
                                       "fused": lambda: ops.add_relu_quantize_(bufs["fused"], b, *qp)}}
        name = f"b{batch} {C}x{side}x{side} channels_last"
        for op, fns in pairs.items():
            bits = FLOAT32_BITS if op == "add_relu" else 8  # (add_relu is float32 in and out)
            for impl, t in time_round_robin(fns, budget_s=budget, min_reps=10, max_reps=200).items():
                records.append(record(op, name, bits, impl, t["median_ms"], t["min_ms"]))
        print(f"  {name} done", flush=True)


# ResNet-50's last conv of each block (in, out channels, side; 1x1), whose output the residual add reads.
CONV3_SHAPES = [(64, 256, 56), (128, 512, 28), (256, 1024, 14), (512, 2048, 7)]


def bench_conv_ops(budget, batch, records):
    """qconv2d then add_relu_quantize_ (composed) against qconv2d_residual (fused), 8 bits."""
    g = torch.Generator().manual_seed(2)
    for cin, cout, side in CONV3_SHAPES:
        x = torch.randint(0, 256, (batch, cin, side, side), generator=g, dtype=torch.uint8)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randint(0, 256, (cout, cin, 1, 1), generator=g, dtype=torch.uint8)
        zw = torch.randint(0, 256, (cout,), generator=g, dtype=torch.int32)
        conv = (torch.tensor([0.01]), torch.tensor([100], dtype=torch.int32), 8, ops.pack_conv_weight(w, zw, 8),
                torch.rand(cout, generator=g) * 1e-3 + 1e-5, 1, 1, 0, torch.randn(cout, generator=g),
                torch.randn(cout, generator=g))
        res = _operands(g, (batch, cout, side, side))[0]
        qp = (torch.tensor([0.05]), torch.tensor([0], dtype=torch.int32), 8)

        def composed():
            y = ops.qconv2d(x, *conv)
            return y, ops.add_relu_quantize_(y, res, *qp)

        def fused():
            return ops.qconv2d_residual(x, *conv, res, True, *qp)

        assert all(torch.equal(a, b) for a, b in zip(composed(), fused())), f"{cout}x{side}: values differ"
        name = f"b{batch} {cin}->{cout}x{side}x{side} 1x1 channels_last"
        for impl, t in time_round_robin({"composed": composed, "fused": fused}, budget_s=budget, min_reps=10,
                                        max_reps=200).items():
            records.append(record("qconv2d_residual", name, 8, impl, t["median_ms"], t["min_ms"]))
        print(f"  {name} done", flush=True)


def bench_affine_ops(budget, batch, records):
    g = torch.Generator().manual_seed(1)
    for C, side in PREACT_SHAPES:
        shape = (batch, C, side, side)
        a, b = _operands(g, shape)
        args = (torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g), True, torch.tensor([0.05]),
                torch.tensor([0], dtype=torch.int32), 8)
        want = ops.affine_quantize_act(a.clone().add_(b), *args)
        assert torch.equal(want, ops.add_affine_quantize_(a.clone(), b, *args)), f"{shape}: codes differ"
        bufs = {"composed": a.clone(), "fused": a.clone()}
        fns = {"composed": lambda: ops.affine_quantize_act(bufs["composed"].add_(b), *args),
               "fused": lambda: ops.add_affine_quantize_(bufs["fused"], b, *args)}
        name = f"b{batch} {C}x{side}x{side} channels_last"
        for impl, t in time_round_robin(fns, budget_s=budget, min_reps=10, max_reps=200).items():
            records.append(record("add_affine_quantize", name, 8, impl, t["median_ms"], t["min_ms"]))
        print(f"  {name} done", flush=True)


def bench_model(net, budget, batches, records):
    """The 8-bit integer model of ``net`` with its program's fused steps against without, per batch; also
    with all but the conv + add steps (``fused_add``) where the program has any."""
    torch.manual_seed(0)
    size = SIZE[net]
    im = convert(calibrate(BUILD[net]([8]), size, [8]), [8])
    fused = im._plan
    im._compile(fuse=False)
    composed = im._plan
    im._compile(conv_residual=False)
    fused_add, im._plan = im._plan, fused
    g = torch.Generator().manual_seed(0)
    for batch in batches:
        x = torch.rand(batch, *size, generator=g)

        def run(plan):
            return switched_forward(im, x, lambda: setattr(im, "_plan", plan), lambda: setattr(im, "_plan", fused))

        fns = {"composed": run(composed), "fused_add": run(fused_add), "fused": run(fused)}
        if len(fused_add[0]) == len(fused[0]):  # no conv + add step (PreActResNet's blocks end in a plain add)
            del fns["fused_add"]
        want = fns["composed"]()
        assert all(torch.equal(want, f()) for f in fns.values()), f"{net}: the fused program's logits differ"
        shape = f"b{batch} {'x'.join(map(str, size))}"
        for impl, t in time_round_robin(fns, budget_s=budget, min_reps=5, max_reps=200).items():
            records.append(record(net, shape, 8, impl, t["median_ms"], t["min_ms"]))
        print(f"  {net} {shape} done", flush=True)


def main(argv=None):
    p = cpu_ab_parser(__doc__, 4.0)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 1], help="ResNet-50 batch sizes (default 8 1)")
    p.add_argument("--preact-batches", type=int, nargs="+", default=[128, 32],
                   help="PreActResNet-18 batch sizes (default 128 32)")
    args = parse_cpu_ab(p, argv)
    for name in ("batches", "preact_batches"):
        if min(getattr(args, name)) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    output_paths(p, args, "json")
    keep_freed_memory()
    t0, records = start_cpu_run("bench_residual", args.threads), []
    bench_ops(args.budget, args.batches[0], records)
    bench_conv_ops(args.budget, args.batches[0], records)
    bench_affine_ops(args.budget, args.preact_batches[0], records)
    bench_model("resnet50", args.budget * 3, args.batches, records)
    bench_model("preact_resnet18", args.budget * 3, args.preact_batches, records)
    finish(records, args, ratio_table, None, t0, digits=3)


if __name__ == "__main__":
    main()

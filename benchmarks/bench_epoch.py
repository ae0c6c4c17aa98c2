"""What one epoch of CIFAR-10 Random Precision Training costs, measured (issue 10: "the README states
what a CIFAR-10 RPT epoch costs on an H200"), as ``dwq train`` runs it.

    python benchmarks/bench_epoch.py [--device cpu|cuda] [--impls rpt,float] [--modes eager,graphs,amp,amp_graphs]
                                     [--images 50000] [--batch-size 128] [--attack-iters 7] [--workers 4]
                                     [--json FILE]

Each (impl, mode) trains one epoch with dwq.train.Trainer, the loop of ``dwq train`` (its batch
order, loader workers, seeded augmentation, PGD-k attack, precision draws, switchable BN, SGD with
momentum and weight decay, the per-epoch checkpoint), on random CIFAR-shaped images: torchvision's
CIFAR10 class and the same transforms as ``dwq train --dataset cifar10`` (RandomCrop(32, 4) + flip,
ToTensor) over random pixels and labels, since no dataset can be downloaded. impl "rpt":
PreActResNet18 with precisions 4..16, switchable BN, a precision drawn per step
(``--random-precision-training --switchable-bn``); "float": the same network at full precision.
mode "eager" (fp32), "graphs" (``--cuda-graphs``: the attack replayed from a CUDA graph per
precision), "amp" (``--amp``), "amp_graphs"; all but eager on CUDA only. No validation: the
epoch's time is the training loop's, from the start of the epoch to its metrics line (first
epoch: cuDNN's autotuning and the graph captures included). Records (records.record):
{"op": "train_epoch", "shape", "bits" (None: drawn per step; 32 for float), "impl", "median_ms" and
"min_ms" (the one epoch's time, both), "mode", "device", "seconds", "steps", "images_per_s",
"workers", "precisions"}. Writes only --json FILE (the runs' folders are temporary).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dwq.cli.common import nonneg_int, path_arg, positive_int  # noqa: E402
from dwq._errors import first_line  # noqa: E402
from dwq.data import DatasetError, cifar_transforms  # noqa: E402
from dwq.models import build_model  # noqa: E402
from dwq.quant import precision_name  # noqa: E402
from dwq.train import TrainConfig, Trainer  # noqa: E402

from records import FLOAT32_BITS, device_arg, device_name, output_paths, record, save_records  # noqa: E402

IMPLS = ("rpt", "float")
MODES = ("eager", "graphs", "amp", "amp_graphs")
RPT_SET = list(range(4, 17))


def random_cifar(n: int, seed: int, transform):
    """torchvision's CIFAR10 over ``n`` random images and labels: its own ``__getitem__`` (a PIL image
    through ``transform``), without the archive's files."""
    import torchvision.datasets as tvd

    ds = tvd.CIFAR10.__new__(tvd.CIFAR10)  # (not __init__: it reads and checks the files)
    tvd.VisionDataset.__init__(ds, root="", transform=transform)
    g = np.random.default_rng(seed)
    ds.data = g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    ds.targets = g.integers(0, 10, n).tolist()
    ds.train = True
    return ds


def run_epoch(impl, mode, device, train_set, args):
    """Seconds of one epoch of ``dwq train`` (impl, mode) on ``train_set``, and its number of steps."""
    torch.manual_seed(0)
    precisions = RPT_SET if impl == "rpt" else [None]
    model, _ = build_model("preact_resnet18", "cifar10", precisions, switchable_bn=impl == "rpt")
    cfg = TrainConfig(attack="pgd", attack_iters=args.attack_iters, epochs=1, batch_size=args.batch_size,
                      precisions=precisions if impl == "rpt" else [None], random_precision=impl == "rpt",
                      amp=mode.startswith("amp"), cuda_graphs=mode.endswith("graphs"), progress=False)
    seen = []
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(model, train_set, cfg, out, device=device, num_workers=args.workers, on_epoch=seen.append)
        tr.fit()
    return seen[0]["seconds"], tr.steps_per_epoch, [precision_name(p) for p in precisions]


def names(text, allowed, flag):
    got = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in got if s not in allowed]
    if not got or bad:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: expected a comma-separated list of {', '.join(allowed)}")
    return got


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--impls", default="rpt", type=lambda t: names(t, IMPLS, "--impls"))
    ap.add_argument("--modes", default=None, type=lambda t: names(t, MODES, "--modes"),
                    help="default: eager,graphs on CUDA, eager on a CPU")
    ap.add_argument("--images", type=positive_int, default=50000,
                    help="training images in the epoch (CIFAR-10: 50000; dwq train holds some out for validation)")
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--attack-iters", type=positive_int, default=7)
    ap.add_argument("--workers", type=nonneg_int, default=4, help="data loader workers (dwq train --workers)")
    ap.add_argument("--json", type=path_arg)
    args = ap.parse_args(argv)
    device = device_arg(ap, args.device)
    output_paths(ap, args, "json")
    modes = args.modes or (["eager", "graphs"] if device.type == "cuda" else ["eager"])
    if device.type != "cuda" and modes != ["eager"]:
        ap.error(f"--modes {','.join(modes)} on {device.type}: only eager runs off CUDA (graphs and amp need a GPU)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # (as dwq train sets it)
    try:  # (without torchvision: a traceback ending in the DatasetError that says so)
        train_set = random_cifar(args.images, 0, cifar_transforms(augment=True)[0])
    except (DatasetError, ImportError) as e:
        ap.error(f"the CIFAR-shaped data needs torchvision: {first_line(e)}")
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch "
          f"{torch.__version__}; one epoch of PreActResNet18 PGD-{args.attack_iters}, {args.images} random "
          f"CIFAR-shaped images, batch {args.batch_size}, {args.workers} loader workers", flush=True)
    records, t0 = [], time.time()
    for impl in args.impls:
        for mode in modes:
            seconds, steps, precs = run_epoch(impl, mode, device, train_set, args)
            ms = seconds * 1e3
            records.append(record("train_epoch", f"preact_resnet18 b{args.batch_size} {args.images}x3x32x32",
                                  FLOAT32_BITS if impl == "float" else None, impl, ms, ms, mode=mode,
                                  device=device_name(device), seconds=seconds, steps=steps,
                                  images_per_s=args.images / seconds, workers=args.workers, precisions=precs,
                                  attack_iters=args.attack_iters))
            print(f"{impl:6s} {mode:11s} {seconds:8.1f} s  {steps} steps, {args.images / seconds:7.0f} images/s",
                  flush=True)
            if args.json:
                save_records(args.json, records, done=False)
    if args.json:
        save_records(args.json, records, done=True)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

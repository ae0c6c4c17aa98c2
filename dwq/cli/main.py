"""``dwq`` command line: ``dwq train``, ``dwq eval``, ``dwq demo`` (glue only).

Reference flag equivalents (GATECH-EIC/Double-Win-Quant ``train.py``):
``--network PreActResNet18`` -> ``--network preact_resnet18`` (reference names accepted);
``--attack_type pgd`` -> ``--attack pgd``; ``--epsilon 8`` -> ``--epsilon 8/255``;
``--alpha 2`` -> ``--alpha 2/255``; ``--attack_iters 7`` -> ``--attack-iters 7``;
``--random_precision_training`` -> ``--random-precision-training``;
``--num_bits_schedule 4 16`` -> ``--num-bits-schedule 4 16``; ``--switchable_bn`` ->
``--switchable-bn``; ``--num_bits 4`` -> ``--num-bits 4``; ``--lr_max`` -> ``--lr``;
``--lr_schedule`` -> ``--lr-schedule``; ``--out_dir`` -> ``--out``; ImageNet ``n_repeats`` -> ``--free-replays``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import deploy as deploy_cli
from .common import (CLIError, fraction, fresh_dir, nonneg_int, positive_int, precision_arg,
                     precision_set_from_args)

DATASET_NAMES = ("mnist5k", "cifar10", "cifar100", "svhn", "imagenet")
EVAL_ATTACKS = ("pgd", "fgsm", "cw-l2", "cw-linf", "bandits", "autoattack")  # dwq.eval.EVAL_ATTACKS (not imported: keeps --help fast)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dwq", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Double-Win Quant: random precision training (RPT) and honest random precision "
                    "inference (RPI) robustness evaluation.")
    sub = p.add_subparsers(dest="command", metavar="{train,eval,demo,deploy,bench}")
    sub.required = True

    # ---- train
    t = sub.add_parser("train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="adversarial training (PGD/FGSM/FGSM-RS/free), optionally with RPT",
                       description="Adversarial training with optional Random Precision Training. Writes "
                                   "config.json, last.pt (every epoch, atomic), best.pt (best validation PGD "
                                   "accuracy on a held-out split of the training set), metrics.jsonl into --out. "
                                   "Multi-GPU: torchrun --nproc_per_node=N -m dwq.cli.main train ...")
    t.add_argument("--out", required=True, help="output folder (must be new or empty unless --resume)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    t.add_argument("--dataset", default="mnist5k", choices=DATASET_NAMES,
                   help="mnist5k is embedded (no download); the others read --data-dir")
    t.add_argument("--data-dir", default=None, help="local dataset folder (the error message says what to put where)")
    t.add_argument("--network", default="small_cnn",
                   help="small_cnn | preact_resnet18 | wide_resnet34_10 | resnet50 (reference names such as "
                        "PreActResNet18 / WideResNet32 accepted)")
    t.add_argument("--width", type=positive_int, default=32, help="small_cnn only: channels of its first conv")
    t.add_argument("--pretrained", default=None,
                   help="resnet50 only: local torchvision ResNet-50 state_dict to start from (the reference's "
                        "ImageNet runs start from a non-robust pretrained model)")
    t.add_argument("--precisions", nargs="+", type=precision_arg, default=None,
                   help="the model's precision set, e.g. 2 3 4 8 fp (fp = full precision; 4w8a = 4-bit weights, "
                        "8-bit activations); overrides --num-bits-schedule")
    t.add_argument("--num-bits-schedule", nargs=2, type=int, metavar=("LO", "HI"), default=None,
                   help="precision set LO..HI bits (reference: --num_bits_schedule 4 16)")
    t.add_argument("--random-precision-training", action="store_true",
                   help="RPT: draw a precision from the set at every iteration, for both the attack and the update")
    t.add_argument("--num-bits", type=precision_arg, default=None,
                   help="without RPT: the single training precision (default: full precision if the set has it, "
                        "else the set's last entry)")
    t.add_argument("--switchable-bn", action="store_true",
                   help="one BatchNorm per precision (the paper's SBN); without it one BN is shared")
    t.add_argument("--attack", default="pgd", choices=("pgd", "fgsm", "fgsm-rs", "free", "none"),
                   help="training attack: PGD-k, FGSM, FGSM with random start ('fast'), free (replays), none")
    t.add_argument("--epsilon", type=fraction, default=8 / 255, help="L-inf radius, e.g. 8/255")
    t.add_argument("--alpha", type=fraction, default=None,
                   help="attack step: default 2/255 for pgd, ε for fgsm and free, 1.25ε for fgsm-rs "
                        "(reference FGSM used 10/255)")
    t.add_argument("--attack-iters", type=positive_int, default=7, help="PGD steps during training")
    t.add_argument("--free-replays", type=positive_int, default=4,
                   help="free training: updates per minibatch (precision resampled at each)")
    t.add_argument("--epochs", type=positive_int, default=10, help="epochs (free: each minibatch is replayed)")
    t.add_argument("--batch-size", type=positive_int, default=128, help="global batch size (split over DDP ranks)")
    t.add_argument("--lr", type=float, default=0.1, help="peak learning rate (reference: --lr_max)")
    t.add_argument("--lr-schedule", default="multistep", choices=("multistep", "cyclic", "constant"),
                   help="multistep: ×0.1 at 50%% and 75%% of iterations; cyclic: 0 -> lr -> 0 linearly")
    t.add_argument("--lr-milestones", nargs="+", type=float, default=[0.5, 0.75],
                   help="multistep: fractions of all iterations where the LR is multiplied by 0.1 (ImageNet free "
                        "training: 0.5)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    t.add_argument("--val-size", type=float, default=0.1,
                   help="held-out validation part of the training set (fraction or count) for best.pt; 0 disables "
                        "validation (then no best.pt)")
    t.add_argument("--train-subset", type=positive_int, default=None,
                   help="use only the first N training images after the validation split (quick checks)")
    t.add_argument("--val-pgd-steps", type=nonneg_int, default=10, help="PGD steps of the validation attack")
    t.add_argument("--seed", type=int, default=0, help="seed of data order, precision draws and random starts")
    t.add_argument("--amp", action="store_true", help="CUDA only: torch.autocast fp16 + GradScaler (reference: apex)")
    t.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    t.add_argument("--workers", type=nonneg_int, default=2, help="data loader workers (folder datasets)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")

    # ---- eval
    e = sub.add_parser("eval", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="evaluate a checkpoint: clean, attacks per precision, paper and adaptive RPI "
                            "protocols, transferability matrix",
                       description="Evaluate a checkpoint written by dwq train on the test set. Writes report.json, "
                                   "transfer.json and transfer.png into --out.")
    e.add_argument("--checkpoint", required=True, help="a best.pt or last.pt from dwq train")
    e.add_argument("--out", required=True, help="new output folder")
    e.add_argument("--data-dir", default=None, help="local dataset folder (not needed for mnist5k)")
    e.add_argument("--precisions", nargs="+", type=precision_arg, default=None,
                   help="RPI set to evaluate (each must be in the checkpoint's set; default: the whole set)")
    e.add_argument("--attack", default="pgd", choices=EVAL_ATTACKS, help="attack for per-precision, paper and "
                   "transfer evaluations (the adaptive protocol always uses EOT-PGD)")
    e.add_argument("--epsilon", type=fraction, default=8 / 255, help="L-inf radius")
    e.add_argument("--alpha", type=fraction, default=2 / 255, help="PGD step")
    e.add_argument("--steps", type=positive_int, default=20, help="PGD / EOT-PGD steps (paper: 20 and 100)")
    e.add_argument("--restarts", type=positive_int, default=1, help="PGD restarts (paper: 10)")
    e.add_argument("--cw-tau", type=float, default=0.05, help="cw-linf: initial τ (paper: 0.05/0.1/0.2)")
    e.add_argument("--bandits-queries", type=positive_int, default=1000, help="bandits: query budget per image")
    e.add_argument("--bandits-tile", type=positive_int, default=4, help="bandits: tile size of the data prior")
    e.add_argument("--protocols", nargs="+", default=["paper", "adaptive", "transfer"],
                   choices=("paper", "adaptive", "transfer", "autoattack-rand", "autoattack-standard"),
                   help="which evaluations to run besides clean/per-precision accuracy")
    e.add_argument("--n-test", type=positive_int, default=None, help="evaluate the first N test images only")
    e.add_argument("--batch-size", type=positive_int, default=250, help="evaluation batch size")
    e.add_argument("--seed", type=int, default=0, help="seed of precision draws and random starts")
    e.add_argument("--device", default=None, help="cpu | cuda | cuda:N")

    # ---- demo
    d = sub.add_parser("demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="the embedded MNIST-5k experiment (< 5 min on 2 CPU cores)",
                       description="Trains a small CNN three ways on MNIST-5k (full-precision PGD-AT, fixed 4-bit "
                                   "PGD-AT, RPT over 2/3/4/6/8 bits with switchable BN), evaluates clean accuracy, "
                                   "the paper protocol, the adaptive protocol and the transferability matrices, "
                                   "prints a table and writes report.json and heatmaps into --out.")
    d.add_argument("--out", default="runs/demo", help="new output folder")
    d.add_argument("--epochs", type=positive_int, default=6, help="training epochs per model")
    d.add_argument("--n-test", type=positive_int, default=1000, help="test images (at most 1000)")
    d.add_argument("--train-images", type=positive_int, default=None,
                   help="train on the first N of the 3,600 training images only (smoke tests; numbers then mean "
                        "nothing)")
    d.add_argument("--seed", type=int, default=0, help="seed")
    d.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    d.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    deploy_cli.add_parsers(sub)
    return p


# ----------------------------------------------------------------------------- helpers
def _device(name):
    import torch
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return name


def _user_set(ps):
    return [list(p) if isinstance(p, tuple) else p for p in ps]



# ----------------------------------------------------------------------------- train
def cmd_train(a):
    import torch

    from dwq.data import get_datasets, train_val_split
    from dwq.models import build_model
    from dwq.train import TrainConfig, Trainer
    from dwq.train.dist import cleanup, setup

    if a.resume:
        if not os.path.isfile(os.path.join(a.out, "last.pt")):
            raise CLIError(f"--resume: {a.out}/last.pt does not exist")
    else:
        fresh_dir(a.out, create=False, hint=" (or --resume to continue the training run there)")
    model_set = precision_set_from_args(a.precisions, a.num_bits_schedule)
    if model_set is None:
        model_set = [None] if a.num_bits is None else [a.num_bits]
    if a.random_precision_training:
        train_set_p = None
        if a.num_bits is not None:
            raise CLIError("--num-bits is for fixed-precision training; drop it with --random-precision-training")
    else:
        p = a.num_bits if a.num_bits is not None else (None if None in model_set else model_set[-1])
        if str(p) not in map(str, model_set):
            raise CLIError(f"--num-bits {p} is not in the precision set {model_set}")
        train_set_p = [p]
    alpha = a.alpha if a.alpha is not None else {"pgd": 2 / 255, "fgsm": a.epsilon, "free": a.epsilon,
                                                 "fgsm-rs": 1.25 * a.epsilon, "none": 0.0}[a.attack]
    if alpha > 1:
        raise CLIError(f"step size {alpha} is outside [0, 1]")
    rank, world, device = setup(_device(a.device))
    train, _test, info = get_datasets(a.dataset, a.data_dir)
    train, val = train_val_split(train, a.val_size, seed=a.seed)
    if a.train_subset:
        train = torch.utils.data.Subset(train, range(min(a.train_subset, len(train))))
    torch.manual_seed(a.seed)  # same initial weights for the same seed
    model, key = build_model(a.network, a.dataset, model_set, a.switchable_bn, a.width, a.pretrained)
    extra = {"network": key, "dataset": a.dataset, "model_precisions": _user_set(model_set),
             "switchable_bn": a.switchable_bn, "width": a.width}
    cfg = TrainConfig(attack=a.attack, epsilon=a.epsilon, alpha=alpha, attack_iters=a.attack_iters,
                      free_replays=a.free_replays, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                      momentum=a.momentum, weight_decay=a.weight_decay, lr_schedule=a.lr_schedule,
                      precisions=train_set_p, random_precision=a.random_precision_training, seed=a.seed,
                      amp=a.amp, lr_milestones=tuple(a.lr_milestones), val_pgd_steps=a.val_pgd_steps, progress=not a.no_progress, extra=extra)
    tr = Trainer(model, train, cfg, a.out, val_set=val, device=device, num_workers=a.workers,
                 rank=rank, world=world)
    if a.resume:
        ck_cfg = json.load(open(os.path.join(a.out, "config.json")))
        if ck_cfg.get("extra", {}).get("network") != key:
            raise CLIError(f"--resume: {a.out} holds a {ck_cfg.get('extra', {}).get('network')} run, not {key}")
        tr.resume()
        if rank == 0:
            print(f"resumed from {a.out}/last.pt at epoch {tr.epoch}")
    try:
        tr.fit()
    except KeyboardInterrupt:
        if rank == 0:
            print(f"dwq train: interrupted; the last complete epoch is in {a.out}/last.pt "
                  f"(continue with: dwq train --resume --out {a.out} <same flags>)", file=sys.stderr)
        return 130
    finally:
        cleanup()
    if rank == 0:
        print(f"done: {a.out}/last.pt, best validation model {a.out}/best.pt, metrics {a.out}/metrics.jsonl")
    return 0


# ----------------------------------------------------------------------------- eval
def make_attack(name, a, num_classes=10):
    from dwq.eval import make_attack as _make

    return _make(name, epsilon=a.epsilon, alpha=a.alpha, steps=a.steps, restarts=a.restarts, cw_tau=a.cw_tau,
                 bandits_queries=a.bandits_queries, bandits_tile=a.bandits_tile, num_classes=num_classes)


def _tensors(dataset, n=None):
    import torch
    if hasattr(dataset, "tensors"):
        x, y = dataset.tensors
    else:
        idx = range(len(dataset) if n is None else min(n, len(dataset)))
        xs, ys = zip(*(dataset[i] for i in idx))
        x, y = torch.stack(xs), torch.as_tensor(ys)
    return (x[:n], y[:n]) if n else (x, y)


def cmd_eval(a):
    import torch

    from dwq import eval as E
    from dwq.data import get_datasets
    from dwq.nn import precision_set
    from dwq.quant.cost import bitops_summary
    from dwq.train import load_trained_model

    if not os.path.isfile(a.checkpoint):
        raise CLIError(f"checkpoint {a.checkpoint} does not exist")
    device = _device(a.device)
    model, ck = load_trained_model(a.checkpoint, device)
    ex = ck["config"]["extra"]
    mset = precision_set(model)
    ps = a.precisions if a.precisions else mset
    for p in ps:
        if str(p) not in map(str, mset):
            raise CLIError(f"precision {p} is not in the checkpoint's precision set {mset}")
    if ex["dataset"] == "imagenet" and not a.n_test:
        raise CLIError("ImageNet evaluation holds the test images in memory: give --n-test (e.g. 5000)")
    fresh_dir(a.out, create=False)
    torch.manual_seed(a.seed)
    _, test, info = get_datasets(ex["dataset"], a.data_dir, augment=False)
    fresh_dir(a.out)
    x, y = _tensors(test, a.n_test)
    x, y = x.to(device), y.to(device)
    atk = make_attack(a.attack, a, info.num_classes)
    t0 = time.time()
    rep = {"checkpoint": os.path.abspath(a.checkpoint), "network": ex["network"], "dataset": ex["dataset"],
           "precisions": [E.pname(p) for p in ps], "epsilon": a.epsilon, "attack": a.attack, "steps": a.steps,
           "restarts": a.restarts, "n": len(y)}
    rep["clean_acc"] = E.clean_accuracy(model, x, y, ps, a.batch_size)
    rep[f"{a.attack}_acc"] = E.robust_accuracy(model, x, y, ps, atk, a.batch_size)
    rpi = {}
    if "paper" in a.protocols:
        pp = E.paper_protocol(model, x, y, ps, atk, batch_size=min(a.batch_size, 100), seed=a.seed)
        rpi["clean"], rpi[f"{a.attack}_paper"] = pp["clean"], pp["robust"]
    if "adaptive" in a.protocols:
        ad, ad_corr = E.adaptive_protocol(model, x, y, ps, a.epsilon, a.alpha, a.steps, a.restarts,
                                          a.batch_size, a.seed, return_correct=True)
        rpi["pgd_adaptive"] = ad["expected"]
        rpi["pgd_adaptive_worst_case"] = ad["worst_case"]
        rpi["pgd_adaptive_per_precision"] = ad["per_precision"]
    if "autoattack-rand" in a.protocols:
        rpi["autoattack_rand"] = E.autoattack_rpi(model, x, y, ps, a.epsilon, "rand", a.seed, info.num_classes)
    if "autoattack-standard" in a.protocols:
        rpi["autoattack_standard_per_precision"] = E.robust_accuracy(
            model, x, y, ps, make_attack("autoattack", a, info.num_classes), a.batch_size)
    rep["rpi"] = rpi
    if "transfer" in a.protocols:
        tm, tm_corr = E.transfer_matrix(model, x, y, ps, atk, a.batch_size, return_correct=True)
        rep["transfer_matrix"] = tm
        if "adaptive" in a.protocols:
            rpi["best_of_attacks"] = E.rpi_best_of_attacks([ad_corr, tm_corr])
        E.save_json(tm, os.path.join(a.out, "transfer.json"))
        E.save_heatmap(tm, os.path.join(a.out, "transfer.png"), f"{ex['network']}: {a.attack} robust accuracy (%)")
    rep["bitops"] = bitops_summary(model, info.input_size, ps)
    rep["seconds"] = time.time() - t0
    E.save_json(rep, os.path.join(a.out, "report.json"))
    fmt = lambda r: f"{100 * r['acc']:.1f}% [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"  # noqa: E731
    print(f"{ex['network']} on {ex['dataset']} (n={len(y)}, ε={a.epsilon:.4g}, {a.attack}, steps {a.steps})")
    for key in ("clean_acc", f"{a.attack}_acc"):
        print(f"  {key:<14}" + "  ".join(f"{p}: {fmt(r)}" for p, r in rep[key].items()))
    for key, r in rpi.items():
        if isinstance(r, dict) and "acc" in r:
            print(f"  RPI {key:<26}{fmt(r)}")
    print(f"wrote {a.out}/report.json ({rep['seconds']:.0f} s)")
    return 0


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        if a.command == "train":
            return cmd_train(a)
        if a.command == "eval":
            return cmd_eval(a)
        if a.command == "demo":
            from .demo import run_demo
            return run_demo(a)
        if a.command in deploy_cli.COMMANDS:
            return deploy_cli.COMMANDS[a.command](a)
    except CLIError as e:
        print(f"dwq {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dwq {a.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as e:
        from dwq.data import DatasetError
        from dwq.train import CheckpointError
        if isinstance(e, (DatasetError, CheckpointError, ValueError, FileNotFoundError)):
            print(f"dwq {a.command}: error: {e}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

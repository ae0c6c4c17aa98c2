"""``dwq train``: its flags, the run folder that records them, ``--resume`` and the console (glue only).

A run folder is the run. ``config.json`` (the same dict as each checkpoint's ``config``) records under
``extra.flags`` every flag that shaped the run, resolved (the precision set however it was given, the
attack step its default came to, absolute folders) and in dwq's one precision spelling, plus
``extra.history`` (the command lines that started and resumed it). ``dwq train --resume --out RUN``
restores those flags from ``RUN/last.pt``; the flags in :data:`RESUME_MAY_CHANGE` may be given again
with another value, any other flag that resolves differently is an error naming them all. A flag
added to the parser is recorded and checked as given unless :func:`resolve_flags` resolves it; list it
in ``RESUME_MAY_CHANGE`` if a run may continue with another value.

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

import json
import os
import shlex
import sys
import time

from dwq._version import __version__

from .common import (CLIError, HelpFormatter, flag, fresh_dir, nonneg_float, nonneg_int, pnames,
                     positive_float, positive_fraction, positive_int, precision_arg, precision_set_from_args,
                     seed_arg, unit_float, val_size_arg, writable_dir)

DATASET_NAMES = ("mnist5k", "cifar10", "cifar100", "svhn", "imagenet")
TRAIN_ATTACKS = ("pgd", "fgsm", "fgsm-rs", "free", "none")  # dwq.train.TRAIN_ATTACKS (not imported: fast --help)
PAPER_SET = list(range(4, 17))  # the paper's precision set, the default of --random-precision-training

# Flags that may take another value on --resume, and why that is safe. Every other recorded flag
# must resolve to the run's value.
RESUME_MAY_CHANGE = {
    "epochs": "a larger value trains longer (the LR schedule is stretched over the new total)",
    "workers": "data loading only",
    "no_progress": "console only",
    "device": "where the run continues (float rounding may differ between devices)",
    "data_dir": "the same dataset (--dataset must match) read from another folder, e.g. a node's local copy",
    "compile": "how the same computation runs (compiled kernels may round differently)",
    "deterministic": "how the same computation runs (which CUDA algorithms; their rounding may differ)",
}
NOT_RECORDED = ("command", "out", "resume")  # which command, where the run is, whether it resumes
SPELLING_OF = {"num_bits_schedule": "precisions"}  # another way to give a recorded flag
PRECISION_FLAGS = {"precisions": "list", "num_bits": "one"}  # recorded in the one spelling


def add_parser(sub):
    t = sub.add_parser("train", formatter_class=HelpFormatter,
                       help="adversarial training (PGD/FGSM/FGSM-RS/free), optionally with RPT",
                       description="Adversarial training with optional Random Precision Training. Writes "
                                   "config.json (every flag of the run), last.pt (every epoch, atomic), best.pt "
                                   "(best validation PGD accuracy on a held-out split of the training set) and "
                                   "metrics.jsonl into --out, and prints one line per epoch. --resume --out RUN "
                                   "continues a run with its own flags. Multi-GPU: torchrun --nproc_per_node=N "
                                   "-m dwq.cli.main train ...")
    t.add_argument("--out", required=True, help="run folder (must be new or empty unless --resume)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt with the flags recorded there; only "
                        + ", ".join(flag(k) for k in RESUME_MAY_CHANGE) + " may be given again with other values")
    t.add_argument("--dataset", default="mnist5k", choices=DATASET_NAMES,
                   help="mnist5k is embedded (no download); the others read --data-dir")
    t.add_argument("--data-dir", default=None,
                   help="local dataset folder for cifar10/cifar100/svhn/imagenet (an error message says what to "
                        "put where)")
    t.add_argument("--network", default="small_cnn",
                   help="small_cnn | preact_resnet18 | wide_resnet34_10 | resnet50 (reference names such as "
                        "PreActResNet18 / WideResNet32 accepted)")
    t.add_argument("--width", type=positive_int, default=32, help="small_cnn only: channels of its first conv")
    t.add_argument("--pretrained", default=None,
                   help="resnet50 only: local torchvision ResNet-50 state_dict to start from (the reference's "
                        "ImageNet runs start from a non-robust pretrained model)")
    t.add_argument("--precisions", nargs="+", type=precision_arg, default=None,
                   help="the model's precision set, e.g. 2 3 4 8 fp (fp = full precision; 4w8a = 4-bit weights, "
                        "8-bit activations). Default: 4..16 (the paper's set) with --random-precision-training, "
                        "else the --num-bits precision alone, else fp")
    t.add_argument("--num-bits-schedule", nargs=2, type=int, metavar=("LO", "HI"), default=None,
                   help="the precision set LO..HI bits, another way to write --precisions (reference: "
                        "--num_bits_schedule 4 16)")
    t.add_argument("--random-precision-training", action="store_true",
                   help="RPT: draw a precision from the set (at least two) at every iteration, for both the attack "
                        "and the update")
    t.add_argument("--num-bits", type=precision_arg, default=None,
                   help="without RPT: the single training precision (default: fp if the set has it, else the "
                        "set's last entry)")
    t.add_argument("--switchable-bn", action="store_true",
                   help="one BatchNorm per precision (the paper's SBN; needs a set of at least two); without it "
                        "one BN is shared")
    t.add_argument("--attack", default="pgd", choices=TRAIN_ATTACKS,
                   help="training attack: PGD-k, FGSM, FGSM with random start ('fast'), free (replays), none")
    t.add_argument("--epsilon", type=positive_fraction, default=8 / 255,
                   help="L-inf radius of the training and validation attacks (default: 8/255)")
    t.add_argument("--alpha", type=positive_fraction, default=None,
                   help="training attack step (default: 2/255 for pgd, ε for fgsm and free, 1.25ε for fgsm-rs; "
                        "reference FGSM used 10/255)")
    t.add_argument("--attack-iters", type=positive_int, default=7, help="--attack pgd only: PGD steps")
    t.add_argument("--free-replays", type=positive_int, default=4,
                   help="--attack free only: updates per minibatch (precision redrawn at each)")
    t.add_argument("--epochs", type=positive_int, default=10,
                   help="epochs (free: each minibatch is replayed); with --resume a larger value trains longer")
    t.add_argument("--batch-size", type=positive_int, default=128, help="global batch size (split over DDP ranks)")
    t.add_argument("--lr", type=positive_float, default=0.1, help="peak learning rate (reference: --lr_max)")
    t.add_argument("--lr-schedule", default="multistep", choices=("multistep", "cyclic", "constant"),
                   help="multistep: ×0.1 at the --lr-milestones; cyclic: 0 -> lr -> 0 linearly; constant")
    t.add_argument("--lr-milestones", nargs="+", type=float, default=[0.5, 0.75],
                   help="--lr-schedule multistep only: fractions of all iterations where the LR is multiplied by "
                        "0.1 (default: 0.5 0.75; ImageNet free training: 0.5)")
    t.add_argument("--momentum", type=unit_float, default=0.9, help="SGD momentum")
    t.add_argument("--weight-decay", type=nonneg_float, default=5e-4, help="SGD weight decay")
    t.add_argument("--val-size", type=val_size_arg, default=0.1,
                   help="held-out validation part of the training set for best.pt: a fraction in [0, 1) or a "
                        "whole number of images; 0 disables validation (then no best.pt) (default: 0.1)")
    t.add_argument("--train-subset", type=positive_int, default=None,
                   help="use only the first N training images after the validation split (quick checks)")
    t.add_argument("--val-pgd-steps", type=nonneg_int, default=10,
                   help="PGD steps of the validation attack (step ε/4); 0: clean validation accuracy only")
    t.add_argument("--seed", type=seed_arg, default=0, help="seed of initial weights, data order, precision draws and "
                                                        "random starts")
    t.add_argument("--reference", action="store_true",
                   help="the reference code's semantics (docs/workflow.md has the map): its quantizer (float zero "
                        "point, one activation range shared by all precisions) and normalization, zeroed gradients "
                        "for BN branches not drawn, and its CIFAR defaults for every flag not given (fgsm-rs step "
                        "10/255, or PGD step 2/255; 160 epochs; all training images: --val-size 0; float32); also "
                        "writes best_test_reference.pt, chosen as the reference chooses (test-set PGD-20 at the "
                        "lowest precision), never best.pt")
    t.add_argument("--amp", action="store_true", help="CUDA only: torch.autocast fp16 + GradScaler (reference: apex)")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the model (quantizers included) for the attack and the update; one graph "
                        "per precision, so the first steps at each precision compile. On 2 CPU cores "
                        "(benchmarks/bench_compile.py) a step took 0.81x the eager time for the small CNN and "
                        "1.24x for PreActResNet18 (batch 32); not measured on a GPU yet")
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA algorithms (cuDNN, cuBLAS with a fixed workspace): a run and its resumes "
                        "are bit-reproducible on a GPU, at some speed; an op without a deterministic CUDA kernel "
                        "is then an error naming it. CPU runs are reproducible without it")
    t.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    t.add_argument("--workers", type=nonneg_int, default=2,
                   help="data loader workers for folder datasets (mnist5k is held in memory and uses none)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm progress bars (the epoch lines stay)")
    return t


# ----------------------------------------------------------------------------- flags of a run
def device_arg(name):
    import torch
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise CLIError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise CLIError(f"--device {name}: dwq runs on cpu or cuda, not {dev.type}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return name


def _precision_json(kind, v):
    """``v`` as parsed by precision_arg, in the one spelling (None, full precision, is "fp")."""
    from dwq.quant import precision_name
    return [precision_name(p) for p in v] if kind == "list" else precision_name(v)


def _precision_value(kind, v):
    from dwq.quant import parse_precision
    if v is None:
        return None
    return [parse_precision(p) for p in v] if kind == "list" else parse_precision(v)


def apply_reference_defaults(a, given) -> list:
    """``--reference`` on a new run: the reference's CIFAR defaults (:data:`dwq.train.REFERENCE_CIFAR_TRAIN`)
    for every flag not given; returns the notes to print. CLIError for a given flag that contradicts the
    reference (``--amp``; a PGD ``--alpha`` other than the 2/255 its train.py forces)."""
    from dwq.train.reference import REFERENCE_CIFAR_TRAIN, reference_alpha

    taken = []
    for dest, v in REFERENCE_CIFAR_TRAIN.items():
        if dest in given or dest in ("alpha", "amp") or not hasattr(a, dest):
            continue
        setattr(a, dest, list(v) if isinstance(v, tuple) else v)
        taken.append(dest)
    if a.attack in ("pgd", "fgsm", "fgsm-rs"):
        ref_alpha = reference_alpha(a.attack)
        if "alpha" not in given:
            a.alpha = ref_alpha
            taken.append("alpha")
        elif a.attack == "pgd" and abs(a.alpha - ref_alpha) > 1e-12:
            raise CLIError(f"--reference: the reference's PGD training always steps 2/255 (its train.py forces "
                           f"it); --alpha {a.alpha:.6g} contradicts it")
    shown = ", ".join(f"{flag(d)} {_show(getattr(a, d))}" for d in taken if d != "attack_iters" or a.attack == "pgd")
    return [("reference", f"the reference's semantics; its defaults for flags not given: {shown}")] if taken else \
        [("reference", "the reference's semantics (every default it sets was given)")]


def resolve_flags(a, given) -> tuple[dict, list]:
    """``(flags, notes)``: the run's flags resolved to what the run will use, as JSON values (one
    precision spelling; ``None`` for a flag that plays no part, e.g. ``attack_iters`` of an FGSM run),
    and ``("default", text)`` for each derived default worth saying at start. CLIError for a flag that
    cannot take effect."""
    from dwq.models import canonical_network
    from dwq.quant import normalize_precision, precision_name

    f, defaults = {}, []
    # data
    f["dataset"] = a.dataset
    if a.data_dir is not None and a.dataset == "mnist5k":
        raise CLIError("--data-dir is for --dataset cifar10|cifar100|svhn|imagenet; mnist5k is embedded "
                       "(give --dataset too)")
    f["data_dir"] = os.path.abspath(a.data_dir) if a.data_dir else None
    f["val_size"] = a.val_size
    f["train_subset"] = a.train_subset
    # model
    f["network"] = canonical_network(a.network)
    if "width" in given and f["network"] != "small_cnn":
        raise CLIError(f"--width sets small_cnn's first conv; {f['network']} has a fixed width")
    f["width"] = a.width if f["network"] == "small_cnn" else None
    if a.pretrained and f["network"] != "resnet50":
        raise CLIError(f"--pretrained loads torchvision ResNet-50 weights; it does not fit {f['network']}")
    f["pretrained"] = os.path.abspath(a.pretrained) if a.pretrained else None
    f["reference"] = a.reference
    if a.reference and a.amp:
        raise CLIError("--reference trains in float32 as the reference code does (float16 cannot hold its 12-16-bit "
                       "grids); drop --amp")
    model_set = precision_set_from_args(a.precisions, a.num_bits_schedule)
    if model_set is None:
        if a.random_precision_training:
            model_set = list(PAPER_SET)
            defaults.append(("default", "precision set 4..16 (the paper's; --random-precision-training without "
                                        "--precisions)"))
        else:
            model_set = [a.num_bits]
    if a.random_precision_training:
        if a.num_bits is not None:
            raise CLIError("--num-bits is for fixed-precision training; drop it with --random-precision-training")
        if len(model_set) < 2:
            raise CLIError(f"--random-precision-training draws a precision from the set, which holds only "
                           f"{pnames(model_set)}: give at least two (e.g. --precisions 4 8 or --num-bits-schedule 4 16)")
        train_p = None
    else:
        train_p = a.num_bits if a.num_bits is not None else (None if None in model_set else model_set[-1])
        if normalize_precision(train_p) not in [normalize_precision(p) for p in model_set]:
            raise CLIError(f"--num-bits {precision_name(train_p)} is not in the precision set {pnames(model_set)}")
        if a.num_bits is None and len(model_set) > 1:
            defaults.append(("default", f"training precision {precision_name(train_p)} (--num-bits not given: "
                                        f"{'fp, in the set' if train_p is None else 'the last of the set'})"))
    if a.switchable_bn and len(model_set) < 2:
        raise CLIError(f"--switchable-bn keeps one BatchNorm per precision, and the set holds only "
                       f"{pnames(model_set)}: give at least two precisions")
    f["precisions"] = _precision_json("list", model_set)
    f["random_precision_training"] = a.random_precision_training
    # "fp" for a full-precision fixed run: null means "played no part" (an RPT run), as for other flags
    f["num_bits"] = None if a.random_precision_training else _precision_json("one", train_p)
    f["switchable_bn"] = a.switchable_bn
    # attack
    f["attack"] = a.attack
    f["epsilon"] = a.epsilon
    if a.attack == "none" and a.alpha is not None:
        raise CLIError("--alpha is the training attack's step; --attack none has no attack")
    if a.alpha is None and a.attack != "none":
        a_default = {"pgd": (2 / 255, "2/255"), "fgsm": (a.epsilon, "ε"), "free": (a.epsilon, "ε"),
                     "fgsm-rs": (1.25 * a.epsilon, "1.25ε")}[a.attack]
        f["alpha"] = a_default[0]
        defaults.append(("default", f"attack step {a_default[0]:.4g} ({a_default[1]}, the {a.attack} default)"))
    else:
        f["alpha"] = a.alpha
    if f["alpha"] is not None and f["alpha"] > 1:
        raise CLIError(f"the attack step {f['alpha']:.4g} (1.25ε) is outside [0, 1]; give --alpha")
    for dest, attack in (("attack_iters", "pgd"), ("free_replays", "free")):
        if dest in given and a.attack != attack:
            raise CLIError(f"{flag(dest)} is for --attack {attack}; --attack {a.attack} does not use it")
        f[dest] = getattr(a, dest) if a.attack == attack else None
    # schedule
    for dest in ("epochs", "batch_size", "lr", "lr_schedule"):
        f[dest] = getattr(a, dest)
    if "lr_milestones" in given and a.lr_schedule != "multistep":
        raise CLIError(f"--lr-milestones is for --lr-schedule multistep, not {a.lr_schedule}")
    if a.lr_schedule == "multistep" and not all(0 < m <= 1 for m in a.lr_milestones):
        raise CLIError(f"--lr-milestones are fractions of the run in (0, 1], got {' '.join(map(str, a.lr_milestones))}")
    f["lr_milestones"] = list(a.lr_milestones) if a.lr_schedule == "multistep" else None
    for dest in ("momentum", "weight_decay", "seed"):
        f[dest] = getattr(a, dest)
    if "val_pgd_steps" in given and a.val_size == 0:
        raise CLIError("--val-pgd-steps sets the validation attack, and --val-size 0 disables validation")
    f["val_pgd_steps"] = a.val_pgd_steps if a.val_size else None
    # where and how it runs
    f["device"] = device_arg(a.device)
    if a.amp and not f["device"].startswith("cuda"):
        raise CLIError(f"--amp (float16 autocast) works on CUDA only, and this run is on {f['device']}")
    f["amp"] = a.amp
    f["compile"] = a.compile
    f["deterministic"] = a.deterministic
    f["workers"] = a.workers
    f["no_progress"] = a.no_progress
    for dest, v in vars(a).items():  # a flag not resolved above is recorded (and checked on --resume) as given
        if dest not in f and dest not in NOT_RECORDED and dest not in SPELLING_OF and not dest.startswith("_"):
            f[dest] = list(v) if isinstance(v, tuple) else v
    return f, defaults


def _given_json(dest, v):
    """A given flag's value in the recorded form (see :func:`resolve_flags`): ``(recorded dest, value)``."""
    if dest in SPELLING_OF:  # --num-bits-schedule LO HI is the set LO..HI
        return SPELLING_OF[dest], [str(b) for b in range(v[0], v[1] + 1)]
    if dest in PRECISION_FLAGS:
        return dest, _precision_json(PRECISION_FLAGS[dest], v)
    if dest in ("data_dir", "pretrained") and v is not None:
        return dest, os.path.abspath(v)
    return dest, list(v) if isinstance(v, tuple) else v


def differing_flags(recorded: dict, values: dict, given) -> dict:
    """``{dest: (run's value, new value)}`` for each flag in ``values`` (recorded form) that differs
    from the run's; a flag newer than the run differs only where it was given."""
    out = {}
    for dest, v in values.items():
        if dest in recorded:
            if recorded[dest] != v:
                out[dest] = (recorded[dest], v)
        elif dest in given:
            out[dest] = (None, v)
    return out


def check_resume(a, given, recorded: dict, done: int):
    """CLIError naming every given flag that differs from the run (other than RESUME_MAY_CHANGE), or
    an --epochs that would not train further."""
    bad = []
    for dest in sorted(given, key=lambda d: list(recorded).index(SPELLING_OF.get(d, d))
                       if SPELLING_OF.get(d, d) in recorded else len(recorded)):
        if dest in RESUME_MAY_CHANGE:
            continue
        key, v = _given_json(dest, getattr(a, dest))
        if recorded.get(key) != v or key not in recorded:
            run = f"{flag(key)} {_show(recorded[key])}" if key in recorded else "not set"
            given_as = " ".join(map(str, getattr(a, dest))) if dest in SPELLING_OF else _show(v)
            bad.append(f"{flag(dest)} {given_as} (run: {run})" if key != dest else
                       f"{flag(dest)} {_show(v)} (run: {_show(recorded.get(key))})")
    if bad:
        raise CLIError(f"--resume: {a.out} was trained with other flags: {', '.join(bad)}; drop them to continue "
                       f"the run as it was, or start a new run with another --out")
    epochs = a.epochs if "epochs" in given else recorded.get("epochs")
    if epochs <= done:
        raise CLIError(f"--resume: {a.out} has trained {done} epoch{'s' if done > 1 else ''} and --epochs is "
                       f"{epochs}: nothing to do; give --epochs N with N > {done} to train longer")


def restore_flags(a, given, recorded: dict):
    """``a`` with every recorded flag of the run that was not given (nor another spelling of it).
    ``--device`` is not restored: a run continues on this machine's default unless told otherwise."""
    covered = set(given) | {SPELLING_OF[d] for d in given if d in SPELLING_OF}
    for dest, v in recorded.items():
        if dest in covered or dest == "device" or not hasattr(a, dest):
            continue
        if v is None and dest in ("width", "attack_iters", "free_replays", "lr_milestones", "val_pgd_steps"):
            continue  # played no part in the run: the parser's default stands in
        setattr(a, dest, _precision_value(PRECISION_FLAGS[dest], v) if dest in PRECISION_FLAGS else v)
    for dest in SPELLING_OF:
        if dest not in given:
            setattr(a, dest, None)
    return a


def _show(v):
    if isinstance(v, list):
        return " ".join(map(str, v))
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# ----------------------------------------------------------------------------- console
def _pct(v):
    return f"{100 * v:5.1f}%"


def epoch_line(rec: dict, epochs: int, val_pgd_steps) -> str:
    """One line per epoch: loss, accuracy on the training adversarial examples, validation clean and PGD
    accuracy, learning rate, precisions drawn in the epoch, seconds."""
    w = len(str(epochs))
    s = (f"epoch {rec['epoch']:>{w}}/{epochs}  loss {rec['train_loss']:.4f}  train acc {_pct(rec['train_acc'])}")
    if "val_clean" in rec:
        s += f"  val clean {_pct(rec['val_clean'])}"
        if rec.get("val_pgd") is not None:
            s += f" PGD-{val_pgd_steps} {_pct(rec['val_pgd'])}"
    s += f"  lr {rec['lr']:.4g}"
    counts = {k: v for k, v in rec["precision_counts"].items() if v}
    s += "  precisions " + " ".join(f"{k}:{v}" for k, v in counts.items())
    s += f"  {rec['seconds']:.1f} s"
    if rec.get("best"):
        s += "  -> best.pt"
    return s


def print_header(f, resumed_at, n_train, n_val, defaults, out):
    """What the run is, in a few lines, with the derived defaults said out loud."""
    mode = f"resumed at epoch {resumed_at}" if resumed_at is not None else "new run"
    print(f"dwq train {__version__}: {out} ({mode}), {f['device']}, seed {f['seed']}")
    data = f"{f['dataset']}" + (f" from {f['data_dir']}" if f["data_dir"] else " (embedded)")
    data += (f": the first {n_train} training images (--train-subset)" if f["train_subset"]
             else f": {n_train} training images")
    data += (f", {n_val} held out for validation" if n_val else ", no validation (--val-size 0: no best.pt)")
    print(f"  data       {data}")
    model = f"{f['network']}" + (f" width {f['width']}" if f["width"] else "")
    model += f", precision set {' '.join(f['precisions'])}"
    model += ", switchable BN" if f["switchable_bn"] else ", one shared BN"
    print(f"  model      {model}")
    how = (f"RPT: a precision drawn from the set at every iteration" if f["random_precision_training"]
           else f"fixed precision {f['num_bits']}")
    if f["attack"] == "none":
        atk = "natural training (no attack)"
    else:
        atk = {"pgd": f"PGD-{f['attack_iters']}", "fgsm": "FGSM", "fgsm-rs": "FGSM-RS",
               "free": f"free ({f['free_replays']} replays)"}[f["attack"]]
        atk += f" ε {f['epsilon']:.4g} step {f['alpha']:.4g}"
    print(f"  training   {how}; {atk}" + ("; amp" if f["amp"] else "") + ("; torch.compile" if f.get("compile") else "")
          + ("; deterministic" if f.get("deterministic") else ""))
    if f.get("reference"):
        print("  reference  its quantizer (float zero point, shared range) and normalization, zeroed gradients "
              "for undrawn BN branches; best_test_reference.pt by its test-set rule (not best.pt)")
    sched = f"{f['lr_schedule']}" + (f" (×0.1 at {' '.join(f'{m:g}' for m in f['lr_milestones'])} of the run)"
                                      if f["lr_milestones"] else "")
    print(f"  schedule   {f['epochs']} epoch{'s' if f['epochs'] > 1 else ''}, batch {f['batch_size']}, lr {f['lr']:g} {sched}, momentum "
          f"{f['momentum']:g}, weight decay {f['weight_decay']:g}")
    if n_val:
        v = "clean" + (f" and PGD-{f['val_pgd_steps']} (step ε/4)" if f["val_pgd_steps"] else "")
        print(f"  validation {v} accuracy over the set after every epoch; best.pt keeps the best "
              f"{'PGD' if f['val_pgd_steps'] else 'clean'} accuracy")
    for label, text in defaults:
        print(f"  {label:<11}{text}")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- the command
def _upgrade_flags(flags: dict) -> dict:
    """Flags recorded by an older dwq train, in today's form: a full-precision fixed run recorded
    ``num_bits`` null, which now means "played no part" (RPT runs); it is "fp"."""
    if "num_bits" in flags and flags["num_bits"] is None and not flags.get("random_precision_training"):
        flags["num_bits"] = "fp"
    return flags


def _load_run(out):
    """``(checkpoint, its recorded flags)`` of the run in ``out``, checked to be that run's."""
    from dwq.train import CheckpointError, load_checkpoint
    from dwq.train.loop import check_run_checkpoint

    path = os.path.join(out, "last.pt")
    if not os.path.isfile(path):
        if os.path.isdir(out) and os.path.isfile(os.path.join(out, "config.json")):
            raise CLIError(f"--resume: {out} has no last.pt (no epoch was completed); start it again with a "
                           f"new --out")
        raise CLIError(f"--resume: {path} does not exist")
    ck = load_checkpoint(path, map_location="cpu")
    flags = ck["config"].get("extra", {}).get("flags")
    if not isinstance(flags, dict):
        raise CLIError(f"--resume: {path} does not record its run's flags (written by dwq demo or an older dwq "
                       f"train); it cannot be resumed safely")
    swapped = " (copied from another run?); nothing was changed"
    try:
        check_run_checkpoint(out, ck, path)
    except CheckpointError as e:
        raise CLIError(f"--resume: {e}{swapped}") from None
    if ck["config"].get("run_id") is None:
        bad = _legacy_run_differences(out, ck, flags)
        if bad:
            raise CLIError(f"--resume: {path} is not the checkpoint of the run in {out}: {', '.join(bad)}{swapped}")
    return ck, _upgrade_flags(flags)


def _legacy_run_differences(out, ck, flags) -> list:
    """A checkpoint written before run ids against config.json: the flags a resume may not change
    (those both record: a later dwq records more), and the command that started the run (a resume
    rewrites config.json but keeps both)."""
    cfg_path = os.path.join(out, "config.json")
    if not os.path.isfile(cfg_path):
        return []
    with open(cfg_path) as fh:
        run = json.load(fh).get("extra", {})  # check_run_checkpoint read it: a JSON object
    ours, theirs = _upgrade_flags(dict(flags)), _upgrade_flags(dict(run.get("flags") or {}))
    bad = [f"{flag(d)} {_show(ours[d])} (config.json: {_show(theirs[d])})"
           for d in sorted(set(ours) & set(theirs)) if d not in RESUME_MAY_CHANGE and ours[d] != theirs[d]]
    started = [(h or [{}])[0].get("command") for h in (ck["config"]["extra"].get("history"), run.get("history"))]
    if not bad and started[0] != started[1]:
        bad.append(f"started by `{started[0]}` (config.json: `{started[1]}`)")
    return bad


def cmd_train(a):
    import torch

    from dwq.data import get_datasets, train_val_split
    from dwq.models import build_model
    from dwq.train import CheckpointError, TrainConfig, Trainer
    from dwq.train.dist import active as dist_active
    from dwq.train.dist import cleanup, setup
    from dwq.train.loop import RUN_FILES, lr_lambda

    given = a._given - set(NOT_RECORDED)
    ck = recorded = None
    if a.resume:
        ck, recorded = _load_run(a.out)
        check_resume(a, given, recorded, ck["epoch"])
        a = restore_flags(a, given, recorded)
    else:
        fresh_dir(a.out, create=False, hint=" (or --resume to continue the training run there)")
    notes = apply_reference_defaults(a, given) if a.reference and ck is None else []
    f, defaults = resolve_flags(a, given)
    defaults = notes + defaults
    if ck is not None:
        changed = differing_flags(recorded, f, given)
        bad = [d for d in changed if d not in RESUME_MAY_CHANGE]
        if bad:  # given flags matched; a flag derived from them did not (should not happen)
            raise CLIError(f"--resume: {a.out} resolves to other flags than its run: " + ", ".join(
                f"{flag(d)} {_show(changed[d][1])} (run: {_show(changed[d][0])})" for d in bad))
        history = list(ck["config"]["extra"].get("history", []))
        history.append({"resumed_at_epoch": ck["epoch"], "command": shlex.join(a._argv),
                        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "changed": {d: list(v) for d, v in changed.items()}})
    else:
        history = [{"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join(a._argv)}]

    train, test, info = get_datasets(f["dataset"], f["data_dir"])
    n_all = len(train)
    try:
        train, val = train_val_split(train, f["val_size"], seed=f["seed"])
    except ValueError:  # its message names its parameter, val_size, not the flag
        raise CLIError(f"--val-size {f['val_size']}: the training set has {n_all} images, and validation must leave "
                       f"some for training; give a smaller value (e.g. 0.1 or 500)") from None
    if f["val_size"] and not len(val):
        raise CLIError(f"--val-size {f['val_size']} of {n_all} training images is no image; give a larger value, "
                       f"or 0 to train without validation")
    if f["train_subset"]:
        if f["train_subset"] >= len(train):
            raise CLIError(f"--train-subset {f['train_subset']}: the training split has only {len(train)} images "
                           f"({len(val)} held out for validation)")
        train = torch.utils.data.Subset(train, range(f["train_subset"]))
    if f["workers"] and "workers" in given and f["dataset"] == "mnist5k":
        defaults.append(("note", f"--workers {f['workers']} has no effect on mnist5k (held in memory)"))
    model_set = _precision_value("list", f["precisions"])
    torch.manual_seed(f["seed"])  # same initial weights for the same seed
    model, key = build_model(f["network"], f["dataset"], model_set, f["switchable_bn"], a.width, f["pretrained"],
                             reference=f["reference"])
    extra = {"network": key, "dataset": f["dataset"], "model_precisions": f["precisions"],
             "switchable_bn": f["switchable_bn"], "width": a.width, "flags": f, "history": history,
             "dwq_version": __version__, "reference": f["reference"]}
    train_ps = f["precisions"] if f["random_precision_training"] else [f["num_bits"]]
    cfg = TrainConfig(attack=f["attack"], epsilon=f["epsilon"], alpha=f["alpha"], attack_iters=a.attack_iters,
                      free_replays=a.free_replays, epochs=f["epochs"], batch_size=f["batch_size"], lr=f["lr"],
                      momentum=f["momentum"], weight_decay=f["weight_decay"], lr_schedule=f["lr_schedule"],
                      lr_milestones=tuple(a.lr_milestones), precisions=train_ps,
                      random_precision=f["random_precision_training"], seed=f["seed"], amp=f["amp"],
                      val_pgd_steps=f["val_pgd_steps"] or 0, progress=not f["no_progress"], extra=extra,
                      reference=f["reference"], compile=f["compile"], deterministic=f["deterministic"])
    rank, world, device = setup(f["device"])
    say = rank == 0
    tr = Trainer(model, train, cfg, a.out, val_set=val if len(val) else None, device=device,
                 num_workers=f["workers"], rank=rank, world=world,
                 on_epoch=(lambda rec: print(epoch_line(rec, f["epochs"], f["val_pgd_steps"]), flush=True))
                 if say else None, test_set=test if f["reference"] else None)
    if say:  # before anything is written or printed: an --out that cannot be written fails in one line
        writable_dir(a.out)
    if ck is not None:
        try:
            tr.restore(ck)
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{a.out}/last.pt does not fit the run its config describes "
                                  f"({str(e).strip().splitlines()[0]})") from None
    if say:
        print_header(f, ck["epoch"] if ck is not None else None, len(train), len(val), defaults, a.out)
        if dist_active():
            import torch.distributed as dist
            print(f"  ranks      {world} process{'es' if world > 1 else ''}, {dist.get_backend()} backend, "
                  f"DistributedDataParallel (--batch-size is the global batch)")
        if ck is not None and "epochs" in history[-1]["changed"]:
            old = recorded["epochs"]
            lr_old = f["lr"] * lr_lambda(cfg, tr.total_steps // f["epochs"] * old)(tr.step)
            lr_new = f["lr"] * lr_lambda(cfg, tr.total_steps)(tr.step)
            print(f"  --epochs   {old} -> {f['epochs']}: the {f['lr_schedule']} LR schedule now spans "
                  f"{f['epochs']} epochs" + (f" (LR {lr_old:.4g} -> {lr_new:.4g} from here)" if lr_old != lr_new else ""))
    t0 = time.time()
    completed = False
    try:
        tr.fit()
        completed = True
    except KeyboardInterrupt:
        if say and os.path.exists(os.path.join(a.out, "last.pt")):
            print(f"dwq train: interrupted; the last complete epoch is in {a.out}/last.pt "
                  f"(continue with: dwq train --resume --out {a.out})", file=sys.stderr)
        elif say:
            # No epoch completed: nothing to resume. Remove what this run wrote, so that the same
            # command starts afresh instead of finding a folder that is neither empty nor resumable.
            for name in os.listdir(a.out):
                if name in RUN_FILES or name.endswith(".tmp"):
                    os.remove(os.path.join(a.out, name))
            print(f"dwq train: interrupted before the first epoch completed; nothing to resume, and what the "
                  f"run wrote in {a.out} was removed (the same command starts afresh)", file=sys.stderr)
        return 130
    finally:
        cleanup(synchronize=completed)
    if say:
        _summary(a.out, tr, time.time() - t0, f)
    return 0


def _summary(out, tr, seconds, f):
    files = [n for n in ("config.json", "last.pt", "best.pt", "best_test_reference.pt", "metrics.jsonl")
             if os.path.isfile(os.path.join(out, n))]
    best = None
    if "best.pt" in files:
        with open(os.path.join(out, "metrics.jsonl")) as fh:
            for line in fh:
                rec = json.loads(line)
                if rec.get("best"):
                    best = rec
    line = f"done: epoch {tr.epoch}/{f['epochs']} in {seconds:.0f} s"
    if best is not None:
        score = (f"validation PGD-{f['val_pgd_steps']} {100 * best['val_pgd']:.1f}%" if best.get("val_pgd") is not None
                 else f"validation clean {100 * best['val_clean']:.1f}%")
        line += f"; best.pt is epoch {best['epoch']} ({score})"
    print(line)
    print(f"wrote {out}/: {', '.join(files)}")
    if "best.pt" in files:
        print(f"next: dwq eval --checkpoint {out}/best.pt --out {out.rstrip('/')}-eval")

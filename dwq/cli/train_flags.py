"""The flags of a ``dwq train`` run, resolved to what the run will use and recorded (glue only).

A run folder is the run. ``config.json`` (the same dict as each checkpoint's ``config``) records under
``extra.flags`` every flag that shaped the run, resolved (the precision set however it was given, the
attack step its default came to, absolute folders) and in dwq's one precision spelling, plus
``extra.history`` (the command lines that started and resumed it). The flags in
:data:`RESUME_MAY_CHANGE` may be given again with another value on ``--resume``
(:mod:`dwq.cli.train_resume`). A flag added to the parser is recorded and checked as given unless
:func:`resolve_flags` resolves it; list it in ``RESUME_MAY_CHANGE`` if a run may continue with another
value.

The parser reads :data:`RESUME_MAY_CHANGE`, so this module imports no training code (:mod:`dwq.train`,
:mod:`dwq.models`) at module import: ``dwq train --help`` stays fast.
"""
from __future__ import annotations

import os

from .common import CLIError, flag, pnames, precision_set_from_args

__all__ = ["PAPER_SET", "RESUME_MAY_CHANGE", "NOT_RECORDED", "SPELLING_OF", "PRECISION_FLAGS", "device_arg",
           "precision_json", "precision_value", "apply_reference_defaults", "resolve_flags", "show_value"]

PAPER_SET = list(range(4, 17))  # the paper's precision set, the default of --random-precision-training

# Flags that may take another value on --resume, and why that is safe. Every other recorded flag
# must resolve to the run's value.
RESUME_MAY_CHANGE = {
    "epochs": "another value above the epochs done trains to it (the LR schedule spans the new total)",
    "workers": "data loading only",
    "threads": "how the same computation runs on a CPU (its sums split by thread round differently); restored "
               "from the run unless given",
    "no_progress": "console only; --progress turns it off",
    "device": "where the run continues (float rounding may differ between devices)",
    "data_dir": "the same dataset (--dataset must match) read from another folder, e.g. a node's local copy",
    "val_every": "which epochs are validated (best.pt is chosen among them; the last epoch always is)",
    "compile": "how the same computation runs (compiled kernels may round differently); --no-compile turns "
               "it off",
    "deterministic": "how the same computation runs (which CUDA algorithms; their rounding may differ); "
                     "--no-deterministic turns it off",
    "cuda_graphs": "how the same computation runs (the attack's kernels replayed from CUDA graphs); "
                   "--no-cuda-graphs turns it off",
}
NOT_RECORDED = ("command", "out", "resume")  # which command, where the run is, whether it resumes
SPELLING_OF = {"num_bits_schedule": "precisions"}  # another way to give a recorded flag
PRECISION_FLAGS = {"precisions": "list", "num_bits": "one"}  # recorded in the one spelling


def device_arg(name):
    """``--device name`` checked (CLIError unless cpu, cuda or cuda:N of this machine); None gives cuda
    where it is available, else cpu."""
    import torch
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise CLIError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise CLIError(f"--device {name}: dwq runs on cpu or cuda, not {dev.type}")
    if dev.type == "cpu" and dev.index is not None:  # (torch ignores it: recorded, then a "change" on resume)
        raise CLIError(f"--device {name}: the CPU takes no index; use cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    n = torch.cuda.device_count() if dev.type == "cuda" else 0
    if dev.index is not None and dev.type == "cuda" and dev.index >= n:  # else torch's 'invalid device ordinal', late
        raise CLIError(f"--device {name}: this machine has {n} CUDA device{'s' * (n > 1)} (cuda:0 to cuda:{n - 1})")
    return name


def precision_json(kind, v):
    """``v`` as parsed by precision_arg, in the one spelling (None, full precision, is "fp")."""
    from dwq.quant import precision_name
    return [precision_name(p) for p in v] if kind == "list" else precision_name(v)


def precision_value(kind, v):
    """A recorded precision flag (:func:`precision_json`'s form) as precision_arg parses it."""
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
    plays_no_part = {"attack_iters": a.attack != "pgd", "lr_milestones": a.lr_schedule != "multistep"}
    shown = ", ".join(f"{flag(d)} {show_value(getattr(a, d))}" for d in taken if not plays_no_part.get(d))
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
        # (a resume keeps the run's dataset: --dataset is no way out there)
        raise CLIError("--data-dir is for --dataset cifar10|cifar100|svhn|imagenet; mnist5k is embedded"
                       + (": this run trains on mnist5k, drop --data-dir" if a.resume else " (give --dataset too)"))
    f["data_dir"] = os.path.abspath(a.data_dir) if a.data_dir else None
    f["val_size"] = a.val_size
    f["train_subset"] = a.train_subset
    # model
    try:
        f["network"] = canonical_network(a.network)
    except ValueError as e:
        raise CLIError(f"--network {a.network}: {e}") from None
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
    # "fp" parses to None, as a flag not given does: --num-bits fp on the command line was ignored
    num_bits_set = "num_bits" in given or a.num_bits is not None
    if a.random_precision_training:
        if num_bits_set:
            raise CLIError("--num-bits is for fixed-precision training; drop it with --random-precision-training")
        if len(model_set) < 2:
            raise CLIError(f"--random-precision-training draws a precision from the set, which holds only "
                           f"{pnames(model_set)}: give at least two (e.g. --precisions 4 8 or --num-bits-schedule 4 16)")
        train_p = None
    else:
        train_p = a.num_bits if num_bits_set else (None if None in model_set else model_set[-1])
        if normalize_precision(train_p) not in [normalize_precision(p) for p in model_set]:
            raise CLIError(f"--num-bits {precision_name(train_p)} is not in the precision set {pnames(model_set)}")
        if not num_bits_set and len(model_set) > 1:
            defaults.append(("default", f"training precision {precision_name(train_p)} (--num-bits not given: "
                                        f"{'fp, in the set' if train_p is None else 'the last of the set'})"))
    if a.switchable_bn and len(model_set) < 2:
        raise CLIError(f"--switchable-bn keeps one BatchNorm per precision, and the set holds only "
                       f"{pnames(model_set)}: give at least two precisions")
    f["precisions"] = precision_json("list", model_set)
    f["random_precision_training"] = a.random_precision_training
    # "fp" for a full-precision fixed run: null means "played no part" (an RPT run), as for other flags
    f["num_bits"] = None if a.random_precision_training else precision_json("one", train_p)
    f["switchable_bn"] = a.switchable_bn
    # attack
    f["attack"] = a.attack
    f["epsilon"] = a.epsilon
    if a.attack == "none" and a.alpha is not None:
        raise CLIError("--alpha is the training attack's step; --attack none has no attack")
    # (--reference chooses best_test_reference.pt by a PGD at ε on the test set)
    if a.attack == "none" and "epsilon" in given and not (a.val_size and a.val_pgd_steps) and not a.reference:
        raise CLIError("--epsilon is the radius of the training and validation attacks; with --attack none and "
                       "no PGD validation (--val-size 0 or --val-pgd-steps 0) nothing uses it")
    if a.alpha is None and a.attack != "none":
        from dwq.train.config import default_alpha

        a_default = default_alpha(a.attack, a.epsilon)
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
    if a.lr_schedule == "multistep" and not all(0 < m < 1 for m in a.lr_milestones):  # (1: after the last step)
        raise CLIError(f"--lr-milestones are fractions of the run in (0, 1), got {' '.join(map(str, a.lr_milestones))}")
    f["lr_milestones"] = list(a.lr_milestones) if a.lr_schedule == "multistep" else None
    for dest in ("momentum", "weight_decay", "seed"):
        f[dest] = getattr(a, dest)
    for dest, what in (("val_pgd_steps", "the validation attack"), ("val_every", "when validation runs")):
        if dest in given and a.val_size == 0:
            why = ("the run's --val-size 0 (a resume cannot change it)" if a.resume and "val_size" not in given
                   else "--val-size 0 (--reference's default: give --val-size N to validate)"
                   if a.reference and "val_size" not in given else "--val-size 0")
            raise CLIError(f"{flag(dest)} sets {what}, and {why} disables validation")
        f[dest] = getattr(a, dest) if a.val_size else None
    # where and how it runs
    f["device"] = device_arg(a.device)
    if a.amp and not f["device"].startswith("cuda"):
        if "amp" not in given:  # a resume of an --amp run, on a machine without CUDA
            raise CLIError(f"--resume: {a.out} was trained with --amp (float16 autocast, CUDA only), and this machine "
                           f"runs it on {f['device']}: resume it where CUDA is")
        raise CLIError(f"--amp (float16 autocast) works on CUDA only, and this run is on {f['device']}")
    f["amp"] = a.amp
    if a.cuda_graphs:
        why = ("works on CUDA only" if not f["device"].startswith("cuda") else
               "replays the PGD attack only" if a.attack != "pgd" else
               "is another way of cutting the attack's launches than --compile" if a.compile else None)
        if why:
            has = f"--device {f['device']} --attack {a.attack}" + (" --compile" if a.compile else "")
            if "cuda_graphs" not in given:  # a resume of a --cuda-graphs run
                raise CLIError(f"--resume: {a.out} was trained with --cuda-graphs, which {why}, and this run has "
                               f"{has}: add --no-cuda-graphs")
            raise CLIError(f"--cuda-graphs (the attack replayed from CUDA graphs) {why}; this run has {has}")
    f["compile"] = a.compile
    f["cuda_graphs"] = a.cuda_graphs
    f["deterministic"] = a.deterministic
    f["workers"] = a.workers if f["dataset"] != "mnist5k" else None  # (held in memory: no loader workers)
    if a.threads is None:  # (torch's default, recorded as the count it is, for a resume to take)
        import torch

        a.threads = torch.get_num_threads()
    f["threads"] = a.threads
    f["no_progress"] = a.no_progress
    for dest, v in vars(a).items():  # a flag not resolved above is recorded (and checked on --resume) as given
        if dest not in f and dest not in NOT_RECORDED and dest not in SPELLING_OF and not dest.startswith("_"):
            f[dest] = list(v) if isinstance(v, tuple) else v
    return f, defaults


def show_value(v, against=None):
    """A flag's value as it is typed on the command line (lists space-separated, floats short). A float
    shown beside another (``against``) that differs from it only beyond 6 digits is shown in full, so
    that a message never says "--epsilon 0.0313725 (run: 0.0313725)". A recorded null is a flag that
    played no part in the run: "not used", never "None"."""
    if v is None:
        return "not used"
    if isinstance(v, list):
        return " ".join(map(str, v))
    if isinstance(v, float):
        if isinstance(against, float) and against != v and f"{against:.6g}" == f"{v:.6g}":
            return repr(v)
        return f"{v:.6g}"
    return str(v)


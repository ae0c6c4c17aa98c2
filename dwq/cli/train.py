"""``dwq train``: its parser and the command (glue only). The run's flags are resolved and recorded by
:mod:`dwq.cli.train_flags`, ``--resume`` loads, compares and restores them in
:mod:`dwq.cli.train_resume`, and :mod:`dwq.cli.train_console` prints; their public names are
importable from here too.

This module imports no training code (:mod:`dwq.train`, :mod:`dwq.models`, :mod:`dwq.data`) at module
import, so that ``dwq train --help`` stays fast; :data:`TRAIN_ATTACKS` copies
:data:`dwq.train.TRAIN_ATTACKS` for that reason (``tests/test_cli.py`` checks that the copies agree).

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

import contextlib
import os
import re
import shlex
import sys
import time

from dwq._errors import first_line, typed_first_line
from dwq._version import __version__

from .common import (CLIError, HelpFormatter, ListOnce, check_run_classes, flag, folder_lock, fresh_dir,
                     interrupt_outcome, nonfinite_parameters, nonneg_float, nonneg_int, path_arg, positive_float,
                     positive_fraction, positive_int, precision_arg, seed_arg, stopping, threads_arg, unit_float,
                     val_size_arg, writable_dir, write_failure)
from .train_console import epoch_line, print_header, print_summary
from .train_flags import (NOT_RECORDED, PAPER_SET, PRECISION_FLAGS, RESUME_MAY_CHANGE, SPELLING_OF,
                          apply_reference_defaults, device_arg, precision_value, resolve_flags, show_value)
from .train_resume import check_resume, differing_flags, load_run, restore_flags

# The command, and (importable from here as before the split into train_flags, train_resume and
# train_console) the names it is used with.
__all__ = ["add_parser", "cmd_train", "DATASET_NAMES", "TRAIN_ATTACKS", "PAPER_SET", "RESUME_MAY_CHANGE",
           "NOT_RECORDED", "SPELLING_OF", "PRECISION_FLAGS", "device_arg", "apply_reference_defaults", "resolve_flags",
           "differing_flags", "check_resume", "restore_flags", "epoch_line", "print_header"]

DATASET_NAMES = ("mnist5k", "cifar10", "cifar100", "svhn", "imagenet")  # dwq.data.DATASETS (not imported)
TRAIN_ATTACKS = ("pgd", "fgsm", "fgsm-rs", "free", "none")  # dwq.train.TRAIN_ATTACKS (not imported: fast --help)


# how a flag a resume may change is typed, by its value, where that is not "--flag value"
_SWITCHES = {"compile": ("--no-compile", "--compile"), "deterministic": ("--no-deterministic", "--deterministic"),
             "cuda_graphs": ("--no-cuda-graphs", "--cuda-graphs"), "no_progress": ("--progress", "--no-progress")}


def _resume_command(out: str, changed: dict, given) -> str:
    """The command that continues the run in ``out``: a resume's own changes (``changed``: flag ->
    [run's value, new value]) come along, since last.pt holds them only once an epoch of it completed;
    a plain --resume before that went back to the run's --epochs (and the rest). A flag given that plays
    no part in the run (resolved to None, as --workers on mnist5k) has nothing to carry over."""
    words = ["dwq", "train", "--resume", "--out", out]
    for dest, (_, new) in changed.items():
        if dest not in given or new is None:
            continue
        if dest in _SWITCHES:
            words.append(_SWITCHES[dest][bool(new)])
        else:
            words += [flag(dest)] + (list(map(str, new)) if isinstance(new, list) else [show_value(new)])
    return shlex.join(words)


def _launched(command: str, world: int) -> str:
    """``command`` as the continuation of a run of ``world`` processes: a DDP run goes on under the
    launcher that started it (the bare command trained on one process, at the same global batch)."""
    return command if world == 1 else f"{command}, launched by torchrun with {world} processes as this run was"


def _resumable(out: str, say: bool) -> bool:
    """Whether the stopped run in ``out`` has a complete epoch to resume (its last.pt); if not, what it
    wrote is removed (by rank 0: ``say``), so that the same command starts afresh instead of finding a
    folder that is neither empty nor resumable."""
    from dwq.train.run_folder import remove_run_files

    if os.path.exists(os.path.join(out, "last.pt")):
        return True
    if say:
        with contextlib.suppress(OSError):
            remove_run_files(out)
    return False


# How a collective says that another process of the run went away: gloo's closed connection, NCCL's
# remote error and its system error's hint, a communicator that another rank's failure aborted.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "remote process exited",
              "unexpected exit of a remote peer", "communicator was aborted")


def _collective_failure(e: RuntimeError):
    """What stopped a collective that raised ``e``: "lost" (another process of the run went away),
    "failed" (a DistBackendError that does not say so: this rank's own CUDA or NCCL error), or None
    (not a collective's error)."""
    import torch.distributed as dist

    if any(s in str(e) for s in _PEER_GONE):
        return "lost"
    return "failed" if isinstance(e, getattr(dist, "DistBackendError", ())) else None


def _stopped(what: str, out: str, say: bool, resume_command: str):
    """CLIError: ``what`` stopped the run, and where it stands."""
    if _resumable(out, say):
        raise CLIError(f"{what}; the last complete epoch is in {out}/last.pt (once fixed, continue with: "
                       f"{resume_command})") from None
    raise CLIError(f"{what}; no epoch completed, so there is nothing to resume (once fixed, the same command "
                   f"starts afresh)") from None


def _diverged(model, e: ValueError):
    """What a ValueError raised by a training step says of a diverged run, or None for another error:
    a quantized run stops where its quantizers meet NaN or inf (a full-precision one goes on, its loss
    reported non-finite), a traceback that did not say so."""
    bad = nonfinite_parameters(model)
    if bad:
        return f"{len(bad)} parameter tensor(s) hold NaN or inf, first {bad[0]}"
    msg = first_line(e)
    return msg if re.search(r"\bNaN\b|\binf\b|finite", msg) else None


def _stopped_by_write(e: OSError, out: str, say: bool, resume_command: str):
    """``_stopped`` for a write that failed in ``out`` (a full disk, a folder gone or made read-only);
    any other OSError is raised as it is."""
    what = write_failure(e, out)
    if what is None:
        raise e
    _stopped(what, out, say, resume_command)


def add_parser(sub):
    t = sub.add_parser("train", formatter_class=HelpFormatter,
                       help="adversarial training (PGD/FGSM/FGSM-RS/free), optionally with RPT",
                       description="Adversarial training with optional Random Precision Training. Writes "
                                   "config.json (every flag of the run), last.pt (every epoch, atomic), best.pt "
                                   "(best validation PGD accuracy on a held-out split of the training set) and "
                                   "metrics.jsonl into --out, and prints one line per epoch. --resume --out RUN "
                                   "continues a run with its own flags. Multi-GPU: torchrun --nproc_per_node=N "
                                   "-m dwq.cli.main train ...")
    t.add_argument("--out", type=path_arg, required=True,
                   help="run folder (must be new or empty unless --resume)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt with the flags recorded there; only "
                        + ", ".join(flag(k) for k in RESUME_MAY_CHANGE) + " may be given again with other values")
    t.add_argument("--dataset", default="mnist5k", choices=DATASET_NAMES,
                   help="mnist5k is embedded (no download); the others read --data-dir")
    t.add_argument("--data-dir", type=path_arg, default=None,
                   help="local dataset folder for cifar10/cifar100/svhn/imagenet (an error message says what to "
                        "put where)")
    t.add_argument("--network", default="small_cnn",
                   help="small_cnn | preact_resnet18 | wide_resnet34_10 | resnet50 (reference names such as "
                        "PreActResNet18 / WideResNet32 accepted)")
    t.add_argument("--width", type=positive_int, default=32, help="small_cnn only: channels of its first conv")
    t.add_argument("--pretrained", type=path_arg, default=None,
                   help="resnet50 only: local torchvision ResNet-50 state_dict to start from (the reference's "
                        "ImageNet runs start from a non-robust pretrained model) (default: none, random weights)")
    t.add_argument("--precisions", nargs="+", action=ListOnce, type=precision_arg, default=None,
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
                   help="training attack step (default: ε/4 for pgd, i.e. 2/255 at ε 8/255; ε for fgsm and free; "
                        "1.25ε for fgsm-rs; reference FGSM used 10/255)")
    t.add_argument("--attack-iters", type=positive_int, default=7, help="--attack pgd only: PGD steps")
    t.add_argument("--free-replays", type=positive_int, default=4,
                   help="--attack free only: updates per minibatch (precision redrawn at each)")
    t.add_argument("--epochs", type=positive_int, default=10,
                   help="epochs (free: each minibatch is replayed); with --resume any value above the epochs done trains to it")
    t.add_argument("--batch-size", type=positive_int, default=128, help="global batch size (split over DDP ranks)")
    t.add_argument("--lr", type=positive_float, default=0.1, help="peak learning rate (reference: --lr_max)")
    t.add_argument("--lr-schedule", default="multistep", choices=("multistep", "cyclic", "constant"),
                   help="multistep: ×0.1 at the --lr-milestones; cyclic: 0 -> lr -> 0 linearly; constant")
    t.add_argument("--lr-milestones", nargs="+", action=ListOnce, type=float, default=[0.5, 0.75],
                   help="--lr-schedule multistep only: fractions of all iterations where the LR is multiplied by "
                        "0.1 (default: 0.5 0.75; ImageNet free training with 4 replays: 0.53334, after 8 of 15 epochs)")
    t.add_argument("--momentum", type=unit_float, default=0.9, help="SGD momentum")
    t.add_argument("--weight-decay", type=nonneg_float, default=5e-4, help="SGD weight decay")
    t.add_argument("--val-size", type=val_size_arg, default=0.1,
                   help="held-out validation part of the training set for best.pt: a fraction in [0, 1) or a "
                        "whole number of images; 0 disables validation (then no best.pt) (default: 0.1)")
    t.add_argument("--train-subset", type=positive_int, default=None,
                   help="use only the first N training images after the validation split (quick checks) (default: all)")
    t.add_argument("--val-pgd-steps", type=nonneg_int, default=10,
                   help="PGD steps of the validation attack (step ε/4); 0: clean validation accuracy only")
    t.add_argument("--val-every", type=positive_int, default=1,
                   help="validate after every N-th epoch and after the last; best.pt is chosen among those "
                        "epochs. Validation attacks at every precision of the set, so with many precisions "
                        "it can cost more than a training epoch (default: 1)")
    t.add_argument("--seed", type=seed_arg, default=0, help="seed of initial weights, data order, precision draws, "
                                                        "random starts and the held-out validation split (runs "
                                                        "over seeds also select on different images)")
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
                        "(benchmarks/results_compile_cpu.json) a step took 0.75x the eager time for the small CNN and "
                        "1.23x for PreActResNet18 (batch 32); on the H200 (once, at 4c57f8f) 27.9 ms against 27.3 ms "
                        "eager for PreActResNet18 at batch 32: no gain")
    t.add_argument("--cuda-graphs", action="store_true",
                   help="CUDA, PGD: replay the training attack from a CUDA graph per precision (captured at "
                        "its first step), the update eager; the same numbers as without it, less host time. On the "
                        "H200 a PGD-7 step of PreActResNet18 took 72 ms eager and 44 ms with the whole step in a "
                        "graph (benchmarks/bench_train.py); this mode is not measured on a GPU yet")
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA algorithms (cuDNN, cuBLAS with a fixed workspace): a run and its resumes "
                        "are bit-reproducible on a GPU, at some speed; an op without a deterministic CUDA kernel "
                        "is then an error naming it. CPU runs are reproducible without it, at one --threads")
    # a resume restores the run's flags: these turn a restored --compile / --deterministic off (and
    # --progress a restored --no-progress)
    t.add_argument("--no-compile", dest="compile", action="store_false", default=False,
                   help="on --resume: continue a run that had --compile without it")
    t.add_argument("--no-deterministic", dest="deterministic", action="store_false", default=False,
                   help="on --resume: continue a run that had --deterministic without it")
    t.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false", default=False,
                   help="on --resume: continue a run that had --cuda-graphs without it")
    t.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    t.add_argument("--threads", type=threads_arg, default=None,
                   help="torch CPU threads (default: torch's), recorded: a CPU run's numbers depend on it (sums split "
                        "by thread round differently), so --resume takes the run's unless given")
    t.add_argument("--workers", type=nonneg_int, default=2,
                   help="data loader workers for folder datasets (mnist5k is held in memory and uses none)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm progress bars (the epoch lines stay)")
    t.add_argument("--progress", dest="no_progress", action="store_false", default=False,
                   help="on --resume: show the progress bars of a run that had --no-progress")
    return t


def _resume_hint(out: str) -> str:
    """What to do with a non-empty ``--out``: --resume only where it can continue (a last.pt); a run
    killed before its first epoch ended (config.json alone) cannot, and --resume would refuse it."""
    if os.path.isfile(os.path.join(out, "last.pt")):
        return " (or --resume to continue the training run there)"
    if os.path.isfile(os.path.join(out, "config.json")):
        return (" (it holds a run stopped before its first epoch completed, which cannot resume; remove the "
                "folder to start again there)")
    return ""


def cmd_train(a):
    import torch

    from dwq.data import DatasetError, get_datasets, train_val_split
    from dwq.models import build_model
    from dwq.train import CheckpointError, TrainConfig, Trainer
    from dwq.train.config import lr_lambda
    from dwq.train.dist import active as dist_active
    from dwq.train.dist import cleanup, setup

    given = a._given - set(NOT_RECORDED)
    ck = recorded = run = None
    if a.resume:
        ck, recorded, run = load_run(a.out)
        check_resume(a, given, recorded, ck["epoch"])
        a = restore_flags(a, given, recorded)
    else:
        fresh_dir(a.out, create=False, hint=_resume_hint(a.out))
    notes = apply_reference_defaults(a, given) if a.reference and ck is None else []
    f, defaults = resolve_flags(a, given)
    defaults = notes + defaults
    if ck is not None:
        changed = differing_flags(recorded, f, given)
        bad = [d for d in changed if d not in RESUME_MAY_CHANGE]
        if bad:  # given flags matched; a flag derived from them did not (should not happen)
            raise CLIError(f"--resume: {a.out} resolves to other flags than its run: " + ", ".join(
                f"{flag(d)} {show_value(changed[d][1])} (run: {show_value(changed[d][0])})" for d in bad))
        history = list(ck["config"]["extra"].get("history", []))
        history.append({"resumed_at_epoch": ck["epoch"], "command": shlex.join(a._argv),
                        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "changed": {d: list(v) for d, v in changed.items()}})
    else:
        history = [{"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join(a._argv)}]
    resume_command = _resume_command(a.out, history[-1].get("changed", {}), given)

    train, test, info = get_datasets(f["dataset"], f["data_dir"])
    n_all = len(train)
    was = ck["config"]["extra"].get("train_images") if ck is not None else None
    if was is not None and was != n_all:  # (--data-dir may change on resume; the data may not)
        where = f" in {f['data_dir']}" if f["data_dir"] else ""
        raise CLIError(f"--resume: the {f['dataset']} training set{where} has {n_all} images, the run's had "
                       f"{was}: the validation split, the steps per epoch and the LR schedule would shift; give "
                       f"--data-dir a copy of the run's data")
    if ck is not None:
        check_run_classes(ck["config"]["extra"], test, f["data_dir"], "--resume")
    try:
        train, val = train_val_split(train, f["val_size"], seed=f["seed"])
    except ValueError as e:  # its message names its parameter, val_size, not the flag
        if "rounds to no validation example" in str(e):
            raise CLIError(f"--val-size {f['val_size']} of {n_all} training images is no image; give a larger "
                           f"value, or 0 to train without validation") from None
        raise CLIError(f"--val-size {f['val_size']}: the training set has {n_all} images, and validation must leave "
                       f"some for training; give a smaller value (e.g. 0.1 or 500)") from None
    if f["train_subset"]:
        if f["train_subset"] > len(train):
            raise CLIError(f"--train-subset {f['train_subset']}: the training split has only {len(train)} images "
                           f"({len(val)} held out for validation)")
        train = torch.utils.data.Subset(train, range(f["train_subset"]))
    classes = getattr(test, "classes", None)
    if f["pretrained"] and f["dataset"] == "imagenet" and classes is not None and len(classes) != info.num_classes:
        # labels are folder positions: the torchvision head's output 0 is the first of the 1000 wnids, not of these
        defaults.append(("note", f"--pretrained: {f['data_dir']} has {len(classes)} class folders, labelled 0.."
                                 f"{len(classes) - 1} by position, so the pretrained head's outputs (the "
                                 f"{info.num_classes} ImageNet classes in wnid order) do not match them: the run "
                                 f"relearns them"))
    if a.workers and "workers" in given and f["dataset"] == "mnist5k":
        defaults.append(("note", f"--workers {a.workers} has no effect on mnist5k (held in memory)"))
    model_set = precision_value("list", f["precisions"])
    torch.manual_seed(f["seed"])  # same initial weights for the same seed
    # a resume takes its weights from last.pt: the --pretrained file (perhaps on another node's scratch, as a
    # --data-dir may be) is read only by the run's start
    pretrained = f["pretrained"] if ck is None else None
    try:
        model, key = build_model(f["network"], f["dataset"], model_set, f["switchable_bn"], a.width, pretrained,
                                 reference=f["reference"])
    except (RuntimeError, TypeError, ValueError) as e:  # a damaged, mismatched or foreign --pretrained file
        if pretrained is None:
            if isinstance(e, RuntimeError) and "allocate" in str(e):  # (--width 100000: a traceback)
                raise CLIError(f"--width {a.width}: cannot allocate the model ({first_line(e)})") from None
            raise
        raise CLIError(f"--pretrained {pretrained}: {first_line(e)}") from None
    extra = {"network": key, "dataset": f["dataset"], "train_images": n_all, "model_precisions": f["precisions"],
             "switchable_bn": f["switchable_bn"], "width": a.width, "flags": f, "history": history,
             "dwq_version": __version__, "reference": f["reference"]}
    if f["dataset"] == "imagenet" and classes is not None:  # (labels are these folders' positions)
        extra["classes"] = list(classes)
    train_ps = f["precisions"] if f["random_precision_training"] else [f["num_bits"]]
    cfg = TrainConfig(attack=f["attack"], epsilon=f["epsilon"], alpha=f["alpha"], attack_iters=a.attack_iters,
                      free_replays=a.free_replays, epochs=f["epochs"], batch_size=f["batch_size"], lr=f["lr"],
                      momentum=f["momentum"], weight_decay=f["weight_decay"], lr_schedule=f["lr_schedule"],
                      lr_milestones=tuple(a.lr_milestones), precisions=train_ps,
                      random_precision=f["random_precision_training"], seed=f["seed"], amp=f["amp"],
                      val_pgd_steps=f["val_pgd_steps"] or 0, val_every=f["val_every"] or 1,
                      progress=not f["no_progress"], extra=extra,
                      reference=f["reference"], compile=f["compile"], deterministic=f["deterministic"],
                      cuda_graphs=f["cuda_graphs"])
    torch.set_num_threads(f["threads"])
    rank, world, device = setup(f["device"])
    say = rank == 0
    resume_command = _launched(resume_command, world)
    tr = Trainer(model, train, cfg, a.out, val_set=val if len(val) else None, device=device,
                 num_workers=f["workers"] or 0, rank=rank, world=world,
                 on_epoch=(lambda rec: print(epoch_line(rec, f["epochs"], f["val_pgd_steps"]), flush=True))
                 if say else None, test_set=test if f["reference"] else None)
    if say:  # before anything is written or printed: an --out that cannot be written fails in one line
        writable_dir(a.out)
    # held from before resume's first write (restore() trims metrics.jsonl) until the run ends
    with folder_lock(a.out) if say else contextlib.nullcontext():
        if ck is not None:
            try:
                tr.restore(ck, run)
            except (RuntimeError, KeyError, ValueError) as e:
                raise CheckpointError(f"{a.out}/last.pt does not fit the run its config describes "
                                      f"({typed_first_line(e)})") from None
            except OSError as e:  # restore() trims metrics.jsonl and may rewrite best.pt: a full disk
                _stopped_by_write(e, a.out, say, resume_command)
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
            try:
                tr.fit()  # (SIGTERM raises Terminated here: main() runs every command under sigterm_as_interrupt)
            except BaseException:
                stopping()  # (what follows removes files and says why the run stopped: a SIGTERM must not cut it)
                raise
            completed = True
        except KeyboardInterrupt as e:
            how, status = interrupt_outcome(e)
            if _resumable(a.out, say):
                if say:
                    print(f"dwq train: {how}; the last complete epoch is in {a.out}/last.pt "
                          f"(continue with: {resume_command})", file=sys.stderr)
            elif say:
                print(f"dwq train: {how} before the first epoch completed; nothing to resume, and what the "
                      f"run wrote in {a.out} was removed (the same command starts afresh)", file=sys.stderr)
            return status
        except DatasetError as e:  # an unreadable image; from a worker its message is a traceback ending in ours
            _stopped(str(e).strip().splitlines()[-1].split("DatasetError: ", 1)[-1], a.out, say, resume_command)
        except OSError as e:  # a disk full, a folder gone or made read-only mid-run: one line, and where the run stands
            _stopped_by_write(e, a.out, say, resume_command)
        except RuntimeError as e:
            how = _collective_failure(e) if world > 1 else None
            if how is None:
                _resumable(a.out, say)
                raise
            # A collective failed: another rank stopped (its own error, or an interrupt only it got), or, where
            # NCCL does not say so, NCCL or CUDA failed on this rank.
            detail = re.sub(r"^\[[^\]]*\]\s*", "", first_line(e)).split(". ")[0]  # (gloo: "[file:line] What. Hint")
            what = ("another process of this run stopped, so this one lost its peers" if how == "lost" else
                    "a collective operation between the processes of this run failed")
            _stopped(f"{what} ({detail})", a.out, say, resume_command)
        except ValueError as e:
            why = _diverged(tr.model, e)
            if why is None:
                _resumable(a.out, say)
                raise
            _stopped(f"the training diverged at step {tr.step} (epoch {tr.epoch + 1}): {why}; a lower --lr may "
                     f"help", a.out, say, resume_command)
        except Exception:  # an error of dwq's own or a library's: raised, after what a rerun must not find is gone
            _resumable(a.out, say)  # (a config.json left alone made the same command refuse the folder)
            raise
        finally:
            cleanup(synchronize=completed)
        if say:
            print_summary(a.out, tr, time.time() - t0, f)
        return 0

"""``dwq`` command line: ``dwq train`` (:mod:`dwq.cli.train`), ``dwq eval``, ``dwq demo`` (glue only).

User errors are one line ``dwq <cmd>: error: ...`` with exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys

from dwq._errors import first_line
from dwq._version import __version__

from . import demo_resume
from . import deploy as deploy_cli
from . import train as train_cmd
from .common import (ArgumentParser, CLIError, HelpFormatter, ListOnce, StageLog, bandits_budget, check_run_classes,
                     dwq_warnings_as_lines, existing_checkpoint, finite_checkpoint, folder_lock, fresh_dir, given_flags,
                     interrupt_outcome, nonneg_int, path_arg, pnames, positive_fraction, positive_int, precision_arg,
                     precisions_within, resumable_dir, seed_arg, sigterm_as_interrupt, stdout_to_devnull, stopping,
                     threads_arg, write_failure)
from .train_flags import device_arg as _device

EVAL_STAGES = "stages"  # dwq eval's saved stages in --out, until report.json is written (dwq.eval.stages)
EVAL_ATTACKS = ("pgd", "fgsm", "cw-l2", "cw-linf", "bandits", "autoattack")  # dwq.eval.EVAL_ATTACKS (not imported: keeps --help fast)
CW_ATTACKS = ("cw-l2", "cw-linf")  # dwq.eval.attacks.CW_ATTACKS
EVAL_PROTOCOLS = ("paper", "paper-sampled", "adaptive", "transfer", "autoattack-rand",
                  "autoattack-standard")  # dwq.eval.PROTOCOLS


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``dwq`` argument parser with every subcommand (train, eval, demo, deploy, bench)."""
    p = ArgumentParser(
        prog="dwq", formatter_class=HelpFormatter,
        description="Double-Win Quant: random precision training (RPT) and honest random precision "
                    "inference (RPI) robustness evaluation.",
        epilog="An error is one line on stderr with exit status 2; DWQ_TRACEBACK=1 in the environment shows "
               "the traceback of one raised by the library (ValueError and the like) instead.")
    p.add_argument("--version", action="version", version=f"dwq {__version__}")
    sub = p.add_subparsers(dest="command")
    sub.required = True

    train_cmd.add_parser(sub)

    # ---- eval
    e = sub.add_parser("eval", formatter_class=HelpFormatter,
                       help="evaluate a checkpoint: clean, attacks per precision, paper and adaptive RPI "
                            "protocols, transferability matrix",
                       description="Evaluate a checkpoint written by dwq train on the test set. ε, the PGD step, "
                                   "the precision set, the dataset and its folder come from the checkpoint unless "
                                   "given; the header says where each setting came from. Writes report.json "
                                   "into --out, and with the transfer protocol transfer.json and transfer.png.")
    e.add_argument("--checkpoint", type=path_arg, required=True, help="a best.pt or last.pt from dwq train")
    e.add_argument("--out", type=path_arg, required=True, help="new output folder")
    e.add_argument("--data-dir", type=path_arg, default=None,
                   help="local dataset folder (default: the run's --data-dir; mnist5k needs none)")
    e.add_argument("--precisions", nargs="+", action=ListOnce, type=precision_arg, default=None,
                   help="RPI set to evaluate, each in the checkpoint's set (default: the checkpoint's whole set)")
    e.add_argument("--attack", default="pgd", choices=EVAL_ATTACKS, help="attack for per-precision, paper and "
                   "transfer evaluations (the adaptive protocol always uses EOT-PGD)")
    e.add_argument("--epsilon", type=positive_fraction, default=None,
                   help="L-inf radius, in (0, 1] (default: the checkpoint's training ε)")
    e.add_argument("--alpha", type=positive_fraction, default=None,
                   help="PGD and EOT-PGD step (default: the training PGD step when ε is the training ε and the run "
                        "trained with PGD, else ε/4)")
    e.add_argument("--steps", type=positive_int, default=20, help="PGD / EOT-PGD steps (paper: 20 and 100)")
    e.add_argument("--restarts", type=positive_int, default=1, help="PGD / EOT-PGD restarts (paper: 10)")
    e.add_argument("--cw-tau", type=positive_fraction, default=0.05,
                   help="--attack cw-linf only: initial τ (paper: 0.05/0.1/0.2)")
    e.add_argument("--cw-steps", type=positive_int, default=100,
                   help="--attack cw-l2 or cw-linf only: Adam steps (the reference's 100; CW-L2's pixels at 0 or 1 "
                        "barely move in 100, so MNIST-like images need about 1000)")
    e.add_argument("--bandits-queries", type=bandits_budget, default=1000,
                   help="--attack bandits only: query budget per image, >= 2 (2 per step)")
    e.add_argument("--bandits-tile", type=positive_int, default=4,
                   help="--attack bandits only: tile size of the data prior")
    e.add_argument("--protocols", nargs="+", action=ListOnce, default=["paper", "adaptive", "transfer"], choices=EVAL_PROTOCOLS,
                   metavar="PROTOCOL",
                   help="which evaluations to run besides clean/per-precision accuracy: paper (exact expectation "
                        "of the reference's protocol, from the transfer matrix's attacks), paper-sampled (also its "
                        "one-draw-per-batch replica), adaptive (EOT-PGD over the set), transfer (the matrix), "
                        "autoattack-rand (both counts), autoattack-standard (per precision) "
                        "(default: paper adaptive transfer)")
    e.add_argument("--paper-batch", type=positive_int, default=100,
                   help="paper-sampled only: images per batch sharing one precision draw (the reference draws "
                        "one per test batch: its test_pgd.py's --batch_size, 128 unless given)")
    e.add_argument("--eot-iter", type=positive_int, default=20,
                   help="autoattack-rand only: EOT gradient samples per APGD step (the original: 20)")
    e.add_argument("--autoattack-steps", type=positive_int, default=100,
                   help="autoattack-rand only: APGD iterations (the original: 100)")
    e.add_argument("--autoattack-n", type=positive_int, default=None,
                   help="autoattack-rand only: attack only the first N evaluated images (it is the slowest protocol) "
                        "(default: all of them)")
    e.add_argument("--reference", action="store_true",
                   help="--attack pgd as the reference code evaluates: a sample stops moving once it is "
                        "misclassified at the attack precision, and restarts keep the highest-loss point (the "
                        "adaptive protocol's EOT-PGD is unchanged)")
    e.add_argument("--integer", action="store_true",
                   help="attack and classify the true-integer model (dwq.deploy.convert of the checkpoint) instead "
                        "of the fake-quant one; gradients come from the fake-quant twin (straight-through)")
    e.add_argument("--n-test", type=positive_int, default=None, help="evaluate N test images only: the first N, or for ImageNet (its val/ "
                                                           "folder is sorted by class) a fixed random N (seed 0)")
    e.add_argument("--batch-size", type=positive_int, default=250, help="evaluation batch size")
    e.add_argument("--seed", type=seed_arg, default=0, help="seed of precision draws and random starts")
    e.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars (the time of each stage is "
                                                              "still printed)")
    e.add_argument("--resume", action="store_true",
                   help="continue the interrupted evaluation in --out, given the same flags: the stages it finished "
                        "(clean, each attack precision, adaptive, AutoAttack; kept in --out/stages) and the finished "
                        "batches of the one in progress are read back, the rest run; the report is the "
                        "uninterrupted one's")

    # ---- demo
    d = sub.add_parser("demo", formatter_class=HelpFormatter,
                       help="the embedded MNIST-5k experiment (about 3-9.5 min on 2 CPU cores)",
                       description="Trains a small CNN three ways on MNIST-5k (full-precision PGD-AT, fixed 4-bit "
                                   "PGD-AT, RPT over 2/3/4/6/8 bits with switchable BN), evaluates clean accuracy, "
                                   "the paper protocol, the adaptive protocol and the transferability matrices, "
                                   "prints a table and writes report.json and heatmaps into --out.")
    d.add_argument("--out", type=path_arg, default="runs/demo", help="new output folder")
    d.add_argument("--epochs", type=positive_int, default=6, help="training epochs per model")
    d.add_argument("--n-test", type=positive_int, default=1000, help="test images (at most 1000)")
    d.add_argument("--train-images", type=positive_int, default=None,
                   help="train on the first N of the 3,600 training images only, and validate on the first N "
                        "of the 400 held out (smoke tests; numbers then mean nothing) (default: all of them)")
    d.add_argument("--autoattack-n", type=nonneg_int, default=100,
                   help="AutoAttack rand (100 steps, 20 EOT samples) on the RPT model's first N test images; 0 skips "
                        "it (it is the demo's slowest part)")
    d.add_argument("--seed", type=seed_arg, default=0, help="seed")
    d.add_argument("--threads", type=threads_arg, default=2,
                   help="torch CPU threads; the figures depend on it (float summation order), so report.json "
                        "records it. A value given must be at most the CPUs this process may use; the default, 2, "
                        "is the README run's and is taken on any machine, so that its figures can be reproduced "
                        "(slower where fewer CPUs are free)")
    d.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    d.add_argument("--resume", action="store_true",
                   help="continue the interrupted demo in --out, given the same flags: its finished models are "
                        "kept, the one in training resumes from its last epoch (the figures are those of an "
                        "uninterrupted run)")
    deploy_cli.add_parsers(sub)
    return p


# ----------------------------------------------------------------------------- eval
def _class_sorted(dataset) -> bool:
    # an ImageFolder (ImageNet's val/) lists every image of class 0 first: its first N are a few classes
    return hasattr(dataset, "samples") and hasattr(dataset, "class_to_idx")


def _eval_indices(dataset, n=None):
    """The test images dwq eval reads: the first ``n`` (the CIFAR/SVHN/MNIST-5k test sets are in no
    class order), but in a class-sorted folder a fixed random sample (seed 0, not --seed: every
    evaluation of ``n`` images reads the same ones), whose first --autoattack-n are random too. The
    whole folder too is read in that order: in its own, --autoattack-n took the first classes alone
    and each drawn batch of the paper-sampled replica held one class."""
    import torch
    m = len(dataset) if n is None else min(n, len(dataset))
    if _class_sorted(dataset):
        return torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:m].tolist()
    return range(m)


def _tensors(dataset, n=None):
    import torch
    if hasattr(dataset, "tensors"):
        x, y = dataset.tensors
        return (x[:n], y[:n]) if n else (x, y)
    xs, ys = zip(*(dataset[i] for i in _eval_indices(dataset, n)))
    return torch.stack(xs), torch.as_tensor(ys)


def _eval_settings(a, ck, model_set, device):
    """Resolves the settings that default to the checkpoint's (in ``a``) and returns
    ``[(name, value, source)]`` for the header and report.json, precisions in dwq's one spelling.
    CLIError for a flag that the chosen attack and protocols would not use."""
    cfg, given = ck["config"], a._given
    ex = cfg["extra"]
    run_flags = ex.get("flags", {})
    src = lambda d: "given" if d in given else "default"  # noqa: E731
    rows = [("network", ex["network"], "checkpoint")]
    # dataset and its folder: the run's
    if ex["dataset"] == "mnist5k":
        if a.data_dir is not None:
            raise CLIError("--data-dir: the checkpoint's dataset is mnist5k, which is embedded (no folder)")
        rows.append(("dataset", "mnist5k (embedded)", "checkpoint"))
    else:
        if a.data_dir is None:
            a.data_dir = run_flags.get("data_dir")
        rows.append(("dataset", f"{ex['dataset']} from {a.data_dir}",
                     "checkpoint; --data-dir given" if "data_dir" in given else "checkpoint: the run's --data-dir"))
    # precisions
    if a.precisions:
        precisions_within(a.precisions, model_set, "the checkpoint's")
        rows.append(("precisions", pnames(a.precisions), "given"))
    else:
        a.precisions = list(model_set)
        rows.append(("precisions", pnames(model_set), "checkpoint: its whole set"))
    # attack settings, and flags that would play no part
    uses_pgd = a.attack == "pgd" or "adaptive" in a.protocols
    for dests, needs, ok in ((("alpha", "steps", "restarts"), "--attack pgd or the adaptive protocol", uses_pgd),
                             (("cw_tau",), "--attack cw-linf", a.attack == "cw-linf"),
                             (("cw_steps",), "--attack cw-l2 or cw-linf", a.attack in CW_ATTACKS),
                             (("bandits_queries", "bandits_tile"), "--attack bandits", a.attack == "bandits"),
                             (("paper_batch",), "--protocols paper-sampled", "paper-sampled" in a.protocols),
                             (("eot_iter", "autoattack_steps", "autoattack_n"), "--protocols autoattack-rand",
                              "autoattack-rand" in a.protocols),
                             # cw-l2 is unbounded: ε bounds only these protocols then
                             (("epsilon",), "an L-inf attack or the adaptive and AutoAttack protocols",
                              a.attack != "cw-l2" or bool({"adaptive", "autoattack-rand", "autoattack-standard"}
                                                          & set(a.protocols)))):
        for d in dests:
            if d in given and not ok:
                raise CLIError(f"--{d.replace('_', '-')} is for {needs}; --attack {a.attack} with protocols "
                               f"{' '.join(a.protocols)} does not use it")
    if a.reference and a.attack != "pgd":
        raise CLIError(f"--reference sets the reference's PGD (early stop); --attack {a.attack} is not PGD")
    rows.append(("attack", a.attack + (" (the reference's: early stop, highest-loss restart)" if a.reference else ""),
                 "given: --reference" if a.reference else src("attack")))
    if a.epsilon is None:
        a.epsilon = cfg["epsilon"]
        rows.append(("epsilon", f"{a.epsilon:.4g}", "checkpoint: the training ε"))
    else:
        rows.append(("epsilon", f"{a.epsilon:.4g}", "given"))
    if a.attack == "cw-l2":
        rows[-1] = rows[-1][:2] + (rows[-1][2] + "; bounds the adaptive and AutoAttack protocols, not cw-l2 "
                                   "(unbounded L2)",)
    # resolved alike whether or not a PGD runs: a resume that adds the adaptive protocol must find the step
    # the first run recorded (a placeholder ε/4 there refused the checkpoint's step here)
    if a.alpha is not None:
        step = ("step", f"{a.alpha:.4g}", "given")
    # (as the help says: an --epsilon given equal to the training ε, e.g. the 8/255 it trained with, keeps
    # the step)
    elif a.epsilon == cfg["epsilon"] and cfg.get("attack") == "pgd" and cfg.get("alpha"):
        a.alpha = cfg["alpha"]
        step = ("step", f"{a.alpha:.4g}", "checkpoint: the training PGD step")
    else:
        a.alpha = a.epsilon / 4
        why = ("ε given, other than the training ε" if a.epsilon != cfg["epsilon"]
               else f"the run trained with {cfg.get('attack')}, not PGD")
        step = ("step", f"{a.alpha:.4g}", f"default: ε/4 ({why})")
    if uses_pgd:
        rows += [step, ("steps", str(a.steps), src("steps")), ("restarts", str(a.restarts), src("restarts"))]
    if a.attack == "cw-linf":
        rows.append(("cw-tau", f"{a.cw_tau:g}", src("cw_tau")))
    if a.attack in CW_ATTACKS:
        rows.append(("cw-steps", str(a.cw_steps), src("cw_steps")))
    if a.attack == "bandits":
        rows.append(("bandits", f"{a.bandits_queries} queries, tile {a.bandits_tile}",
                     "given" if {"bandits_queries", "bandits_tile"} & given else "default"))
    rows.append(("model", "true-integer (dwq.deploy), fake-quant gradients" if a.integer else "fake-quant",
                 "given: --integer" if a.integer else "default"))
    rows.append(("protocols", " ".join(a.protocols), src("protocols")))
    if "paper-sampled" in a.protocols:
        rows.append(("paper batch", str(a.paper_batch), src("paper_batch")))
    if "autoattack-rand" in a.protocols:
        rows.append(("autoattack", f"{a.autoattack_steps} steps, {a.eot_iter} EOT samples"
                     + (f", first {a.autoattack_n} images" if a.autoattack_n else ""),
                     "given" if {"autoattack_steps", "eot_iter", "autoattack_n"} & given else "default (the original's)"))
    rows.append(("batch size", str(a.batch_size), src("batch_size")))
    rows.append(("seed", str(a.seed), src("seed")))
    rows.append(("device", device, src("device")))
    return rows


def _integer_twin(model, ps):
    """``dwq.deploy.StraightThrough`` of ``model``'s integer conversion at ``ps`` (--integer)."""
    from dwq.deploy import ConversionError, StraightThrough, convert

    try:
        return StraightThrough(convert(model, ps), model)
    except ConversionError as e:
        raise CLIError(f"--integer: {e}") from None


def _check_eval_resumable(out, stage_dir):
    resumable_dir(out, "evaluation", [EVAL_STAGES])
    # an empty folder is one killed before its first stage: the resume starts it (refused, it left a
    # killed evaluation's folder that only a run without --resume took)
    if not os.path.isdir(stage_dir) and os.listdir(out):
        raise CLIError(f"--resume: {out} is not an interrupted dwq eval (no stages folder)")


def cmd_eval(a):
    with contextlib.ExitStack() as held:  # the folder's lock, taken once it exists
        return _eval(a, held)


def _eval(a, held: contextlib.ExitStack):
    from dwq import eval as E
    from dwq.data import get_datasets
    from dwq.nn import precision_set
    from dwq.train import load_trained_model

    repeated = sorted({p for p in a.protocols if a.protocols.count(p) > 1})
    if repeated:  # (once run, and recorded, twice)
        raise CLIError(f"--protocols: {' '.join(repeated)} given more than once")
    existing_checkpoint(a.checkpoint)
    device = _device(a.device)
    model, ck = load_trained_model(a.checkpoint, device)
    finite_checkpoint(model, a.checkpoint)
    ex = ck["config"]["extra"]
    if ex["dataset"] == "imagenet" and not a.n_test:
        raise CLIError("ImageNet evaluation holds the test images in memory: give --n-test (e.g. 5000)")
    stage_dir = os.path.join(a.out, EVAL_STAGES)
    if a.resume:
        _check_eval_resumable(a.out, stage_dir)
    else:
        interrupted = os.path.isdir(stage_dir) and not os.path.exists(os.path.join(a.out, "report.json"))
        if interrupted:  # or running: then that is the error (it was called interrupted, --resume the advice)
            with folder_lock(a.out):
                pass
        fresh_dir(a.out, create=False, hint=" (it holds no report.json: an interrupted evaluation; continue it with "
                                            "--resume)" if interrupted else "")
    settings = _eval_settings(a, ck, precision_set(model), device)
    _, test, info = get_datasets(ex["dataset"], a.data_dir, augment=False, test_only=True)
    check_run_classes(ex, test, a.data_dir, "dwq eval")
    if a.n_test and a.n_test > len(test):
        raise CLIError(f"--n-test {a.n_test}: the {ex['dataset']} test set has {len(test)} images")
    n_eval = a.n_test or len(test)
    if a.autoattack_n and a.autoattack_n > n_eval:  # like --n-test: refused, not quietly shortened
        where = "--n-test" if a.n_test else f"the whole {ex['dataset']} test set"
        raise CLIError(f"--autoattack-n {a.autoattack_n}: more than the {n_eval} images evaluated ({where})")
    sample = ", a random sample (seed 0)" if a.n_test and _class_sorted(test) else ""
    settings.insert(-3, ("test images", f"{a.n_test or len(test)} of {len(test)}{sample}",
                         "given" if a.n_test else "default: all"))
    ps = a.precisions
    target = _integer_twin(model, ps) if a.integer else model  # before anything is written
    if not a.resume:
        fresh_dir(a.out)
    # two evaluations in one folder (a resume beside the run it resumes) would write over each other
    held.enter_context(folder_lock(a.out))
    print(f"dwq eval {__version__}: {a.checkpoint} (epoch {ck.get('epoch', '?')}) -> {a.out}")
    w = max(len(v) for _, v, _ in settings) + 2
    print(f"  {'setting':<12}{'value':<{w}}from")
    for name, value, source in settings:
        print(f"  {name:<12}{value:<{w}}{source}")
    sys.stdout.flush()
    x, y = _tensors(test, a.n_test)
    x, y = x.to(device), y.to(device)
    stages = StageLog(progress=not a.no_progress)
    rep = {"checkpoint": os.path.abspath(a.checkpoint), "network": ex["network"], "dataset": ex["dataset"],
           "settings": {name: {"value": value, "from": source} for name, value, source in settings}}
    try:
        rep.update(E.evaluate(
            target, x, y, ps, attack=a.attack, epsilon=a.epsilon, alpha=a.alpha, steps=a.steps, restarts=a.restarts,
            protocols=a.protocols, seed=a.seed, batch_size=a.batch_size, paper_batch=a.paper_batch,
            num_classes=info.num_classes, cw_tau=a.cw_tau, cw_steps=a.cw_steps,
            bandits_queries=a.bandits_queries, bandits_tile=a.bandits_tile, autoattack_n=a.autoattack_n,
            autoattack_steps=a.autoattack_steps, eot_iter=a.eot_iter, input_size=None if a.integer else info.input_size,
            progress=stages, pgd_options=dict(E.REFERENCE_PGD) if a.reference else None, stage_dir=stage_dir))
    except OSError as e:  # a stage that could not be saved (a full disk): one line, as for the report
        what = write_failure(e, stage_dir)
        if what is None:
            raise
        raise CLIError(f"{what}; the stages saved so far are kept: once fixed, the same command with --resume "
                       f"continues it") from None
    stages.close()
    if a.integer:  # the cost of the precisions, counted on the fake-quant model's layers
        from dwq.quant.cost import bitops_summary
        rep["bitops"] = bitops_summary(model, info.input_size, ps)
    rep["integer"] = a.integer
    rep["seconds_per_stage"] = stages.seconds
    fmt = lambda r: f"{100 * r['acc']:.1f}% [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"  # noqa: E731
    print(f"accuracy, % [95% interval], n={len(y)}:")
    for key in ("clean_acc", f"{a.attack}_acc"):
        print(f"  {key:<15}" + "  ".join(f"{p}: {fmt(r)}" for p, r in rep[key].items()))
    for key, r in rep["rpi"].items():
        if isinstance(r, dict) and "acc" in r:
            print(f"  RPI {key:<26}{fmt(r)}")
    aa = rep["rpi"].get("autoattack_rand")
    if aa:
        print(f"  RPI autoattack_rand (n={aa['n']})  original count {fmt(aa['original'])}, "
              f"expected {fmt(aa['expected'])}")
    aas = rep["rpi"].get("autoattack_standard_per_precision")
    if aas:  # (its per-precision rows hold no "acc" of their own: this, the costliest protocol, printed nothing)
        print("  autoattack_standard  " + "  ".join(f"{p}: {fmt(r)}" for p, r in aas.items()))
    try:  # after the figures are printed: a disk that filled up during a long evaluation loses only the files
        E.write_report(rep, a.out, f"{ex['network']}: {a.attack} robust accuracy (%)")
    except OSError as e:
        raise CLIError(f"--out {a.out}: cannot write the report ({e.strerror or e}); its figures are printed "
                       f"above, and the same command with --resume writes it from the saved stages") from None
    shutil.rmtree(stage_dir, ignore_errors=True)  # a finished evaluation is its report
    files = [f for f in ("report.json", "transfer.json", "transfer.png") if os.path.isfile(os.path.join(a.out, f))]
    resumed = " (this process only: it resumed an interrupted evaluation)" if rep.get("resumed") else ""
    print(f"done in {rep['seconds']:.0f} s{resumed}; wrote {a.out}/: {', '.join(files)}")
    return 0


# ----------------------------------------------------------------------------- main
def subcommands(parser: argparse.ArgumentParser) -> dict:
    """``{name: subparser}`` of the ``dwq`` parser."""
    return next(act.choices for act in parser._actions if isinstance(act, argparse._SubParsersAction))


def resumable_run(a) -> bool:
    """Whether the interrupted eval or demo run in ``a.out`` continues with ``--resume`` (once report.json is
    written the run is finished: what is left is removing its resume files)."""
    out = getattr(a, "out", "") or ""
    return a.command in ("eval", "demo") and os.path.isdir(out) and any(
        os.path.exists(os.path.join(out, f)) for f in (EVAL_STAGES, demo_resume.SETTINGS)) and \
        not os.path.exists(os.path.join(out, "report.json"))


def _dispatch(a) -> int:
    if a.command == "train":
        return train_cmd.cmd_train(a)
    if a.command == "eval":
        return cmd_eval(a)
    if a.command == "demo":
        from .demo import run_demo
        return run_demo(a)
    if a.command in deploy_cli.COMMANDS:
        return deploy_cli.COMMANDS[a.command](a)
    return 0


def main(argv=None) -> int:
    from_shell = argv is None  # (the dwq program, not a caller in Python whose own Ctrl-C must keep working)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    a, extra = parser.parse_known_args(argv)
    if extra:  # (argparse said "dwq: error: unrecognized arguments", pointing to dwq --help, which lists no flags)
        subcommands(parser)[a.command].error(f"unrecognized arguments: {' '.join(extra)}")
    a._given = given_flags(build_parser(), argv)  # flags written on the command line, not defaults
    a._argv = ["dwq"] + argv
    malloc = os.environ.get("DWQ_MALLOC") or "keep"  # (set but empty is unset, as DWQ_CPU_ISA= is)
    if malloc not in ("keep", "default"):
        print(f"dwq {a.command}: error: DWQ_MALLOC={malloc!r}: expected 'keep' (reuse freed memory, the "
              "default) or 'default' (glibc's own thresholds)", file=sys.stderr)
        return 2
    isa = os.environ.get("DWQ_CPU_ISA", "")
    if isa:  # (else a traceback from the first op, or an error blamed on the input or a layer)
        from dwq.ops import HAS_EXT, supported_cpu_isas

        if HAS_EXT and isa not in supported_cpu_isas():
            print(f"dwq {a.command}: error: DWQ_CPU_ISA={isa!r}: expected one of this CPU's kernel paths "
                  f"{', '.join(supported_cpu_isas())} (or unset: the fastest)", file=sys.stderr)
            return 2
    if malloc == "keep":
        from dwq.memory import keep_freed_memory

        keep_freed_memory()  # (dwq.memory: large tensors reuse freed pages instead of faulting in new ones)
    # The handler stays installed while the outcome is printed: a SIGTERM then (torchrun's agent stopping the
    # other processes once one failed) is ignored, not a silent death between the command's end and its message.
    try:
        with sigterm_as_interrupt(), dwq_warnings_as_lines(a.command):
            try:
                try:
                    return _dispatch(a)
                except BaseException:
                    stopping()
                    raise
            except CLIError as e:
                print(f"dwq {a.command}: error: {e}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as e:
                how, status = interrupt_outcome(e)
                print(f"dwq {a.command}: {how}" + ("; the same command with --resume continues it"
                                                    if resumable_run(a) else ""), file=sys.stderr)
                return status
            except BrokenPipeError:  # the reader went away (dwq bench ... | head -1): no traceback
                stdout_to_devnull()
                if resumable_run(a):  # (an hour-long evaluation ended with status 1 and not a word)
                    print(f"dwq {a.command}: stdout was closed; the same command with --resume continues it",
                          file=sys.stderr)
                return 1
            except (ValueError, FileNotFoundError, RuntimeError, TypeError) as e:
                from dwq.data import DatasetError
                from dwq.train import CheckpointError
                # (DWQ_TRACEBACK=0 showed the traceback: only "1" asks for it)
                if isinstance(e, (DatasetError, CheckpointError, ValueError, FileNotFoundError)) and os.environ.get(
                        "DWQ_TRACEBACK", "") != "1":
                    print(f"dwq {a.command}: error: {first_line(e)}", file=sys.stderr)
                    return 2
                raise
    finally:
        if from_shell:  # (the process ends: a second Ctrl-C cut its clean-up short, a traceback after the message)
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())

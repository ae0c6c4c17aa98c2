"""What ``dwq train`` prints (glue only): the header that says what the run is, one line per epoch,
and the summary at the end."""
from __future__ import annotations

import json
import math
import os
import shlex
import sys

from dwq._version import __version__

__all__ = ["epoch_line", "print_header", "print_summary"]


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
    if not math.isfinite(rec["train_loss"]):
        s += "  (diverged: the loss is not finite; a lower --lr may help)"
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
    how = ("RPT: a precision drawn from the set at every iteration" if f["random_precision_training"]
           else f"fixed precision {f['num_bits']}")
    if f["attack"] == "none":
        atk = "natural training (no attack)"
    else:
        atk = {"pgd": f"PGD-{f['attack_iters']}", "fgsm": "FGSM", "fgsm-rs": "FGSM-RS",
               "free": f"free ({f['free_replays']} replays)"}[f["attack"]]
        atk += f" ε {f['epsilon']:.4g} step {f['alpha']:.4g}"
    print(f"  training   {how}; {atk}" + ("; amp" if f["amp"] else "") + ("; torch.compile" if f.get("compile") else "")
          + ("; CUDA graphs" if f.get("cuda_graphs") else "")
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
        every = f.get("val_every") or 1
        when = "every epoch" if every == 1 else f"every {every} epochs and the last"
        print(f"  validation {v} accuracy over the set after {when}; best.pt keeps the best "
              f"{'PGD' if f['val_pgd_steps'] else 'clean'} accuracy")
    for label, text in defaults:
        print(f"  {label:<11}{text}")
    sys.stdout.flush()


def print_summary(out, tr, seconds, f):
    """The end of a run: epochs trained, the epoch best.pt holds, the files written, what to run next."""
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
        # (a folder named by "." or "..": its name, not ".-eval")
        base = os.path.normpath(out)
        base = os.path.abspath(base) if os.path.basename(base) in (".", "..") else base
        # (quoted: a folder with spaces or shell characters gives a command that runs as printed)
        print(f"next: dwq eval --checkpoint {shlex.quote(os.path.join(out, 'best.pt'))} "
              f"--out {shlex.quote(base + '-eval')}")

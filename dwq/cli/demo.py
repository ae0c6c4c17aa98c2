"""``dwq demo``: the embedded MNIST-5k experiment (about 3-9.5 minutes on 2 idle CPU cores: 186 s in the
kept AVX-512 VNNI report, 437 s in the AVX2 one; more on a busy machine).

Three small CNNs (width 16) are trained with PGD adversarial training on the
4,000-image training split (10% of it held out for validation), identical in
everything but precision handling:

* ``fp``: full-precision PGD-AT, one shared BN; at test time it is also run at
  the quantized precisions of the set (the paper's "PGD-7 + RPI" row);
* ``fixed4``: PGD-AT at a fixed 4 bits, one shared BN (the paper's
  transferability model);
* ``rpt``: Random Precision Training over ``SET`` with switchable BN.

The set spans 2..8 bits because a quick throwaway experiment (see the issue)
found the cross-precision effects within noise at 4-8 bits and visible only at
2-3 bits; including both shows where the trade-off lies. Nothing here was tuned
to produce an effect; docs/workflow.md lists how ε, epochs and PGD steps were
chosen and how stable the demo's conclusions were across those choices.
"""
from __future__ import annotations

import contextlib
import os
import time

from dwq._errors import first_line
from dwq._version import __version__

SET = [2, 3, 4, 6, 8]
EPS = 0.1            # MNIST pixels in [0, 1]; 0.2 already trained too slowly for the budget (docs/workflow.md)
TRAIN_ALPHA = EPS / 4
TRAIN_STEPS = 5
EVAL_ALPHA = EPS / 4
EVAL_STEPS = 10       # PGD-10 (step ε/4, random start): the time budget; the paper used PGD-20 on CIFAR
AA_STEPS = 100        # AutoAttack rand as the original runs it: 100 APGD iterations, 20 EOT samples
AA_EOT = 20
PAPER_BATCH = 100     # the sampled replica of the paper protocol: one precision draw per 100 images


def run_demo(a) -> int:
    from .common import CLIError, write_failure

    try:
        with contextlib.ExitStack() as held:  # the folder's lock, taken once it exists
            return _run(a, held)
    except OSError as e:  # a disk full or a folder made read-only mid-run: one line, not a traceback
        what = write_failure(e, a.out)
        if what is None:
            raise
        raise CLIError(f"{what}; once fixed, continue it: the same command with --resume") from None


def _run(a, held: contextlib.ExitStack) -> int:
    import torch

    from dwq import eval as E
    from dwq.data import load_mnist5k, train_val_split
    from dwq.deploy import check_conversion
    from dwq.models import build_model
    from dwq.quant import precision_name
    from dwq.train import TrainConfig, Trainer

    from . import demo_resume
    from .common import CLIError, folder_lock, fresh_dir

    t_start = time.time()
    resume = getattr(a, "resume", False)
    if not resume:  # before anything else, then created once every flag is checked
        fresh_dir(a.out, create=False, hint=" (it holds no report.json: an interrupted demo; continue it with "
                                            "--resume)" if demo_resume.interrupted(a.out) else "")
    torch.set_num_threads(a.threads)
    train, val = train_val_split(load_mnist5k("train"), 0.1, seed=a.seed)
    x, y = load_mnist5k("test").tensors
    # a count beyond the data would run on less than asked, unsaid (dwq train and eval refuse it too)
    if a.n_test > len(y):
        raise CLIError(f"--n-test {a.n_test}: the mnist5k test split has {len(y)} images")
    if a.train_images:
        if a.train_images > len(train):
            raise CLIError(f"--train-images {a.train_images}: the demo's training split has {len(train)} images")
        train = torch.utils.data.Subset(train, range(a.train_images))
        val = torch.utils.data.Subset(val, range(min(a.train_images, len(val))))
    n = a.n_test
    x, y = x[:n], y[:n]
    # like dwq eval's: the first N of the evaluated images; a count given beyond them is refused as eval
    # refuses it, the default shrinks to --n-test (the report records the N that ran)
    if "autoattack_n" in getattr(a, "_given", ()) and a.autoattack_n > n:
        raise CLIError(f"--autoattack-n {a.autoattack_n}: more than the {n} test images evaluated (--n-test {n})")
    n_aa = min(a.autoattack_n, n)
    # what the figures depend on: a resume continues only the same demo
    settings = {"epochs": a.epochs, "n_test": n, "train_images": a.train_images, "autoattack_n": n_aa,
                "autoattack_steps": AA_STEPS, "autoattack_eot": AA_EOT, "seed": a.seed, "threads": a.threads,
                "dwq_version": __version__, **E.kernel_identity("cpu")}
    # two demos in one folder (a resume beside the run it resumes) would train and write over each other
    if resume and os.path.isdir(a.out):
        held.enter_context(folder_lock(a.out))
    if resume and demo_resume.check_resumable(a.out, settings):
        out = a.out
    else:
        out = fresh_dir(a.out)
        if not resume:
            held.enter_context(folder_lock(out))
        demo_resume.start(out, settings)

    runs = {
        "fp": dict(model_set=[None] + SET, sbn=False, train=[None], rp=False,
                   what="full-precision PGD-AT (shared BN), run at each precision at test time"),
        "fixed4": dict(model_set=SET, sbn=False, train=[4], rp=False, what="PGD-AT at fixed 4 bits (shared BN)"),
        "rpt": dict(model_set=SET, sbn=True, train=SET, rp=True,
                    what=f"RPT over {SET} bits with switchable BN"),
    }
    report = {"dataset": "mnist5k", "n_train": len(train), "n_val": len(val), "n_test": n, "epsilon": EPS,
              "train_attack": f"PGD-{TRAIN_STEPS} step {TRAIN_ALPHA:g}", "eval_attack": f"PGD-{EVAL_STEPS} step "
              f"{EVAL_ALPHA:g}, random start", "rpi_set": SET, "epochs": a.epochs, "seed": a.seed,
              "threads": a.threads,  # the figures depend on it too (float reduction order)
              # and on the code and the float kernels (the settings file that records them goes at the end)
              "dwq_version": __version__, **E.kernel_identity("cpu"),
              "autoattack": {"model": "rpt", "n": n_aa, "steps": AA_STEPS, "eot_iter": AA_EOT}, "models": {},
              # what this process took over from an interrupted one: its timings then count this process only
              "resumed": []}
    for name, r in runs.items():
        kept = demo_resume.kept_result(out, name) if resume else None
        if kept is not None:
            report["models"][name] = kept
            report["resumed"].append(f"{name}: kept")
            print(f"[{name}] kept from the interrupted run", flush=True)
            continue
        t0 = time.time()
        torch.manual_seed(a.seed)
        model, _ = build_model("small_cnn", "mnist5k", r["model_set"], r["sbn"], width=16)
        cfg = TrainConfig(attack="pgd", epsilon=EPS, alpha=TRAIN_ALPHA, attack_iters=TRAIN_STEPS, epochs=a.epochs,
                          batch_size=128, lr=0.1, lr_schedule="cyclic", weight_decay=5e-4, precisions=r["train"],
                          random_precision=r["rp"], seed=a.seed, val_every=a.epochs, val_pgd_steps=10,
                          progress=not a.no_progress,
                          extra={"network": "small_cnn", "dataset": "mnist5k",
                                 "model_precisions": [precision_name(p) for p in r["model_set"]],
                                 "switchable_bn": r["sbn"], "width": 16})
        trainer = Trainer(model, train, cfg, os.path.join(out, name), val_set=val)
        since = demo_resume.resume_training(trainer, out, name) if resume else None
        if since is not None:  # (all epochs done: the kill came in its evaluation, which resumes from its stages)
            report["resumed"].append(f"{name}: training resumed after epoch {since} of {a.epochs}" if since < a.epochs
                                     else f"{name}: trained before the interruption; its evaluation resumed")
            print(f"[{name}] " + (f"resuming its training after epoch {since}" if since < a.epochs
                                  else "trained before the interruption: resuming its evaluation"), flush=True)
        trainer.fit()
        t_train = time.time() - t0
        protocols = ["paper", "paper-sampled", "adaptive", "transfer"]
        if name == "rpt" and n_aa:
            protocols.append("autoattack-rand")
        m = {"what": r["what"], "train_seconds": t_train}
        m.update(E.evaluate(model, x, y, r["model_set"], rpi_precisions=SET, attack="pgd", epsilon=EPS,
                            alpha=EVAL_ALPHA, steps=EVAL_STEPS, protocols=protocols, seed=a.seed, batch_size=500,
                            paper_batch=PAPER_BATCH, autoattack_n=n_aa or None, autoattack_steps=AA_STEPS,
                            eot_iter=AA_EOT, input_size=(1, 28, 28), stage_dir=demo_resume.stage_dir(out, name)))
        E.save_heatmap(m["transfer_matrix"], os.path.join(out, f"transfer_{name}.png"),
                       f"{name}: PGD-{EVAL_STEPS} robust acc. (%), ε={EPS}\nrows: attack bits, cols: inference bits")
        m["eval_seconds"] = time.time() - t0 - t_train
        if name == "rpt":  # deploy it: the integer model against its fake-quant self (dwq.deploy)
            m["deploy"] = check_conversion(model, x, y, SET)
        report["models"][name] = m
        demo_resume.keep_result(out, name, m)
        print(f"[{name}] trained {t_train:.0f}s, evaluated {m['eval_seconds']:.0f}s", flush=True)

    main = report["models"]["rpt"]
    report.update(clean_acc=main["clean_acc"], rpi=main["rpi"], transfer_matrix=main["transfer_matrix"],
                  bitops=main["bitops"])
    report["findings"] = findings(report)
    report["seconds"] = time.time() - t_start
    E.save_json(report, os.path.join(out, "report.json"))
    demo_resume.finish(out)
    print(table(report))
    print("\n" + "\n".join(report["findings"]))
    print("\n" + deploy_summary(report))
    print("\nREADME rows (markdown, from this run's report.json):\n" + markdown_rows(report))
    resumed = " (this process only: it resumed an interrupted run)" if report["resumed"] else ""
    print(f"\nwall time {report['seconds']:.0f} s{resumed}; wrote {out}/report.json, {out}/transfer_{{fp,fixed4,rpt}}.png "
          f"and the three runs' folders {out}/{{fp,fixed4,rpt}}/ (config.json, metrics.jsonl, best.pt, last.pt)")
    return 0


# ----------------------------------------------------------------------------- reading report.json
# Everything below reads only the report dict (as saved), so `python -m dwq.cli.demo report.json`
# regenerates the table, the findings and the README rows of any past run.

def _pct(r):
    return f"{100 * r['acc']:.1f} [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"


def _fmt(r):
    return f"{100 * r['acc']:5.1f} ±{100 * (r['ci95'][1] - r['ci95'][0]) / 2:3.1f}"


def _or_dash(r, fmt):
    """A figure that reports before it existed lack (worst_case_of_attacks: since b7c4631)."""
    return "-" if r is None else fmt(r)


def _diff(rep, a_model, a_key, b_model, b_key, n=None):
    """Paired difference (points, 95% CI) of two per-image scores of the report, on the same images."""
    import torch

    from dwq.eval import diff_ci

    a = rep["models"][a_model]["per_image"][a_key]
    b = rep["models"][b_model]["per_image"][b_key]
    n = n or min(len(a), len(b))
    return diff_ci(torch.tensor(a[:n]), torch.tensor(b[:n]))


def _bound(v):
    """A bound in points to 0.1, or to the first decimal that is not 0: a bound of +0.04 printed as +0.0
    beside "excludes 0" read as a contradiction."""
    places = 1
    while v != 0 and round(v, places) == 0 and places < 6:
        places += 1
    return f"{v:+.{places}f}"


def _say(d):
    lo, hi = 100 * d["ci95"][0], 100 * d["ci95"][1]
    verdict = "the interval excludes 0" if lo > 0 or hi < 0 else "the interval includes 0: no difference shown"
    return f"{100 * d['diff']:+.1f} points [{_bound(lo)}, {_bound(hi)}] ({verdict})"


def _bitops_mean(m, ps):
    return sum(m["bitops"]["per_precision"][str(p)] for p in ps) / len(ps)


def findings(rep) -> list:
    """Plain statements computed from the report alone; the differences with a paired 95% interval over
    the same test images (:func:`dwq.eval.diff_ci`), the transfer rows as point estimates."""
    ms = rep["models"]
    out = []
    for name in ms:
        out.append(f"{name}: RPI PGD accuracy, paper protocol (exact expectation) minus adaptive (EOT): "
                   f"{_say(_diff(rep, name, 'paper', name, 'adaptive'))}.")
    for name, m in ms.items():
        r = m["rpi"]
        s = r.get("pgd_paper_sampled")
        if s:
            sizes = s.get("batches", {}).get("sizes")  # reports before the batches were kept: even batches
            per = (f"{sizes[0]} images" + (f", the last of {sizes[-1]}" if sizes[-1] != sizes[0] else "") if sizes
                   else f"{rep['n_test'] // max(s['clusters'], 1)} images")
            outside = [what for what, rs, exact in (("PGD", s, r["pgd_paper"]), ("clean", r["clean_sampled"], r["clean"]))
                       if not rs["ci95"][0] <= exact["acc"] <= rs["ci95"][1]]
            miss = (f" The exact {' and '.join(outside)} figure lies outside the replica's interval, which with "
                    f"{s['clusters']} draws covers less often than 95% (its definition)." if outside else "")
            out.append(f"{name}: the reference's sampled replica of the paper protocol ({s['clusters']} draws, one "
                       f"per {per}) gives {_pct(s)} against its exact "
                       f"expectation {_pct(r['pgd_paper'])}; clean {_pct(r['clean_sampled'])} against "
                       f"{_pct(r['clean'])}.{miss}")
    for other in ("fp", "fixed4"):
        worst = (f"; over precisions and every attack run: "
                 f"{_say(_diff(rep, 'rpt', 'worst_case_of_attacks', other, 'worst_case_of_attacks'))}"
                 if all("worst_case_of_attacks" in ms[k]["per_image"] for k in ("rpt", other)) else "")
        out.append(f"rpt minus {other}, RPI under the adaptive attack: {_say(_diff(rep, 'rpt', 'adaptive', other, 'adaptive'))}; "
                   f"worst case over precisions (EOT-PGD): "
                   f"{_say(_diff(rep, 'rpt', 'adaptive_worst_case', other, 'adaptive_worst_case'))}{worst}; "
                   f"clean RPI: {_say(_diff(rep, 'rpt', 'clean', other, 'clean'))}.")
    for name in ms:
        out.append(f"{name}: best of {_attacks(rep)} attacks minus EOT-PGD alone: "
                   f"{_say(_diff(rep, name, 'best_of_attacks', name, 'adaptive'))}.")
    for name in ms:
        out.append(f"{name}: transfer matrix over the RPI set, attack at the classifying precision (diagonal) minus "
                   f"attack at another precision (off-diagonal), per image: "
                   f"{_say(_diff(rep, name, 'transfer_diagonal', name, 'transfer_off_diagonal'))}.")
    for name in ms:
        out.append(_transfer_rows(name, ms[name]["transfer_matrix"]))
    aa = ms["rpt"]["rpi"].get("autoattack_rand")
    if aa:
        k = aa["n"]
        out.append(f"rpt, AutoAttack rand on the first {k} test images: original count {_pct(aa['original'])}, "
                   f"expected accuracy {_pct(aa['expected'])}; original minus expected: "
                   f"{_say(_diff(rep, 'rpt', 'autoattack_rand_original', 'rpt', 'autoattack_rand_expected', k))}; "
                   f"AutoAttack expected minus EOT-PGD expected on the same images: "
                   f"{_say(_diff(rep, 'rpt', 'autoattack_rand_expected', 'rpt', 'adaptive', k))}; "
                   f"original count minus EOT-PGD expected on the same images: "
                   f"{_say(_diff(rep, 'rpt', 'autoattack_rand_original', 'rpt', 'adaptive', k))}.")
    fp = ms["fp"]
    out.append(f"cost: RPI over {rep['rpi_set']} costs {_bitops_mean(fp, rep['rpi_set']) / 1e6:.1f} MBitOPs per image "
               f"against {fp['bitops']['per_precision']['fp'] / 1e6:.1f} at full precision.")
    out.append("What this run shows and does not: every figure is an accuracy on the same test images with a 95% "
               "interval over images; a difference counts only where its paired interval excludes 0. The "
               "adaptive and AutoAttack numbers are what a defender can claim against an attacker who knows the "
               "set; the paper protocol lets the attacker aim at a precision other than the one that classifies. "
               "A transfer-matrix row that is high off the diagonal says that attacks crafted at that precision "
               "transfer poorly; whether they are weak at their own precision is its diagonal entry against the "
               "rest of its column. This is a 28x28 MNIST subset, a small CNN "
               "trained for a few epochs, one seed: it exercises the whole workflow and compares the protocols; it "
               "says nothing about CIFAR/ImageNet or the paper's numbers.")
    return out


def _transfer_rows(name, tm) -> str:
    """The transfer matrix's highest row off the diagonal (the attack precision that transfers least) and,
    at that precision's inference, its own attack against the others (a fixed sentence once called the
    2-bit row gradient masking, where the 2-bit attack was the strongest at 2 bits)."""
    a, inf, acc = tm["attack_precisions"], tm["inference_precisions"], tm["acc"]
    off = {p: [acc[i][j] for j, q in enumerate(inf) if q != p] for i, p in enumerate(a)}
    mean = {p: sum(v) / len(v) for p, v in off.items() if v}
    w = max(mean, key=mean.get)
    text = (f"{name}: attacks crafted at {w} bits transfer least (mean accuracy {100 * mean[w]:.1f}% on the other "
            f"inference precisions; the other rows {100 * min(v for p, v in mean.items() if p != w):.1f}-"
            f"{100 * max(v for p, v in mean.items() if p != w):.1f}%)") if len(mean) > 1 else f"{name}: one row"
    if w in inf:
        j = inf.index(w)
        own, rest = acc[a.index(w)][j], [acc[i][j] for i, p in enumerate(a) if p != w]
        if rest:
            text += (f"; at {w}-bit inference the {w}-bit attack leaves {100 * own:.1f}%, the others "
                     f"{100 * min(rest):.1f}-{100 * max(rest):.1f}% (point estimates)")
    return text + "."


def table(rep) -> str:
    """The demo's text tables (per precision, RPI, transfer matrices), from the report alone."""
    lines = []
    ps = ["fp"] + [str(b) for b in rep["rpi_set"]]
    hdr = f"{'model':<8}{'metric':<22}" + "".join(f"{p:>13}" for p in ps)
    lines += [f"MNIST-5k, small CNN, ε={rep['epsilon']}, {rep['eval_attack']}, n={rep['n_test']} "
              f"(accuracy % ± 95% CI half-width)", hdr, "-" * len(hdr)]
    for name, m in rep["models"].items():
        for key, label in (("clean_acc", "clean"), ("pgd_acc", "PGD (same precision)")):
            row = f"{name:<8}{label:<22}"
            for p in ps:
                row += f"{_fmt(m[key][p]):>13}" if p in m[key] else f"{'-':>13}"
            lines.append(row)
        g = m["bitops"]["per_precision"]
        lines.append(f"{name:<8}{'MBitOPs/image':<22}" + "".join(
            f"{g[p] / 1e6:>13.1f}" if p in g else f"{'-':>13}" for p in ps))
    lines += ["", f"RPI over {rep['rpi_set']} bits (exact expectations over a uniform draw; 95% CI over images). "
              f"clean: mean of the per-precision clean accuracies; PGD paper: mean of the transfer matrix (attack "
              f"and inference precisions drawn independently); PGD adaptive: EOT-PGD over the set; best of {_attacks(rep)}: per "
              f"image the strongest of EOT-PGD and the {_attacks(rep) - 1} single-precision PGDs; worst EOT: EOT-PGD's images right at "
              f"every precision; worst all: right at every precision after every one of the {_attacks(rep)} attacks:",
              f"{'model':<8}{'clean':>14}{'PGD paper':>14}{'PGD adaptive':>14}{f'best of {_attacks(rep)}':>14}{'worst EOT':>14}"
              f"{'worst all':>14}{'MBitOPs':>10}"]
    for name, m in rep["models"].items():
        r = m["rpi"]
        lines.append(f"{name:<8}{_fmt(r['clean']):>14}{_fmt(r['pgd_paper']):>14}{_fmt(r['pgd_adaptive']):>14}"
                     f"{_fmt(r['best_of_attacks']):>14}{_fmt(r['pgd_adaptive_worst_case']):>14}"
                     f"{_or_dash(r.get('worst_case_of_attacks'), _fmt):>14}{_bitops_mean(m, rep['rpi_set']) / 1e6:>10.1f}")
    aa = rep["models"]["rpt"]["rpi"].get("autoattack_rand")
    if aa:
        lines += ["", f"AutoAttack rand on rpt (APGD-CE + APGD-DLR, {aa['steps']} steps, {aa['eot_iter']} EOT samples; "
                  f"first {aa['n']} test images): original count {_pct(aa['original'])}, expected accuracy "
                  f"{_pct(aa['expected'])}"]
    for name in rep["models"]:
        tm = rep["models"][name]["transfer_matrix"]
        lines += ["", f"transfer matrix {name} (rows: attack bits, cols: inference bits), robust acc. %, "
                  f"ε={tm['epsilon']:g}:", "      " + "".join(f"{p:>7}" for p in tm["inference_precisions"])]
        for p, row in zip(tm["attack_precisions"], tm["acc"]):
            lines.append(f"{p:>6}" + "".join(f"{100 * v:7.1f}" for v in row))
    return "\n".join(lines)


def markdown_rows(rep) -> str:
    """The README's demo table (markdown), from the report alone."""
    ps = rep["rpi_set"]
    lines = [f"| model | clean RPI | PGD, paper protocol | PGD, adaptive (EOT) | best of {_attacks(rep)} attacks | "
             f"worst case over precisions, EOT-PGD | worst case over precisions, all {_attacks(rep)} attacks | "
             "MBitOPs/image |", "|---|---|---|---|---|---|---|---|"]
    for name, m in rep["models"].items():
        r = m["rpi"]
        lines.append(f"| {name} | {_pct(r['clean'])} | {_pct(r['pgd_paper'])} | {_pct(r['pgd_adaptive'])} | "
                     f"{_pct(r['best_of_attacks'])} | {_pct(r['pgd_adaptive_worst_case'])} | "
                     f"{_or_dash(r.get('worst_case_of_attacks'), _pct)} | {_bitops_mean(m, ps) / 1e6:.1f} |")
    aa = rep["models"]["rpt"]["rpi"].get("autoattack_rand")
    if aa:
        k = aa["n"]
        same = rep["models"]["rpt"]["per_image"]["adaptive"][:k]
        lines += ["", "| model (first {} test images) | AutoAttack rand, original count | AutoAttack rand, expected | "
                  "PGD, adaptive (EOT), same images |".format(k), "|---|---|---|---|",
                  f"| rpt | {_pct(aa['original'])} | {_pct(aa['expected'])} | {_pct(_mean(same, len(ps)))} |"]
    return "\n".join(lines)


def deploy_summary(rep) -> str:
    """The integer-vs-fake-quant agreement and latency of the RPT model (``dwq.deploy``), from the report."""
    from dwq.deploy import format_check

    d = rep["models"]["rpt"].get("deploy")
    return format_check(d, "rpt as a true-integer model (dwq.deploy)") if d else "(no deploy check in this report)"


def _mean(scores, precisions: int):
    import torch

    from dwq.eval import mean_ci

    return mean_ci(torch.tensor(scores), precisions)


def _attacks(rep) -> int:
    """The attacks of "best of": EOT-PGD and a PGD at each precision of the report's RPI set."""
    return len(rep["rpi_set"]) + 1


def reprint(argv) -> int:
    """``python -m dwq.cli.demo REPORT``: print the tables, findings, deploy check and README rows of
    a past run from its report.json; a file that is missing, unreadable or not a demo report is one
    line on stderr and exit status 2 (as the ``dwq`` commands do)."""
    import json
    import sys

    prog = "python -m dwq.cli.demo"
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(f"usage: {prog} REPORT_JSON  (reprints the tables, findings and README rows of a dwq demo "
              f"run's report.json)", file=sys.stdout if argv in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv in (["-h"], ["--help"]) else 2
    path = argv[0]
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        print(f"{prog}: error: cannot read {path}: {why}", file=sys.stderr)
        return 2
    need = ("rpi_set", "n_test", "models")
    if not (isinstance(rep, dict) and all(k in rep for k in need) and set(rep["models"]) >= {"fp", "fixed4", "rpt"}):
        print(f"{prog}: error: {path} is not a report.json of dwq demo (it needs {', '.join(need)} and the models "
              f"fp, fixed4, rpt)", file=sys.stderr)
        return 2
    try:  # (composed before anything is printed: a malformed report prints one line, no half table)
        text = (table(rep) + "\n\n" + "\n".join(findings(rep)) + "\n\n" + deploy_summary(rep) + "\n\n"
                + markdown_rows(rep))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        what = f"no field {e.args[0]!r}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        print(f"{prog}: error: {path} is not a complete report.json of dwq demo ({what})", file=sys.stderr)
        return 2
    try:
        print(text, flush=True)
    except BrokenPipeError:  # (python -m dwq.cli.demo REPORT | head -1)
        from .common import stdout_to_devnull
        stdout_to_devnull()
        return 1
    return 0


if __name__ == "__main__":  # regenerate the tables of a past run: python -m dwq.cli.demo runs/demo-.../report.json
    import sys

    sys.exit(reprint(sys.argv[1:]))

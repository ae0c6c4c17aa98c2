"""One evaluation of a model: every protocol's figures from one run of each attack.

:func:`evaluate` runs the attacks once -- the chosen attack at each precision (the transferability
matrix, classified at every precision), EOT-PGD over the RPI set, AutoAttack ``rand`` when asked --
and derives every figure from those runs: per-precision robust accuracy is the matrix's diagonal,
the paper protocol is the mean of its RPI block (and its sampled replica reads the same cells), the
best of attacks combines the same per-image outcomes. :func:`write_report` saves the result.
"""
from __future__ import annotations

import functools
import hashlib
import os
import time
from typing import Callable, Optional, Sequence

import torch

from dwq._index import index_or_none
from dwq.eval.attacks import CW_ATTACKS, REFERENCE_CW_STEPS, make_attack
from dwq.eval.checks import check_evaluation
from dwq.eval.protocols import (DEFINITIONS, adaptive_protocol, autoattack_rpi, clean_accuracy,
                                matrix_diagonal, paper_protocol, robust_accuracy, rpi_best_of_attacks,
                                rpi_clean, rpi_worst_case_of_attacks, transfer_matrix)
from dwq.eval.report import pname, save_heatmap, save_json
from dwq.eval.stages import StageStore, evaluation_identity
from dwq.nn import kept_modes
from dwq.quant import reuse_quantized_weights
from dwq.quant.precision import precision_list
from dwq.quant.cost import bitops_summary

__all__ = ["PROTOCOLS", "evaluate", "write_report"]

PROTOCOLS = ("paper", "paper-sampled", "adaptive", "transfer", "autoattack-rand", "autoattack-standard")

Progress = Callable[[str, int, int], None]


def _scores(t: torch.Tensor) -> list:
    # 7 decimals: a score k/P of any set keeps what its figure was computed from (4 decimals moved
    # thirds by 3e-5), and fifths still print as 0.2, 0.4, ... (float32 noise sits at the 8th)
    return [round(v, 7) for v in t.float().tolist()]


def _int_scalar_tensor(v) -> bool:
    # torch.tensor(3) passes the count checks (operator.index takes it) but stayed a tensor: a seed failed in
    # the adaptive stage, a count at json.dump after the whole evaluation, and stage identities read "tensor(3)"
    return isinstance(v, torch.Tensor) and index_or_none(v) is not None


def _evaluate(model, x, y, precisions: Sequence, *, rpi_precisions: Optional[Sequence] = None, attack: str = "pgd",
             epsilon: float, alpha: float = 2 / 255, steps: int = 20, restarts: int = 1,
             protocols: Sequence[str] = ("paper", "adaptive", "transfer"), seed: int = 0, batch_size: int = 250,
             paper_batch: int = 100, num_classes: Optional[int] = None, cw_tau: float = 0.05,
             cw_steps: int = REFERENCE_CW_STEPS, bandits_queries: int = 1000, bandits_tile: int = 4,
             autoattack_n: Optional[int] = None, autoattack_steps: int = 100, eot_iter: int = 20, input_size=None,
             per_image: bool = True, pgd_options: Optional[dict] = None, progress: Optional[Progress] = None,
             stage_dir: Optional[str] = None) -> dict:
    """Evaluate ``model`` (in eval mode; its modes are restored afterwards) on images ``x`` (float
    [N, C, H, W] in [0, 1]) with labels ``y`` (int64 [N], class indices of the model's outputs), all on
    the model's device; returns the report as a JSON-ready dict. Every argument is checked before the
    first attack (ValueError naming it).

    precisions: where clean and per-precision robust accuracy are measured (and the transfer
      matrix's rows/columns); rpi_precisions: the RPI set (default ``precisions``; a subset of it).
    attack, epsilon, alpha, steps, restarts, cw_tau, cw_steps, bandits_*: the attack (see
      :func:`dwq.eval.make_attack`); EOT-PGD of the adaptive protocol uses epsilon/alpha/steps/restarts.
    batch_size: images per forward, attacks and classifications alike.
    protocols: any of ``PROTOCOLS``. ``paper``, ``paper-sampled`` and ``transfer`` share one
      transfer-matrix run; ``paper-sampled`` adds the reference's one-draw-per-batch replica
      (``paper_batch`` images per batch) read from it.
    autoattack_n / autoattack_steps / eot_iter: AutoAttack ``rand`` on the first ``autoattack_n``
      images (default all) with the original's 100 steps and 20 EOT samples.
    num_classes: the data's number of classes, which must be the model's number of outputs (a
      100-output model on a 10-class set is refused, not scored); default: the model's. AutoAttack
      ``standard``'s targeted attacks take the 9 most likely other classes, as the original (all the
      others with fewer than 10 classes).
    input_size: ``(C, H, W)`` for the BitOPs summary (omitted when None), counted before the first
      attack; for a :class:`dwq.deploy.StraightThrough` on the layers of its fake-quant twin.
    per_image: keep the per-image scores behind the RPI figures (``report["per_image"]``), so that
      paired differences can be computed from the report alone.
    pgd_options: extra options of the chosen PGD attack (``attack="pgd"`` only), e.g.
      ``dwq.eval.REFERENCE_PGD``: the reference's per-sample early stop (EOT-PGD is not affected).
    progress: ``progress(stage, done, total)`` before each attack run.
    stage_dir: a folder where each finished stage (clean accuracy, each attack precision, EOT-PGD,
      AutoAttack), and each finished batch of the stage in progress, is saved (:mod:`dwq.eval.stages`);
      given again to the same evaluation (model state, images, settings) after an interruption, they
      are read back, not run: the report is the uninterrupted one's. One made for another evaluation
      is refused (``StageDirError``).
    seed: seeds every random draw of the evaluation, each from a private generator: the chosen
      attack's (PGD's random starts, Bandits' noise; one stream derived from ``seed``, restarted at
      each attack precision), EOT-PGD's starts, the paper replica's and AutoAttack's draws. The
      report depends on ``seed``, not on torch's global RNG.
    """
    if isinstance(protocols, str):  # taken apart: "unknown protocol(s) ['p', 'a', 'p', 'e', 'r']"
        raise ValueError(f"protocols must be a list such as ['paper', 'adaptive'], got {protocols!r}")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {PROTOCOLS}")
    # numpy scalars as Python ones (a seed from np.arange, a float32 epsilon): the report kept them as given,
    # json.dump failed after the whole evaluation, and a stage identity recorded "np.int64(3)"
    (epsilon, alpha, steps, restarts, seed, batch_size, paper_batch, num_classes, cw_tau, cw_steps, bandits_queries,
     bandits_tile, autoattack_n, autoattack_steps, eot_iter) = (
        v.item() if (type(v).__module__ == "numpy" and hasattr(v, "item")) or _int_scalar_tensor(v) else v
        for v in (epsilon, alpha, steps, restarts, seed, batch_size, paper_batch, num_classes, cw_tau, cw_steps,
                  bandits_queries, bandits_tile, autoattack_n, autoattack_steps, eot_iter))
    # lists first: a generator was used up by the checks, a string taken apart
    precisions = precision_list(precisions, "precisions")
    rset = precision_list(rpi_precisions, "rpi_precisions") if rpi_precisions is not None else precisions
    model.eval()
    num_classes = check_evaluation(model, x, y, precisions, rset, protocols=protocols, epsilon=epsilon, alpha=alpha,
                                   steps=steps, restarts=restarts, batch_size=batch_size, paper_batch=paper_batch,
                                   autoattack_n=autoattack_n, autoattack_steps=autoattack_steps, eot_iter=eot_iter,
                                   seed=seed, attack=attack, num_classes=num_classes, pgd_options=pgd_options)
    names = [pname(p) for p in precisions]
    missing = [pname(p) for p in rset if pname(p) not in names]
    if missing:
        raise ValueError(f"RPI precision(s) {missing} are not among the evaluated precisions {names}")
    idx = [names.index(pname(p)) for p in rset]
    cost = None
    if input_size is not None:  # now, not after hours of attacks: an integer model or a wrong size is refused here
        from dwq.deploy.straight_through import StraightThrough

        # an integer model's cost is counted on the fake-quant layers it was converted from
        cost = bitops_summary(model.twin if isinstance(model, StraightThrough) else model, input_size, precisions)
        cost["rpi_mean"] = sum(cost["per_precision"][pname(p)] for p in rset) / len(rset)
    # (before the stage folder: an unknown attack or option left one that refused the corrected call)
    # The chosen attack draws from its own stream, restarted at each attack precision: the figures
    # depend on the seed alone (not on torch's global RNG, nor on which protocols run), and every
    # precision is attacked from the same random starts, so differences between them are paired.
    g = torch.Generator()
    atk = make_attack(attack, epsilon=epsilon, alpha=alpha, steps=steps, restarts=restarts, cw_tau=cw_tau,
                      cw_steps=cw_steps, bandits_queries=bandits_queries, bandits_tile=bandits_tile,
                      num_classes=num_classes, generator=g, seed=seed, **(pgd_options or {}))
    store = StageStore(None)
    if stage_dir is not None:
        # Not the protocols, nor paper_batch: no stage depends on which protocols run (the paper figures
        # are read from the matrix's stages), so a resume may reorder them or add one; nor AutoAttack-rand's
        # settings, which its stage's name holds (a resume may add it with settings of its own)
        pgd_runs = attack == "pgd" or "adaptive" in protocols
        settings = dict(precisions=names, rpi_precisions=[pname(p) for p in rset], attack=attack, epsilon=epsilon,
                        # (None: no stage of this run uses them; a resume may then add the adaptive protocol)
                        alpha=alpha if pgd_runs else None, steps=steps if pgd_runs else None,
                        restarts=restarts if pgd_runs else None, seed=seed,
                        batch_size=batch_size, num_classes=num_classes, cw_tau=cw_tau,
                        # (None where no CW attack runs: a resume then need not repeat it)
                        cw_steps=cw_steps if attack in CW_ATTACKS else None,
                        bandits_queries=bandits_queries, bandits_tile=bandits_tile, pgd_options=pgd_options,
                        # the figures depend on it (another machine's float kernels): resumed on the CPU, a
                        # CUDA evaluation's report mixed both, under the one device it records
                        device=y.device.type)
        store = StageStore(stage_dir, evaluation_identity(model, x, y, settings), device=y.device)
    attack_seed = _stream_seed(seed, "attack")
    need_matrix = any(p in protocols for p in ("paper", "paper-sampled", "transfer"))
    n_aa = min(autoattack_n or len(y), len(y))
    aa_stage = f"autoattack-rand by component, n {n_aa}, steps {autoattack_steps}, eot {eot_iter}"
    if "autoattack-rand" in protocols:
        store.refuse_others(aa_stage, "autoattack-rand by component",
                            "--autoattack-n, --autoattack-steps and --eot-iter (autoattack_n, autoattack_steps, eot_iter)")
    stages = (["clean"] + [f"{attack} at {n}" for n in names] + (["adaptive"] if "adaptive" in protocols else [])
              + (["autoattack-rand"] if "autoattack-rand" in protocols else [])
              + ([f"autoattack-standard at {pname(p)}" for p in rset]
                 if "autoattack-standard" in protocols and attack != "autoattack" else []))
    done = [0]

    def tick(stage):
        if progress is not None:
            progress(stage, done[0], len(stages))
        done[0] += 1

    t0 = time.time()
    # PGD's settings only where a PGD ran (the chosen attack or the adaptive EOT-PGD): an FGSM report
    # recorded "steps": 20, which read as a PGD-20 run
    pgd_settings = (dict(alpha=alpha, steps=steps, restarts=restarts)
                    if attack == "pgd" or "adaptive" in protocols else {})
    rep = {"attack": attack, "epsilon": epsilon, **pgd_settings,
           "seed": seed, "protocols": list(protocols), "n": len(y), "precisions": names,
           "rpi_precisions": [pname(p) for p in rset], "batch_size": batch_size}
    if pgd_options:
        rep["pgd_options"] = dict(pgd_options)
    if attack == "cw-linf":
        rep["cw_tau"] = cw_tau
    if attack in CW_ATTACKS:
        rep["cw_steps"] = cw_steps
    if attack == "bandits":
        rep.update(bandits_queries=bandits_queries, bandits_tile=bandits_tile)
    if attack == "cw-l2":  # the report's epsilon must not read as this attack's bound
        rep["cw_l2_bound"] = ("none: unbounded L2, minimal distortion; epsilon bounds only the adaptive and "
                              "AutoAttack protocols")
    scores = {}
    tick("clean")
    # every forward in batches of batch_size (the classifications ran 500 at a time: out of memory where
    # a large model's attack fit)
    rep["clean_acc"], clean_c = store.run("clean", lambda: clean_accuracy(model, x, y, precisions, batch_size,
                                                                         return_correct=True))
    rpi = {"set": rep["rpi_precisions"], "clean": rpi_clean(clean_c[idx])}
    scores["clean"] = clean_c[idx].float().mean(0)
    if need_matrix:
        # one attack run per precision, classified at every precision; every dependent figure reads it
        def on_row(p):
            tick(f"{attack} at {pname(p)}")
            g.manual_seed(attack_seed)

        tm, tm_c = transfer_matrix(model, x, y, precisions, atk, batch_size, return_correct=True, on_row=on_row,
                                   row=lambda p, compute: store.run(f"{attack} at {pname(p)}", compute, [g]))
        tm.update(attack=attack, **(pgd_settings if attack == "pgd" else {}), seed=seed)
        if attack != "cw-l2":  # (the heatmap's title names the matrix's epsilon)
            tm["epsilon"] = epsilon
        rep[f"{attack}_acc"] = matrix_diagonal(tm)
        block = tm_c[idx][:, idx]  # the RPI set's attack x inference block
        pp = paper_protocol(block, clean_c[idx], seed=seed,
                            sampled_batch=paper_batch if "paper-sampled" in protocols else None)
        if "paper" in protocols or "paper-sampled" in protocols:
            rpi[f"{attack}_paper"] = pp["robust"]
            scores["paper"] = block.float().mean((0, 1))
        if "paper-sampled" in protocols:
            rpi[f"{attack}_paper_sampled"], rpi["clean_sampled"] = pp["robust_sampled"], pp["clean_sampled"]
        if "transfer" in protocols:
            rep["transfer_matrix"] = tm
            k = len(rset)
            if k > 1:  # per image: attack at the classifying precision vs at another one
                eye = torch.eye(k, dtype=torch.bool)
                scores["transfer_diagonal"] = block[eye].float().mean(0)
                scores["transfer_off_diagonal"] = block[~eye].float().mean(0)
    else:
        rep[f"{attack}_acc"] = {}
        for p in precisions:
            tick(f"{attack} at {pname(p)}")
            g.manual_seed(attack_seed)
            rep[f"{attack}_acc"].update(store.run(f"{attack} at {pname(p)}, diagonal",
                                                  lambda p=p: robust_accuracy(model, x, y, [p], atk, batch_size), [g]))
    if "adaptive" in protocols:
        tick("adaptive")
        ad, ad_c = store.run("adaptive", lambda: adaptive_protocol(model, x, y, rset, epsilon, alpha, steps, restarts,
                                                                   batch_size, seed, return_correct=True))
        rpi["pgd_adaptive"] = ad["expected"]
        rpi["pgd_adaptive_worst_case"] = ad["worst_case"]
        rpi["pgd_adaptive_per_precision"] = ad["per_precision"]
        scores["adaptive"] = ad_c.float().mean(0)
        scores["adaptive_worst_case"] = ad_c.all(0).float()
        if need_matrix and attack != "cw-l2":  # (unbounded L2 images are outside the L-inf ball EOT-PGD keeps to)
            rpi["best_of_attacks"], scores["best_of_attacks"] = rpi_best_of_attacks([ad_c, block], return_scores=True)
            rpi["worst_case_of_attacks"], scores["worst_case_of_attacks"] = rpi_worst_case_of_attacks(
                [ad_c, block], return_scores=True)
    if "autoattack-rand" in protocols:
        tick("autoattack-rand")
        # (its own name since its batches are saved per component: a folder of an earlier dwq holds whole
        # batches under "autoattack-rand", which would read as components)
        aa, aa_c = store.run(
            aa_stage,
            lambda: autoattack_rpi(model, x[:n_aa], y[:n_aa], rset, epsilon, seed=seed, batch_size=batch_size,
                                   steps=autoattack_steps, eot_iter=eot_iter, return_correct=True))
        rpi["autoattack_rand"] = aa
        scores["autoattack_rand_original"] = aa_c["original"].float()
        scores["autoattack_rand_expected"] = aa_c["expected"]
    if "autoattack-standard" in protocols and attack == "autoattack":
        # the same attack (AutoAttack standard, seeded by seed alone) at each precision already ran as the
        # chosen attack: its diagonal is this protocol's figure; running it again doubled the costliest stage
        rpi["autoattack_standard_per_precision"] = {pname(p): rep["autoattack_acc"][pname(p)] for p in rset}
    elif "autoattack-standard" in protocols:
        aas = make_attack("autoattack", epsilon=epsilon, num_classes=num_classes, seed=seed)
        per = {}
        for p in rset:
            tick(f"autoattack-standard at {pname(p)}")
            per.update(store.run(f"autoattack-standard at {pname(p)}",
                                 lambda p=p: robust_accuracy(model, x, y, [p], aas, batch_size)))
        rpi["autoattack_standard_per_precision"] = per
    rep["rpi"] = rpi
    if store.read_back or store.batches_read_back:  # its timings are then this process's alone
        rep["resumed"] = {"stages_read_back": store.read_back, "batches_read_back": store.batches_read_back}
    rep["definitions"] = {k: v for k, v in DEFINITIONS.items() if _reported(k, rpi)}
    if cost is not None:
        rep["bitops"] = cost
    if per_image:
        rep["per_image"] = {k: _scores(v) for k, v in scores.items()}
    rep["seconds"] = time.time() - t0
    return rep


@functools.wraps(_evaluate)
def evaluate(model, x, y, precisions, **kw):
    # Evaluation switches the model to eval mode; a caller between training epochs gets its modes
    # back (a training model was left in eval mode: frozen BN statistics for the rest of training).
    # The weights do not change during an evaluation: each layer quantizes them once per width.
    with kept_modes(model), reuse_quantized_weights(model):
        return _evaluate(model, x, y, precisions, **kw)


def _stream_seed(seed: int, name: str) -> int:
    """A seed for the stream ``name``, derived from ``seed``: distinct streams are independent of
    each other. The adaptive protocol's EOT-PGD starts, the paper replica's draws and AutoAttack's
    per-image RPI seed their own generators with ``seed`` itself, so their streams coincide; each
    figure reads one of them only (best-of-attacks pairs EOT-PGD with the attack stream), and
    deriving them now would change every kept report's figures."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 0..2^63 - 1, what manual_seed takes


def _reported(key: str, rpi: dict) -> bool:
    if key in ("clean", "best_of_attacks", "worst_case_of_attacks"):
        return key in rpi
    if key.startswith("autoattack_rand"):
        return "autoattack_rand" in rpi
    if key.startswith("adaptive"):
        return "pgd_adaptive" in rpi
    if key == "paper_sampled":
        return "clean_sampled" in rpi
    return any(k.endswith("_paper") for k in rpi)


def write_report(rep: dict, out: str, heatmap_title: Optional[str] = None) -> None:
    """Write ``report.json`` (and ``transfer.json`` + ``transfer.png`` when the report holds a
    transfer matrix) into the folder ``out``. report.json comes last: a folder holding it holds the
    whole report (``dwq eval --resume`` refuses one as finished; written first, a kill during the
    heatmap left a finished-looking folder without transfer.png, which no command would then write).
    The folder is made if it does not exist."""
    os.makedirs(out, exist_ok=True)
    if "transfer_matrix" in rep:
        tm = rep["transfer_matrix"]
        save_json(tm, os.path.join(out, "transfer.json"))
        save_heatmap(tm, os.path.join(out, "transfer.png"),
                     heatmap_title or f"{rep.get('network', 'model')}: {rep['attack']} robust accuracy (%)")
    save_json(rep, os.path.join(out, "report.json"))

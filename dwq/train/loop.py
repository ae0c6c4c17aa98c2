"""Adversarial training with Random Precision Training (RPT).

One loop covers the reference's recipes:

* ``attack``: ``pgd`` (PGD-k, random start), ``fgsm`` (no random start),
  ``fgsm-rs`` ("fast": random start, step 1.25ε by default), ``free`` (each
  minibatch replayed ``free_replays`` times, the perturbation carried over and
  the precision resampled at every replay, as the reference's ImageNet code),
  ``none`` (natural training).
* precision: with ``random_precision`` a precision is drawn from ``precisions``
  at *every iteration* and used both to craft the attack and to update the
  model (switchable BN picks that precision's branch); otherwise the single
  precision in ``precisions`` is used (fixed-precision or full-precision
  baseline with the same code).

As in the reference, the model stays in train mode while the attack is
crafted (BN uses batch statistics): a PGD-k iteration makes k + 1 train-mode
forwards (k attack steps and the update), each updating the BN statistics and
activation ranges of the drawn precision, as the reference's loop.

``reference=True`` selects the reference code's semantics where dwq's default
differs on purpose (docs/workflow.md has the map): gradients of parameters unused
in an iteration are zeroed, not dropped, so SGD momentum and weight decay move
every BN branch drawn before; float32 only; the reference's quantizer is required
of the model (``dwq.models.build_model(..., reference=True)``); and the extra
checkpoint ``best_test_reference.pt`` is chosen by the reference's rule (test-set
PGD-20 at the lowest training precision) when a ``test_set`` is given. It never
replaces ``best.pt``, which is chosen on the validation split.

Precision draws come from a seeded CPU ``torch.Generator`` identical on every DDP
rank (all ranks train the same precision each step); random starts from a second,
per-rank generator, which ``last.pt`` keeps per rank. Data order is a seeded permutation per
epoch; under DDP each global batch is split between ranks (a share one image short weighs its
mean loss by its size; the epoch's loss and accuracy are summed over the ranks), but batch norm
and the train-mode activation ranges see each rank's share only, and the buffers kept are rank
0's: a DDP run is not the single-process run (docs/workflow.md). An augmented image is drawn with torch's RNG seeded by
(seed, epoch, index), whatever the number of loader workers.

The pieces the :class:`Trainer` uses live beside it: :mod:`~dwq.train.config` (the settings and the
LR schedule), :mod:`~dwq.train.batches` (data order, seeded items, the loader),
:mod:`~dwq.train.validation` (clean and PGD accuracy), :mod:`~dwq.train.reference` (the reference's
defaults and checks) and :mod:`~dwq.train.run_folder` (what the run's folder holds, checked on resume).
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import secrets
import time
import warnings
from dataclasses import asdict
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dwq._atomic import atomic_open
from dwq._errors import first_line
from dwq.attacks import fgsm, fgsm_rs, pgd
from dwq.attacks.core import check_images
from dwq.nn import kept_modes, precision, precision_set, set_precision
from dwq.nn.sbn import mark_trained
from dwq.ops.fake_quant import inductor_exact_division
from dwq.quant import normalize_set, precision_name, reuse_quantized_weights, user_precision
from dwq.quant.untrained import untrained_quiet

from .batches import BatchLoader, collate, dataset_labels, epoch_batches, rank_batches
from .checkpoint import (CheckpointError, _state_dict_mismatch, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state, with_digests)
from .config import RESUME_MAY_CHANGE, SCHEDULES, TRAIN_ATTACKS, ZERO_GRAD, TrainConfig, jsonable, lr_lambda
from .determinism import deterministic
from .dist import active as dist_active
from .dist import barrier
from .graphs import AttackGraphs
from .reference import check_reference_quantizers, lowest_precision
from .run_folder import (REFERENCE_SELECT_CKPT, RUN_FILES, RunFolder, check_fresh_run_folder, check_run_checkpoint,
                         read_metrics)
from .validation import evaluate_clean_pgd

# The trainer, and (importable from here as before the split into config, batches, validation,
# reference and run_folder) the names it is used with.
__all__ = ["Trainer", "TrainConfig", "TRAIN_ATTACKS", "SCHEDULES", "ZERO_GRAD", "RESUME_MAY_CHANGE",
           "REFERENCE_SELECT_CKPT", "RUN_FILES", "lr_lambda", "epoch_batches", "evaluate_clean_pgd",
           "check_reference_quantizers", "lowest_precision", "check_run_checkpoint"]


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``model`` on ``train_set``; writes into ``out_dir``:
    ``last.pt`` (every epoch, atomic), ``best.pt`` (best validation PGD accuracy),
    ``metrics.jsonl`` (one JSON object per epoch) and ``config.json``.

    ``val_set``: held-out part of the training data (see dwq.data.train_val_split),
    never the test set. ``test_set``: only for ``cfg.test_select`` (the reference's
    rule, written to ``best_test_reference.pt`` for comparison with the paper: a
    checkpoint chosen on the test set overstates its test accuracy). Under DDP only
    rank 0 writes.
    ``on_epoch(record)``: called after each epoch with the record written to metrics.jsonl (console).
    After ``fit`` the model is left as training left it: train mode, at the last drawn precision.

    Precisions are written in dwq's one spelling ('fp', '4', '4w8a') in config.json, metrics.jsonl
    and checkpoints; ``precision_counts`` counts the draws (one per update; free training: one per
    replay) of the whole run, metrics.jsonl those of each epoch.
    """

    def __init__(self, model: nn.Module, train_set, cfg: TrainConfig, out_dir: str, val_set=None,
                 device="cpu", num_workers=0, rank=0, world=1,
                 on_epoch: Optional[Callable[[dict], None]] = None, test_set=None):
        self.cfg = cfg = copy.copy(cfg).validate()  # validate() fills in defaults: the caller's config stays as given
        if cfg.reference:
            check_reference_quantizers(model)
        if cfg.test_select and (test_set is None or len(test_set) == 0):  # (empty: a ZeroDivisionError after epoch 1)
            raise ValueError("test_select=True (the reference's test-set checkpoint) needs a test_set with images; "
                             f"{'got an empty one' if test_set is not None else 'pass the test set'} or set "
                             f"test_select=False")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (rank, world)) or not 0 <= rank < world:
            # (rank=1 of world=1 trained on a shrunken share of every batch and wrote nothing, without a word)
            raise ValueError(f"rank must be an int in 0..world-1 and world an int >= 1, got rank={rank!r}, "
                             f"world={world!r}")
        self.device = torch.device(device)
        if cfg.amp and self.device.type != "cuda":
            raise ValueError(f"amp (float16 autocast) works on CUDA only, not on {self.device}")
        if cfg.cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs (the attack replayed from CUDA graphs) works on CUDA only, not on "
                             f"{self.device}")
        self.model = model.to(self.device)
        self.model_set = precision_set(self.model)
        self.precs = ([user_precision(p) for p in normalize_set(cfg.precisions)]
                      if cfg.precisions is not None else list(self.model_set))
        if cfg.precisions is None and not cfg.random_precision and len(self.precs) != 1:
            # (a given list validate() checked) precisions=None means the model's whole set: training
            # would use its first entry only while validation (and so best.pt) averaged over all of them.
            raise ValueError(f"without random precision training give exactly one training precision; "
                             f"precisions=None means the model's whole set {[precision_name(p) for p in self.precs]}")
        self.on_epoch = on_epoch
        for p in self.precs:  # error early, never silently fall back
            with precision(self.model, p):
                pass
        self.train_set, self.val_set, self.test_set = train_set, val_set, test_set
        self._check_labels()
        self.out_dir, self.rank, self.world = out_dir, rank, world
        self.num_workers = num_workers
        # precision draws: the same sequence on every rank; random starts: per rank
        self.pgen = torch.Generator().manual_seed(cfg.seed)
        # modulo 2^64 (what manual_seed takes): any seed up to 2^63 - 1 works, smaller ones keep their stream
        self.gen = torch.Generator().manual_seed((cfg.seed * 1000003 + 7919 * (rank + 1)) % (1 << 64))
        torch.manual_seed(cfg.seed)
        # numpy's and Python's too, whose states the checkpoints keep: unseeded, two runs of one command
        # wrote different last.pt digests (and a user's numpy augmentation drew differently)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        self.steps_per_epoch = len(epoch_batches(len(train_set), cfg.batch_size, cfg.seed, 0, rank, world))
        if self.steps_per_epoch == 0:
            raise ValueError(f"no training step in an epoch: {len(train_set)} training images, batch_size "
                             f"{cfg.batch_size}, {world} process{'es' if world > 1 else ''} (every process needs at "
                             f"least one image of each global batch)")
        replays = cfg.free_replays if cfg.attack == "free" else 1
        self.total_steps = self.steps_per_epoch * cfg.epochs * replays
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg, self.total_steps))
        self.use_amp = cfg.amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ddp = None
        if world > 1 or dist_active():  # torchrun with one process runs DDP too (dwq.train.dist)
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=len(self.model_set) > 1)
        self._net, self._attack_net = (self.ddp if self.ddp is not None else self.model), self.model
        if cfg.compile:
            self._compile()
        self._graphs = AttackGraphs(self.model, cfg.epsilon, cfg.alpha, cfg.attack_iters, self.gen,
                                    self._autocast_device if self.use_amp else None) if cfg.cuda_graphs else None
        self.epoch = 0
        self.step = 0
        self.best = -1.0
        self.best_test = -1.0  # the reference's test-set rule; the first epoch always writes its checkpoint
        self.precision_counts = {precision_name(p): 0 for p in self.precs}
        self.free_delta = None
        self.lr_used = cfg.lr  # learning rate of the last update
        # Names the run in config.json and every checkpoint, so that a resume can tell a last.pt of
        # another run put in out_dir (check_run_checkpoint); load_state takes the checkpoint's.
        # secrets, not random: the RNG states are part of the run.
        self.run_id = secrets.token_hex(8)
        self._continuing = False  # set by restore() and by fit(): out_dir then holds this run's files
        self._stopped_at = None  # the step where fit(stop_after_steps) left an epoch unfinished

    # -- checkpoint -------------------------------------------------------------------
    def _own_state(self) -> dict:
        return {"rng": rng_state(self.gen),
                "free_delta": self.free_delta.cpu() if self.free_delta is not None else torch.zeros(0)}

    def rank_states(self) -> list:
        """Each rank's own RNG states (its random-start generator included) and free-training
        perturbation, in rank order. Under DDP a collective: every rank must call it."""
        mine = self._own_state()
        if self.world == 1:
            return [mine]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, mine)
        return out

    def state(self, ranks: Optional[list] = None):
        """The checkpoint. ``ranks``: :meth:`rank_states` (this process's alone when not given), kept
        as ``rank_states`` when there are several, so that a DDP resume gives each rank its own back;
        ``rng`` and ``free_delta`` are rank 0's."""
        ranks = ranks if ranks is not None else [self._own_state()]
        st = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
              "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
              "epoch": self.epoch, "step": self.step, "best": self.best, "best_test": self.best_test,
              "precision_counts": dict(self.precision_counts),
              "free_delta": ranks[0]["free_delta"], "rng": ranks[0]["rng"],
              "precision_rng": self.pgen.get_state(), "config": self.config_record(),
              "precision_set": [precision_name(p) for p in self.model_set],
              "grad_defined": [i for i, p in enumerate(self._opt_params()) if p.grad is not None],
              "train_images": len(self.train_set), "threads": torch.get_num_threads()}
        if len(ranks) > 1:
            st["rank_states"] = ranks
        return st

    def config_record(self) -> dict:
        """config.json (also each checkpoint's ``config``): the TrainConfig as JSON, with
        ``precisions`` resolved to the training set in dwq's one spelling, and ``run_id``."""
        rec = jsonable(asdict(self.cfg))
        rec["precisions"] = [precision_name(p) for p in self.precs]
        rec["run_id"] = self.run_id
        return rec

    def load_state(self, ck):
        try:
            self.model.load_state_dict(ck["model"])
        except RuntimeError as e:  # (torch's message spans many lines, the first naming nothing)
            why = _state_dict_mismatch(self.model.state_dict(), ck["model"]) or first_line(e)
            raise CheckpointError(f"the checkpoint's weights do not fit this Trainer's model: {why}") from None
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        # The optimizer holds the LR of the schedule it was saved with; a resume that stretches the
        # schedule (more epochs) must take the new one's at this step from the first update on.
        for g, base, f in zip(self.opt.param_groups, self.sched.base_lrs, self.sched.lr_lambdas):
            g["lr"] = base * f(self.sched.last_epoch)
        self.scaler.load_state_dict(ck["scaler"])
        self.epoch, self.step, self.best = ck["epoch"], ck["step"], ck["best"]
        self.best_test = ck.get("best_test", -1.0)
        self.precision_counts = dict(ck["precision_counts"])
        saved = ck.get("rank_states") or [{"rng": ck["rng"], "free_delta": ck["free_delta"]}]
        if len(saved) != self.world and self.rank == 0:
            warnings.warn(f"resuming with {self.world} process(es) a run checkpointed with {len(saved)}: the ranks' "
                          f"random starts (and free training's perturbations) are not those the run would have used")
        own = saved[self.rank] if len(saved) == self.world else saved[0]
        self.free_delta = own["free_delta"].to(self.device) if own["free_delta"].numel() else None
        set_rng_state(own["rng"], self.gen)
        self.pgen.set_state(ck["precision_rng"].cpu())
        # A checkpoint older than run ids keeps this Trainer's new one, which names the run from now on.
        self.run_id = ck["config"].get("run_id") or self.run_id
        if self.cfg.zero_grad == "zero":
            self._restore_zero_grads(ck)

    def _opt_params(self) -> list:
        return [p for g in self.opt.param_groups for p in g["params"]]

    def _restore_zero_grads(self, ck):
        """"zero" mode: every parameter that had a gradient before the kill gets its zero one back.
        SGD skips a parameter whose grad is None, so after a resume each BN branch drawn before the
        kill lost its momentum and weight-decay updates until it was drawn again, and the run drifted
        from the uninterrupted one. A checkpoint from before ``grad_defined`` was kept: the
        parameters with a momentum buffer (all of them, with momentum)."""
        params = self._opt_params()
        defined = ck.get("grad_defined")
        if defined is None:
            defined = [i for i, p in enumerate(params)
                       if self.opt.state.get(p, {}).get("momentum_buffer") is not None]
        for i in defined:
            if params[i].grad is None:
                params[i].grad = torch.zeros_like(params[i])

    def resume(self, path=None):
        """Resume from ``path`` (default ``out_dir/last.pt``); returns True if resumed.
        CheckpointError if it is not the checkpoint of the run in ``out_dir`` (:func:`check_run_checkpoint`)."""
        path = path or os.path.join(self.out_dir, "last.pt")
        if not os.path.isfile(path):
            return False
        ck = load_checkpoint(path, map_location=self.device)
        run = check_run_checkpoint(self.out_dir, ck, path)
        theirs, ours = ck["config"], self.config_record()
        changed = sorted(k for k in set(theirs) | set(ours)
                         if k not in RESUME_MAY_CHANGE and theirs.get(k) != ours.get(k))
        if changed:
            raise CheckpointError(f"{path} was trained with another config: "
                                  + "; ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in changed))
        done = ck.get("epoch")
        if isinstance(done, int) and self.cfg.epochs < done:  # (fit did nothing and config.json said the fewer)
            raise ValueError(f"{path} has trained {done} epochs; epochs={self.cfg.epochs} ends before that: give "
                             f"epochs >= {done} to resume it")
        self.restore(ck, run)
        return True

    def restore(self, ck, run: Optional[RunFolder] = None):
        """Continue from checkpoint ``ck``, already checked with :func:`check_run_checkpoint`: its state,
        and metrics.jsonl cut back to the epochs it covers. ``run``: what that check returned (the
        folder as it read it); without it, metrics.jsonl is read here."""
        # (the schedule's length and every epoch's batches follow from it: another set went on silently)
        if ck.get("train_images", len(self.train_set)) != len(self.train_set):
            raise CheckpointError(f"the checkpoint's run trained on {ck['train_images']} images; this training set "
                                  f"has {len(self.train_set)}: resume with the same set")
        threads = ck.get("threads")
        if self.device.type == "cpu" and threads not in (None, torch.get_num_threads()) and self.rank == 0:
            warnings.warn(f"resuming with {torch.get_num_threads()} CPU thread(s) a run that trained with {threads}: "
                          "the result is not bit for bit the uninterrupted run's (sums split by thread round "
                          f"differently); torch.set_num_threads({threads}) (dwq train --threads {threads}) makes it so")
        self.load_state(ck)
        self._continuing = True
        if self.rank == 0:
            if run is None:
                run = RunFolder(self.out_dir, None, read_metrics(self.out_dir))
            run.trim_metrics(self.epoch)
            # The checkpoint's epoch chose best.pt (or the reference's) and was interrupted before writing
            # it: the state is the checkpoint's own (_fit writes the same state to both).
            rec = run.record(self.epoch) or {}
            for key, name in (("best", "best.pt"), ("best_test_reference", REFERENCE_SELECT_CKPT)):
                if rec.get(key):
                    save_checkpoint(os.path.join(self.out_dir, name), ck)

    # -- one step ---------------------------------------------------------------------
    def _draw(self):
        p = self.precs[torch.randint(len(self.precs), (1,), generator=self.pgen).item()] \
            if self.cfg.random_precision else self.precs[0]
        set_precision(self.model, p)
        if self.cfg.compile:
            mark_trained(self.model)  # compiled forwards do not record the switchable-BN branches they train
        k = precision_name(p)
        self.precision_counts[k] = self.precision_counts.get(k, 0) + 1
        return p

    def _check_labels(self):
        """Labels of the sets that list them (held in memory, or an image folder's or torchvision set's
        ``targets``) against the model's outputs, before anything is written:
        a label >= the outputs failed only at the first step's cross-entropy ("Target 12 is out of
        bounds" on the CPU; on CUDA a device-side assert that ends the process's CUDA context). The
        width comes from one eval-mode forward of one image at the first training precision, with
        the model's modes and the global RNGs restored (training is as without the check)."""
        labels = {}
        first = None
        for name, ds in (("train_set", self.train_set), ("val_set", self.val_set), ("test_set", self.test_set)):
            # (an image folder's, a torchvision set's: the list they keep, as those held in memory)
            y = dataset_labels(ds) if ds is not None else None
            if y is None or len(y) == 0:
                continue
            labels[name] = (int(y.min()), int(y.max()))
            first = ds if first is None else first
        if first is None:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        # (an untrained model's switchable-BN branches: nothing to say here; a random augmentation of the
        # image read draws from the forked RNG)
        with kept_modes(self.model), torch.random.fork_rng(devices), torch.no_grad(), \
                untrained_quiet(), precision(self.model, self.precs[0]):
            image = collate(first, [0])[0]
            outputs = self.model.eval()(image.to(self.device)).shape[-1]
        for name, (lo, hi) in labels.items():
            if lo < 0 or hi >= outputs:
                raise ValueError(f"{name} holds labels in [{lo}, {hi}], but the model has {outputs} outputs "
                                 f"(classes 0..{outputs - 1}): build the model for the dataset's classes")

    def _compile(self):
        """torch.compile of the update's model (DDP wrapper included) and the attack's. Each precision
        is its own graph (set_precision changes Python attributes the graphs are specialized on), so
        the recompile limit is raised to hold every precision of the set in train and eval mode, and
        inductor divides exactly, as the fake quantization's arithmetic contract needs."""
        import torch._dynamo

        inductor_exact_division()
        cfg = torch._dynamo.config
        cfg.cache_size_limit = max(cfg.cache_size_limit, 4 * len(self.model_set) + 4)
        self._attack_net = torch.compile(self.model)
        self._net = self._attack_net if self.ddp is None else torch.compile(self.ddp)

    # amp is refused off CUDA (__init__); an attribute so that a test can run the AMP path under CPU autocast
    _autocast_device = "cuda"

    def _forward(self, x):
        with torch.autocast(self._autocast_device, dtype=torch.float16, enabled=self.use_amp):
            return self._net(x)

    def _zero_grad(self):
        # "zero": torch 1.8's zero_grad() as the reference ran it; a parameter that ever had a gradient
        # keeps a zero one, so SGD's momentum and weight decay move BN branches not drawn this step.
        self.opt.zero_grad(set_to_none=self.cfg.zero_grad == "none")

    def _backward(self, loss, share):
        """Gradients of ``loss`` weighted by this rank's ``share`` of the global batch (train_batch)."""
        self._zero_grad()
        self.scaler.scale(loss * share if share != 1.0 else loss).backward()

    def _update(self, x_adv, y, share=1.0):
        out = self._forward(x_adv)
        loss = F.cross_entropy(out.float(), y)
        self._backward(loss, share)
        self._step()
        return loss.detach(), out.detach()

    def _step(self):
        """The optimizer's step (through the AMP scaler), then the schedule's."""
        self.scaler.step(self.opt)
        self.scaler.update()
        self.lr_used = self.opt.param_groups[0]["lr"]
        self.sched.step()
        self.step += 1

    def _attack_model(self, x):
        with torch.autocast(self._autocast_device, dtype=torch.float16, enabled=self.use_amp):
            return self._attack_net(x)

    def _attack_loss_scale(self, n):
        """Under AMP, the factor the attack's summed per-sample loss is multiplied by (dwq.attacks'
        ``loss_scale``): the scaler's scale over the batch size ``n``, so that the attack backpropagates
        scale * mean loss, as the update does (and the reference's ``amp.scale_loss``). Unscaled, the
        float16 input gradients of confidently classified samples flushed to zero and their pixels
        never moved. Over ``n``: the scaler keeps the update's activation gradients, of the same size,
        clear of float16 overflow, while the scale alone on the sum sent a misclassified sample's
        logit gradient, up to the initial 2^16, past float16's 65504. A tensor on the device: no host
        sync. None in float32, whose attack is left as it was."""
        if not self.use_amp:
            return None
        return self.scaler.scale(torch.full((), 1.0 / n, device=self.device))

    def _craft(self, x, y):
        c = self.cfg
        m = self._attack_model
        s = self._attack_loss_scale(len(y))
        if c.attack == "pgd":
            return pgd(m, x, y, c.epsilon, c.alpha, c.attack_iters, generator=self.gen, loss_scale=s)
        if c.attack == "fgsm":
            return fgsm(m, x, y, c.epsilon, c.alpha, loss_scale=s)
        if c.attack == "fgsm-rs":
            return fgsm_rs(m, x, y, c.epsilon, c.alpha, generator=self.gen, loss_scale=s)
        return x

    def train_batch(self, x, y, share=1.0):
        """One minibatch (``free``: ``free_replays`` updates). Returns ``(loss sum, correct, n)``: the
        first two as 0-dim float32 tensors on the device (read once per epoch: no host sync per step).

        ``share``: this rank's part of the global batch times the number of ranks (1 when the batch
        splits evenly). The rank's mean loss is weighted by it, so that DDP's average of the ranks'
        gradients is the gradient of the global batch's mean (63 images on 2 ranks: 32 and 31)."""
        c = self.cfg
        if c.attack == "free":
            # The reference's global noise: kept within ±ε only and carried from batch to batch (a short
            # last batch takes its first rows), the image box applied outside the graph. A clamp to
            # [0, 1] inside it passed no gradient at 0 or 1 (torch >= 2.14), so those pixels, most of an
            # MNIST image, never moved.
            # (the box clamp below made images outside [0, 1], normalized ones, into others without a word;
            # the PGD and FGSM attacks refuse them)
            check_images(x)
            n = len(x)
            if self.free_delta is None or self.free_delta.shape[1:] != x.shape[1:]:
                self.free_delta = torch.zeros_like(x)
            elif len(self.free_delta) < n:
                self.free_delta = torch.cat([self.free_delta, torch.zeros_like(x[len(self.free_delta):])])
            noise = self.free_delta[:n]
            step = c.alpha if c.alpha is not None else c.epsilon
            tot_l = tot_c = 0.0
            for _ in range(c.free_replays):
                self._draw()
                delta = ((x + noise).clamp(0, 1) - x).detach().requires_grad_(True)
                out = self._forward(x + delta)
                loss = F.cross_entropy(out.float(), y)
                self._backward(loss, share)
                noise = (noise + step * delta.grad.detach().sign()).clamp(-c.epsilon, c.epsilon)
                self._step()
                tot_l = tot_l + loss.detach() * len(y)
                tot_c = tot_c + (out.argmax(1) == y).sum()
            self.free_delta = torch.cat([noise, self.free_delta[n:]]) if len(self.free_delta) > n else noise
            return tot_l / c.free_replays, tot_c / c.free_replays, len(y)
        p = self._draw()
        # Graphs (PGD: TrainConfig.validate) keep their own quantized weights: crafted outside the block,
        # whose kept copies a capture would read at every replay.
        xa = self._graphs.craft(x, y, p, self._attack_loss_scale(len(y))) if self._graphs is not None else None
        with reuse_quantized_weights(self.model):  # weights change only at the optimizer step
            if xa is None:
                xa = self._craft(x, y) if c.attack != "none" else x
            loss, out = self._update(xa, y, share)
        return loss * len(y), (out.argmax(1) == y).sum().float(), len(y)

    def _reference_test_select(self, rec) -> bool:
        """The reference's checkpoint rule (CIFAR/train.py): each epoch, PGD-20 (step 2/255, early
        stop) on the test set at the lowest training precision (the fixed one without RPT); True when
        the accuracy is better, i.e. best_test_reference.pt is to be written."""
        c = self.cfg
        p = lowest_precision(self.precs) if c.random_precision else self.precs[0]
        clean, rob = evaluate_clean_pgd(self.model, self.test_set, [p], c.epsilon, 2 / 255, c.test_select_steps,
                                        self.device, seed=c.seed, early_stop=True, num_workers=self.num_workers)
        rec.update(test_clean_reference=clean, test_pgd_reference=rob)
        if rob > self.best_test:
            self.best_test = rob
            rec["best_test_reference"] = True
            return True
        return False

    # -- the loop ---------------------------------------------------------------------
    def fit(self, stop_after_steps: Optional[int] = None):
        """Train until ``cfg.epochs``; ``stop_after_steps`` simulates a kill (for tests): the Trainer then
        refuses another fit (its state is inside an epoch); a new Trainer resumes from last.pt."""
        c = self.cfg
        if self._stopped_at is not None:  # (a second fit() restarted the epoch: batches trained twice)
            raise RuntimeError(f"fit: this Trainer stopped inside epoch {self.epoch + 1} at step {self._stopped_at} "
                               "(stop_after_steps); continue from last.pt with a new Trainer's resume()")
        if not self._continuing:
            self._check_fresh_out_dir()
        self._continuing = True
        if self.rank == 0:
            os.makedirs(self.out_dir, exist_ok=True)
            path = os.path.join(self.out_dir, "config.json")
            with atomic_open(path) as f:  # a kill mid-write leaves the previous config.json
                json.dump(self.config_record(), f, indent=2)
        with deterministic(c.deterministic):
            return self._fit(stop_after_steps)

    def _check_fresh_out_dir(self) -> None:
        """A new run refuses a folder holding a run's files (check_fresh_run_folder). Every rank checks
        before rank 0 writes anything, so all refuse together."""
        check_fresh_run_folder(self.out_dir)
        if self.world > 1:
            barrier()

    def _fit(self, stop_after_steps):
        c = self.cfg
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover
            tqdm = None
        while self.epoch < c.epochs:
            t0 = time.time()
            self.model.train()
            batches = rank_batches(len(self.train_set), c.batch_size, c.seed, self.epoch, self.rank, self.world)
            it = BatchLoader(self.train_set, [b for b, _ in batches], self.num_workers, seed=c.seed,
                             epoch=self.epoch)
            if tqdm is not None and c.progress and self.rank == 0:
                it = tqdm(it, total=len(batches), desc=f"epoch {self.epoch + 1}/{c.epochs}", leave=False)
            ls = cs = torch.zeros((), device=self.device)
            ns = 0
            counts_before = dict(self.precision_counts)
            for (x, y), (_, share) in zip(it, batches):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)  # no host sync
                l, cor, n = self.train_batch(x, y, share)
                ls, cs, ns = ls + l, cs + cor, ns + n
                if stop_after_steps is not None and self.step >= stop_after_steps:
                    self._stopped_at = self.step
                    return self
            self.epoch += 1
            if self.world > 1:  # the epoch's figures are the global batches', not this rank's share
                import torch.distributed as dist

                t = torch.stack([ls.double(), cs.double(), torch.tensor(float(ns), dtype=torch.float64, device=ls.device)])
                dist.all_reduce(t)
                ls, cs, ns = t[0], t[1], int(t[2].item())
            rec = {"epoch": self.epoch, "step": self.step, "train_loss": ls.item() / max(ns, 1),
                   "train_acc": cs.item() / max(ns, 1), "lr": self.lr_used,
                   "precision_counts": {k: v - counts_before.get(k, 0) for k, v in self.precision_counts.items()}}
            write_best = write_reference = False
            if self.val_set is not None and len(self.val_set) and (self.epoch % c.val_every == 0 or self.epoch == c.epochs):
                vc, vr = evaluate_clean_pgd(self.model, self.val_set, self.precs, c.epsilon,
                                            c.epsilon / 4, c.val_pgd_steps, self.device, seed=c.seed,
                                            num_workers=self.num_workers)
                rec.update(val_clean=vc, val_pgd=vr)
                score = vr if vr is not None else vc
                # (a diverged full-precision epoch, its loss NaN, scored its constant class and became best.pt)
                if score > self.best and math.isfinite(rec["train_loss"]):
                    self.best = score
                    rec["best"] = write_best = True
            if c.test_select:
                write_reference = self._reference_test_select(rec)
            rec["seconds"] = time.time() - t0
            ranks = self.rank_states()  # every rank, every epoch (a collective under DDP)
            if self.rank == 0:
                st = self.state(ranks)
                # The epoch's line first, then last.pt: an interrupt between them leaves a line ahead of
                # the checkpoint, which resume() drops (the other order lost the line for good). best.pt
                # last: written before last.pt, an interrupt left it holding an epoch that resume() redoes,
                # for good if the redone epoch scored lower; after it, restore() rewrites a missed one.
                with open(os.path.join(self.out_dir, "metrics.jsonl"), "a") as f:
                    f.write(json.dumps(jsonable(rec)) + "\n")  # (a diverged run's NaN loss as "nan": strict JSON)
                    # on disk before last.pt (fsynced): after a crash of the machine a last.pt ahead of
                    # its line is a folder that resume() refuses as another run's
                    f.flush()
                    os.fsync(f.fileno())
                st = with_digests(st)  # (once: last.pt and best.pt hold the same state)
                save_checkpoint(os.path.join(self.out_dir, "last.pt"), st)
                if write_best:
                    save_checkpoint(os.path.join(self.out_dir, "best.pt"), st)
                if write_reference:
                    save_checkpoint(os.path.join(self.out_dir, REFERENCE_SELECT_CKPT), st)
                if self.on_epoch is not None:
                    self.on_epoch(rec)
        return self

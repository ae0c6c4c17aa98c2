"""The settings of a training run: :class:`TrainConfig`, its checks, the learning-rate schedule it
implies (:func:`lr_lambda`) and its JSON form (:func:`jsonable`, for config.json and checkpoints).
What the settings do is :mod:`dwq.train.loop`'s docstring."""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Optional

from dwq.attacks import check_eps
from dwq.quant import normalize_set

__all__ = ["TrainConfig", "TRAIN_ATTACKS", "SCHEDULES", "ZERO_GRAD", "RESUME_MAY_CHANGE", "default_alpha", "lr_lambda",
           "jsonable"]

TRAIN_ATTACKS = ("pgd", "fgsm", "fgsm-rs", "free", "none")  # dwq.cli.train copies it (tests/test_cli.py checks)
SCHEDULES = ("multistep", "cyclic", "constant")
ZERO_GRAD = ("none", "zero")
# TrainConfig fields a resume may change (the CLI's RESUME_MAY_CHANGE names its flags); run_id is the
# checkpoint's, and extra holds the caller's notes (the CLI's flags and history).
RESUME_MAY_CHANGE = ("epochs", "progress", "val_every", "compile", "deterministic", "cuda_graphs", "run_id", "extra")


@dataclass
class TrainConfig:
    attack: str = "pgd"
    epsilon: float = 8 / 255
    alpha: Optional[float] = None   # the attack's step; None: default_alpha's (PGD ε/4, FGSM and free ε,
                                    # FGSM-RS 1.25ε), as dwq train's --alpha
    attack_iters: int = 7
    free_replays: int = 4
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "multistep"
    lr_milestones: tuple = (0.5, 0.75)  # fractions of all iterations (multistep)
    lr_gamma: float = 0.1
    precisions: Optional[list] = None   # training set (any precision form); None = the model's whole set
    random_precision: bool = True
    seed: int = 0
    amp: bool = False                   # torch.autocast fp16 + GradScaler, CUDA only
    compile: bool = False               # torch.compile the model for the attack and the update (the
                                        # quantizers included); one graph per precision and mode
    deterministic: bool = False         # deterministic CUDA algorithms during fit (dwq.train.determinism):
                                        # bit-reproducible runs and resumes on a GPU, slower
    cuda_graphs: bool = False           # the PGD attack replayed from a CUDA graph per precision
                                        # (dwq.train.graphs): PGD on CUDA, not with compile
    val_every: int = 1
    val_pgd_steps: int = 10
    progress: bool = True
    extra: dict = field(default_factory=dict)  # kept in config.json and checkpoints; load_trained_model rebuilds
                                               # the model from its network, dataset and model_precisions (and
                                               # switchable_bn, width, policy where given; else the weights say
                                               # whether BN is switchable, width is 32 and policy the default)
    # The reference code's semantics (dwq.train.loop's docstring); None below means "as `reference` says".
    reference: bool = False
    zero_grad: Optional[str] = None     # "none" (dwq: unused parameters get no gradient, SGD skips them)
                                        # or "zero" (the reference's torch-1.8 zero_grad(): zeroed gradients,
                                        # so momentum and weight decay still move every BN branch drawn before)
    test_select: Optional[bool] = None  # write best_test_reference.pt by the reference's test-set rule
    test_select_steps: int = 20         # PGD steps of that rule (the reference: PGD-20, step 2/255, early stop)

    def validate(self):
        """Checks the settings and resolves the ``None`` ones from ``reference``; returns self."""
        if self.zero_grad is None:
            self.zero_grad = "zero" if self.reference else "none"
        if self.test_select is None:
            self.test_select = bool(self.reference)
        if self.zero_grad not in ZERO_GRAD:
            raise ValueError(f"zero_grad must be one of {ZERO_GRAD}, got {self.zero_grad!r}")
        if self.reference and self.zero_grad != "zero":
            raise ValueError("reference=True keeps zeroed gradients (zero_grad='zero'), as the reference's "
                             f"optimizer; got zero_grad={self.zero_grad!r}")
        if self.reference and self.amp:
            raise ValueError("reference=True trains in float32 as the reference code; amp=True contradicts it")
        if self.attack not in TRAIN_ATTACKS:
            raise ValueError(f"unknown training attack {self.attack!r}; choose one of {TRAIN_ATTACKS}")
        # switches are bools: random_precision="false" is true, and trained with random precision
        for name in ("random_precision", "amp", "compile", "deterministic", "cuda_graphs", "progress", "reference",
                     "test_select"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("lr", "momentum", "weight_decay", "lr_gamma"):  # (True was an lr of 1, '0.9' a TypeError)
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{name} must be a number, got {v!r}")
        if self.cuda_graphs and (self.attack != "pgd" or self.compile):
            # (compile and graphs are two ways of cutting the same launches)
            raise ValueError(f"cuda_graphs replays the PGD attack, without torch.compile; got "
                             f"attack={self.attack!r}, compile={self.compile}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.lr_schedule!r}; choose one of {SCHEDULES}")
        # (0 trained without an attack under an attack's name; dwq train refuses it too: --attack none)
        check_eps(self.epsilon, "epsilon", positive=self.attack != "none")
        if self.alpha is None and self.attack != "none":
            step, rule = default_alpha(self.attack, self.epsilon, self.reference)
            check_eps(step, f"the default step size (alpha = {rule} of {self.attack}); give alpha. It")
            self.alpha = step
        if self.alpha is not None:
            check_eps(self.alpha, "step size (alpha)", positive=self.attack != "none")
        # Counts must be ints: 2.5 or True would fail late in range() or count as 1.
        for name, low in (("attack_iters", 1), ("free_replays", 1), ("epochs", 1), ("batch_size", 1),
                          ("val_every", 1), ("test_select_steps", 1), ("val_pgd_steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be >= {low} (an int), got {v!r}")
        ms = self.lr_milestones
        if not (isinstance(ms, (list, tuple)) and all(isinstance(m, numbers.Real) and not isinstance(m, bool)
                                                      for m in ms)):  # (0.5) is a float: "not iterable"
            raise ValueError(f"lr_milestones must be a tuple of fractions of the run, e.g. (0.5, 0.75), got {ms!r}")
        if not all(0 < m < 1 for m in self.lr_milestones):  # (1: the run's end, after its last step: never applied)
            raise ValueError(f"lr milestones are fractions of the run in (0, 1), got {list(self.lr_milestones)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an int in 0..2^63 - 1, got {self.seed!r}")
        # inf passes the comparisons below and trains NaN weights
        finite = all(math.isfinite(v) for v in (self.lr, self.weight_decay, self.lr_gamma))
        if not (finite and self.lr > 0 and self.weight_decay >= 0 and 0 <= self.momentum < 1 and self.lr_gamma > 0):
            raise ValueError(f"need finite lr > 0, weight_decay >= 0, 0 <= momentum < 1 and lr_gamma > 0; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, momentum={self.momentum}, lr_gamma={self.lr_gamma}")
        if not isinstance(self.extra, dict):  # (None trained to the end, then neither resumed nor loaded)
            raise ValueError(f"extra must be a dict of JSON values (kept in config.json and every checkpoint), got "
                             f"{type(self.extra).__name__}")
        try:  # (a numpy float failed at the first write, "Object of type float32 is not JSON serializable")
            json.dumps(jsonable(self.extra), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"extra must hold JSON values only (dicts, lists, str, int, float, bool, None): {e}") from None
        if self.precisions is not None:
            n = len(normalize_set(self.precisions))  # a list, not empty, no repeats (a repeat would bias the draw)
            if not self.random_precision and n != 1:
                raise ValueError("without random precision training give exactly one training precision")
        return self


def default_alpha(attack: str, epsilon: float, reference: bool = False) -> tuple:
    """(step, its rule) of a training attack given no step: PGD ε/4 (the reference's 2/255 at its ε
    8/255; a fixed 2/255 left 7 steps 0.055 from the start at ε 0.3, an attack far weaker than the ε
    the run records), FGSM and free ε, FGSM-RS 1.25ε (Wong et al.); with ``reference``, the reference
    code's own (:func:`dwq.train.reference.reference_alpha`: PGD 2/255, FGSM 10/255)."""
    if reference and attack in ("pgd", "fgsm", "fgsm-rs"):
        from dwq.train.reference import reference_alpha

        return reference_alpha(attack), "the reference's"
    return {"pgd": (epsilon / 4, "ε/4"), "fgsm": (epsilon, "ε"), "free": (epsilon, "ε"),
            "fgsm-rs": (1.25 * epsilon, "1.25ε")}[attack]


def lr_lambda(cfg: TrainConfig, total_steps: int):
    """The schedule ``cfg.lr_schedule`` over ``total_steps`` updates: ``step -> factor`` of ``cfg.lr``
    (torch's LambdaLR)."""
    if cfg.lr_schedule == "constant":
        return lambda step: 1.0
    if cfg.lr_schedule == "cyclic":  # fast_adversarial: 0 -> lr at half -> 0, linearly
        half = max(total_steps / 2, 1)
        return lambda step: max(0.0, step / half if step <= half else (total_steps - step) / half)
    # Rounded down, as the reference's MultiStepLR fires only at whole steps; but never before step 1,
    # or a run shorter than 1/m steps would train even its first step at gamma * lr.
    miles = [max(1, int(m * total_steps)) for m in cfg.lr_milestones]
    return lambda step: cfg.lr_gamma ** sum(step >= m for m in miles)


def jsonable(o):
    """``o`` (dicts, lists, tuples, numbers, strings) as strict JSON: keys as strings, tuples as lists,
    a non-finite float as its string ("inf", "nan")."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    return o

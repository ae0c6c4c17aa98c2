"""Gradient attacks in L∞: FGSM, FGSM-RS, PGD and exact EOT-PGD.

All work on images in ``[lo, hi]`` (default ``[0, 1]``; others are refused, :func:`check_images`)
and keep ``|x_adv - x|_∞ <= eps`` exactly (projection after each step, then clamping to
the image range, which can only shrink the perturbation).

Losses are *per-sample* callables ``loss(logits, y) -> float [N]``; the attack
ascends their sum, so each sample's gradient is that of its own loss.

``loss_scale`` (FGSM, FGSM-RS, PGD), for a model run under float16 autocast: a positive factor
(a float or a 0-dim tensor, e.g. a ``GradScaler``'s scale) the summed loss is multiplied by before
the backward. The signed step is the same for any positive factor; it only keeps small gradients
from flushing to zero in float16, where a pixel with a zero gradient never moves. ``None`` (the
default) leaves float32 attacks exactly as they were.
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F

from dwq._index import index_or_none
from dwq.ops.fake_quant import check_value

ModelFn = Callable[[torch.Tensor], torch.Tensor]

# the attacks this package offers, by name (the command line takes its own subsets: dwq.eval.EVAL_ATTACKS for
# dwq eval --attack, dwq.train.TRAIN_ATTACKS for dwq train --attack; EOT-PGD and AutoAttack rand are protocols)
ATTACKS = ("pgd", "fgsm", "fgsm-rs", "cw-l2", "cw-linf", "bandits", "autoattack", "autoattack-rand", "eot-pgd")


def check_eps(eps: float, name: str = "epsilon", positive: bool = False):
    """ε (and step sizes) are in pixel units for images in [0, 1]; ``positive``: 0 excluded."""
    # bool is an int to Python, and True reached the projection as a bool tensor (a bare torch error)
    if isinstance(eps, torch.Tensor):  # (a 0-d tensor was said to be out of range)
        raise ValueError(f"{name} must be a Python or NumPy number in [0, 1], got a tensor {eps!r}; pass .item()")
    ok = not isinstance(eps, bool) and isinstance(eps, numbers.Real) and 0.0 <= float(eps) <= 1.0
    if not ok or (positive and eps == 0):
        raise ValueError(f"{name} must be in {'(' if positive else '['}0, 1] (pixel units; 8/255 = 0.0314), "
                         f"got {eps!r}")
    return float(eps)


def check_step(alpha, eps: float) -> float:
    """A step size the caller gave, for a checked ``eps``: in [0, 1], and not 0 while ε is not (a step of 0
    left every image where it started: robust accuracy read as clean accuracy)."""
    a = check_eps(alpha, "step size")
    if a == 0 and eps > 0:
        raise ValueError(f"step size must be > 0 when epsilon is ({eps!r}): a step of 0 never moves an image, got "
                         f"{alpha!r}")
    return a


def check_kappa(kappa) -> float:
    """A CW confidence margin: finite and >= 0 (a negative one counted correctly classified iterates as
    successes, and the clean images came back)."""
    ok = not isinstance(kappa, bool) and isinstance(kappa, numbers.Real) and 0.0 <= float(kappa) < float("inf")
    if not ok:
        raise ValueError(f"kappa must be a finite number >= 0 (the CW margin in logits), got {kappa!r}")
    return float(kappa)


def check_positive(value, name: str) -> float:
    """A finite real > 0 (a rate, a constant, a scale): 0 or NaN silently disabled an attack, a
    negative one reversed it."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and 0.0 < float(value) < float("inf")
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_count(value, name: str, minimum: int = 0) -> int:
    """An iteration or query count: an int ``>= minimum`` (a float count failed inside ``range``)."""
    v = index_or_none(value)
    if v is None or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return v


def check_images(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> None:
    """``x`` lies in ``[lo, hi]`` (NaN refused too). The attacks clamp to that range, so images outside
    it (normalized ones, say) came back up to 1 away from x at eps = 8/255, breaking the eps bound
    silently. At once on the CPU; on accelerators an asynchronous device assert (no host sync)."""
    if x.numel():
        mn, mx = torch.aminmax(x.detach())
        check_value(~((mn >= lo) & (mx <= hi)), f"x must hold images in [{lo:g}, {hi:g}] (the attacks clamp to that "
                    f"range: images outside it, e.g. normalized ones, would break the epsilon bound); normalize "
                    f"inside the model (dwq.models.Normalize), or give the attack lo= and hi=")


def check_labels(x: torch.Tensor, y) -> None:
    """``y``: int64 class labels [N] on the device of the images ``x`` [N, ...]. Metadata only (no host
    sync); torch's own errors named neither y nor what was expected ('0D or 1D target tensor expected',
    'expected target dtype to be Long', 'one_hot is only applicable to index tensor')."""
    if (not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1 or len(y) != x.shape[0]
            or y.device != x.device):
        got = f"{y.dtype} {list(y.shape)} on {y.device}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be int64 class labels [N] on the images' device, N = {x.shape[0]} (x: "
                         f"{list(x.shape)} on {x.device}), got {got}")
    if len(y):  # (cross-entropy ignores -100: such an image got no gradient and came back unattacked)
        check_value((y < 0).any(), "y must hold class indices >= 0, got a negative label")


def check_label_range(y: torch.Tensor, classes: int) -> None:
    """Labels below the model's ``classes`` outputs, where an attack compares them with its argmax and
    takes none of them (Bandits, AutoAttack): ``y >= classes`` counted every image as fooled already."""
    if len(y):
        check_value((y >= classes).any(), f"y must hold class indices in [0, {classes - 1}] (the model has "
                                          f"{classes} outputs), got a larger label")


def check_loss_scale(loss_scale) -> None:
    """A float ``loss_scale`` is > 0: a negative one made the attack descend its loss, 0 or NaN stopped
    it (a tensor, a GradScaler's scale, is taken as it is: reading it would sync with the device)."""
    if loss_scale is not None and not isinstance(loss_scale, torch.Tensor):
        check_positive(loss_scale, "loss_scale")


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy, float [N]."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ``z_y - max_{j≠y} z_j`` in float32 (negative: misclassified); the others' maximum
    masks the true logit with -inf (a mask by multiplication reads it as 0)."""
    logits = logits.float()
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return logits.gather(1, y[:, None])[:, 0] - other


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """Per-sample CW margin ``max_{j≠y} z_j - z_y``, capped at ``kappa``: an attack that maximizes it
    stops pushing an image once it is misclassified by ``kappa`` (TRADES/MART's ``cwloss``,
    ``-clamp(z_y - z_other + kappa, min=0)``, up to a constant). A floor at ``-kappa`` instead left
    every image whose true class led by more than ``kappa`` with no gradient, so PGD never moved it."""
    return torch.clamp(-logit_margin(logits, y), max=kappa)


def project_linf(x_adv, x, eps, lo=0.0, hi=1.0):
    """Project onto the ε-ball around ``x`` intersected with ``[lo, hi]``. In float16/bfloat16 the
    ball's faces are rounded inward: ``x ± eps`` rounded to nearest lay up to half a unit outside it
    (|x_adv - x| reached 1.06 eps in bfloat16)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x32 = x.float()
        low, high = _rounded_inward(x32 - eps, x.dtype, 1.0), _rounded_inward(x32 + eps, x.dtype, -1.0)
    else:
        low, high = x - eps, x + eps
    return torch.min(torch.max(x_adv, low), high).clamp(lo, hi)


def _rounded_inward(v: torch.Tensor, dtype, toward: float) -> torch.Tensor:
    """float32 ``v`` in ``dtype``, rounded toward ``toward`` (+1: up, -1: down) where not exact."""
    d = v.to(dtype)
    past = d.float() < v if toward > 0 else d.float() > v
    return torch.where(past, torch.nextafter(d, torch.full_like(d, toward)), d)


def _as_objective(model: Union[ModelFn, Sequence[ModelFn]], loss):
    """Return ``f(x, y) -> (per-sample loss [N], logits or None)``.

    A single model: its loss. A list of models (EOT over precisions): the exact
    mean of the per-model per-sample losses; logits are the mean of softmaxes
    (used only for early stop/restart selection).
    """
    loss = loss or ce_loss
    if callable(model) and not isinstance(model, (list, tuple)):
        def f(x, y):
            z = model(x)
            return loss(z, y), z
        return f
    models = list(model)
    if not models:
        raise ValueError("EOT needs at least one model callable")

    def f(x, y):
        mean_loss, probs, _ = _eot_terms(models, x, y, loss)
        return mean_loss, probs.log()
    return f


def _eot_terms(models, x, y, loss):
    """Over ``models``: the mean per-sample loss, the mean softmax and the fraction that misclassify."""
    total, probs, wrong = 0.0, 0.0, 0.0
    for m in models:
        z = m(x)
        total = total + loss(z, y)
        probs = probs + F.softmax(z.detach().float(), 1)
        wrong = wrong + (z.detach().argmax(1) != y).float()
    return total / len(models), probs / len(models), wrong / len(models)


def eot_loss(models: Sequence[ModelFn], x, y, loss=None) -> torch.Tensor:
    """Per-sample EOT loss: the mean over ``models`` of ``loss(model(x), y)`` (float [N])."""
    return _as_objective(list(models), loss)(x, y)[0]


def check_autograd():
    """Gradient attacks enable grad themselves (``torch.no_grad()`` around them is fine), but
    ``torch.inference_mode()`` cannot be left that way: there torch failed with 'element 0 of
    tensors does not require grad'."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError("gradient attacks need autograd: run them outside torch.inference_mode() "
                           "(torch.no_grad() around them is fine)")


def _grad(f, x_adv, y, loss_scale=None):
    check_autograd()
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        l, z = f(x_adv, y)
        total = l.sum() if loss_scale is None else l.sum() * loss_scale
        g, = torch.autograd.grad(total, x_adv)
    # A scaled float16 backward can overflow: an inf entry keeps its sign, and inf - inf in a sum (a
    # layer's, or train-mode BN's over the batch) is NaN, which torch.sign maps to 0 on CPU and CUDA
    # (c10::signum), so those pixels stay put, as underflow left them, and no image turns NaN (a test
    # holds torch to it). No nan_to_num then: a float32 step is untouched, and costs nothing more.
    return g.detach(), l.detach(), (z.detach() if z is not None else None)


def fgsm(model, x, y, eps, alpha=None, *, loss=None, lo=0.0, hi=1.0, loss_scale=None):
    """FGSM: one signed-gradient step of size ``alpha`` (default ``eps``) from ``x``."""
    eps = check_eps(eps)
    return _single_step(model, x, y, eps, eps if alpha is None else check_step(alpha, eps), False, loss, lo, hi,
                        loss_scale=loss_scale)


def fgsm_rs(model, x, y, eps, alpha=None, *, loss=None, lo=0.0, hi=1.0, generator=None, loss_scale=None):
    """FGSM with a uniform random start in the ε-ball ("fast" adversarial training,
    Wong et al. 2020); default step ``1.25·eps``."""
    # a NaN step gave NaN images, a negative one descended the loss; the default 1.25·eps may
    # exceed 1 (eps > 0.8), so only a step the caller gives is checked
    eps = check_eps(eps)  # (before 1.25 * eps: None or "8/255" failed there with a bare TypeError)
    alpha = 1.25 * eps if alpha is None else check_step(alpha, eps)
    return _single_step(model, x, y, eps, alpha, True, loss, lo, hi, generator, loss_scale)


def _single_step(model, x, y, eps, alpha, rs, loss, lo, hi, generator=None, loss_scale=None):
    check_eps(eps)
    check_loss_scale(loss_scale)
    check_labels(x, y)
    check_images(x, lo, hi)
    f = _as_objective(model, loss)
    x = x.detach()
    x0 = x + _uniform(x, eps, generator) if rs else x
    x0 = project_linf(x0, x, eps, lo, hi)
    g, _, _ = _grad(f, x0, y, loss_scale)
    return project_linf(x0 + alpha * g.sign(), x, eps, lo, hi).detach()


def draw_random_start(x, eps, generator=None, lo=0.0, hi=1.0):
    """PGD's random start: ``x`` plus uniform noise in [-eps, eps] (from ``generator``, a CPU one, if
    given), projected; drawn ahead, it goes to :func:`pgd` as ``start``."""
    return project_linf(x + _uniform(x, eps, generator), x, eps, lo, hi)


def _uniform(x, eps, generator=None):
    u = torch.rand(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
    v = (2 * u - 1) * eps
    if v.device != x.device and x.device.type == "cuda":
        # From pinned memory a non_blocking copy never waits for the stream; from pageable memory the
        # driver may (training steps stay sync-free). Pinned blocks come from torch's caching host allocator.
        v = v.pin_memory()
    return v.to(device=x.device, dtype=x.dtype, non_blocking=True)


RESTART_SELECT = ("misclassified", "loss")


def _check_iterations(eps, alpha, steps, restarts, random_start):
    check_step(alpha, check_eps(eps))
    steps, restarts = check_count(steps, "steps"), check_count(restarts, "restarts", 1)
    if restarts > 1 and not random_start:  # every restart would repeat the first: PGD-20x10 was PGD-20
        raise ValueError(f"restarts={restarts} needs random_start=True: without a random start every restart "
                         f"begins at x and repeats the same run")
    return steps, restarts


def pgd(model, x, y, eps, alpha, steps, *, random_start=True, restarts=1, early_stop=False,
        restart_select="misclassified", loss=None, lo=0.0, hi=1.0, generator=None, loss_scale=None, start=None):
    """L∞ PGD (Madry et al.).

    model: a callable ``x -> logits``, or a list of callables (then the loss at
      each step is the exact mean over them: EOT).
    eps, alpha: radius and step in pixel units; steps: iterations (0 returns the
      random start, or ``x`` without one).
    restarts: independent random starts, one kept per sample by ``restart_select``:
      ``"misclassified"`` (a restart that misclassifies, else the larger loss; with a list
      of models, the one that more of them misclassify, then the larger loss; the earlier
      restart on an exact tie of both) or
      ``"loss"`` (the larger final loss, the later restart on ties: the reference
      code's ``attack_pgd``). With one restart there is nothing to choose and no
      forward after the last step, so a model in train mode (adversarial training)
      sees exactly ``steps`` forwards: ``steps`` updates of its BN statistics and
      activation ranges, as the reference's training loop.
    early_stop: stop moving a sample once it is misclassified (fast_adversarial's
      and the reference's evaluation ``attack_pgd``); the attack ends when every
      sample is.
    loss: per-sample ``loss(logits, y) -> [N]`` (default CE; see cw_margin_loss).
    generator: optional CPU ``torch.Generator`` for the random start.
    loss_scale: for float16 autocast models (module docstring); the steps, early stop and restart
      choice are those of the unscaled loss.
    start: the first point, drawn ahead by :func:`draw_random_start` (one restart; no draw here): what a
      CUDA graph of the attack takes, since a draw from a CPU generator cannot be captured.
    """
    steps, restarts = _check_iterations(eps, alpha, steps, restarts, random_start)
    if start is not None and (restarts != 1 or not random_start):
        raise ValueError(f"start (a random start drawn ahead) needs random_start=True and restarts=1, got "
                         f"random_start={random_start}, restarts={restarts}")
    if start is not None and (not isinstance(start, torch.Tensor) or start.shape != x.shape
                              or start.device != x.device or start.dtype != x.dtype):
        got = (f"{start.dtype} {list(start.shape)} on {start.device}" if isinstance(start, torch.Tensor)
               else type(start).__name__)
        raise ValueError(f"start must be like x ({x.dtype} {list(x.shape)} on {x.device}), got {got}")
    if restart_select not in RESTART_SELECT:
        raise ValueError(f"restart_select must be one of {RESTART_SELECT}, got {restart_select!r}")
    check_loss_scale(loss_scale)
    check_labels(x, y)
    check_images(x, lo, hi)
    f = _as_objective(model, loss)
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    best_wrong = torch.zeros(x.shape[0], device=x.device)  # fraction of the models misclassifying (0/1 for one)
    for _ in range(restarts):
        if start is not None:  # (projected: with steps=0 a start outside the ball came back as it was)
            x_adv = project_linf(start.detach(), x, eps, lo, hi)
        else:
            x_adv = draw_random_start(x, eps, generator, lo, hi) if random_start else x.clone()
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(steps):
            g, _, z = _grad(f, x_adv, y, loss_scale)
            if early_stop:
                active = active & (z.argmax(1) == y)
                if not active.any():
                    break
                g = g * active.view(-1, *[1] * (x.dim() - 1))
            x_adv = project_linf(x_adv + alpha * g.sign(), x, eps, lo, hi).detach()
        if restarts == 1:
            return x_adv.detach()
        with torch.no_grad():
            if isinstance(model, (list, tuple)):  # (the averaged prediction can be right where most models are wrong)
                l, _, wrong = _eot_terms(list(model), x_adv, y, loss or ce_loss)
            else:
                l, z = f(x_adv, y)
                wrong = (z.argmax(1) != y).float()
        if restart_select == "loss":
            take = l >= best_loss
        else:
            take = (wrong > best_wrong) | ((wrong == best_wrong) & (l > best_loss))
        best = torch.where(take.view(-1, *[1] * (x.dim() - 1)), x_adv, best)  # no host sync (vs best[take] = ...)
        best_loss = torch.where(take, l, best_loss)
        best_wrong = torch.where(take, wrong, best_wrong)
    return best.detach()


def eot_pgd(models_or_loss, x, y, eps, alpha, steps, *, random_start=True, restarts=1, loss=None,
            lo=0.0, hi=1.0, generator=None):
    """EOT-PGD against a randomized model whose randomness is a small finite set.

    ``models_or_loss``: a list of model callables (e.g. the same network at each
    precision of its set): the loss at each step is *exactly* the mean of their
    per-sample losses (no sampling); or a callable ``loss_fn(x_adv) -> [N]``
    (per-sample loss, already averaged as the caller wishes; labels are then
    captured by the caller). With ``restarts`` > 1 the callable's mode keeps, per sample, the
    restart of the larger final loss, the later one on ties (a loss of -inf included).
    """
    if isinstance(models_or_loss, (list, tuple)):
        return pgd(list(models_or_loss), x, y, eps, alpha, steps, random_start=random_start,
                   restarts=restarts, loss=loss, lo=lo, hi=hi, generator=generator)
    loss_fn = models_or_loss

    def as_model_obj(x_adv, _y):
        return loss_fn(x_adv), None

    if loss is not None:  # it was ignored: the callable is the loss
        raise ValueError("loss applies to a list of models; a loss callable loss_fn(x_adv) already is the loss")
    # as pgd's: restarts=0 returned the clean images as the attack's result
    steps, restarts = _check_iterations(eps, alpha, steps, restarts, random_start)
    check_images(x, lo, hi)
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    for _ in range(restarts):
        x_adv = project_linf(x + _uniform(x, eps, generator), x, eps, lo, hi) if random_start else x.clone()
        for _ in range(steps):
            g, _, _ = _grad(as_model_obj, x_adv, y)
            x_adv = project_linf(x_adv + alpha * g.sign(), x, eps, lo, hi).detach()
        if restarts == 1:
            return x_adv.detach()
        with torch.no_grad():
            l = loss_fn(x_adv)
        take = l >= best_loss  # the later restart on ties, as pgd's restart_select="loss"
        best = torch.where(take.view(-1, *[1] * (x.dim() - 1)), x_adv, best)  # no host sync (vs best[take] = ...)
        best_loss = torch.where(take, l, best_loss)
    return best.detach()

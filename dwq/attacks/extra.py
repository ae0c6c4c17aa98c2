"""CW-L2 and AutoAttack (via torchattacks 3.5.1), the paper's CW-L∞ variant and
Bandits-TD (written here: no maintained library has them in this form).

Train or eval mode: :func:`cw_l2` and :func:`autoattack` run as torchattacks runs, with an
``nn.Module`` model put in eval mode for the attack and every submodule's mode restored afterwards.
A plain callable (a closure over a model, a loss) is called as it is, like every other attack here
(:func:`dwq.attacks.pgd`, :func:`apgd_eot`, :func:`cw_linf`, :func:`bandits_td`): put the model it
calls in eval mode first, or its BN statistics and activation ranges move during the attack
(``dwq eval`` evaluates in eval mode)."""
from __future__ import annotations

import contextlib
import functools
import io
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dwq.nn.modes import kept_modes

from .core import (ce_loss, check_autograd, check_count, check_eps, check_images, check_kappa, check_label_range,
                   check_labels, check_positive, logit_margin, project_linf)


class _InputGrad(torch.autograd.Function):
    """``fn(x)`` run at ``dtype`` whose backward reaches only ``x``: torchattacks' CW and FAB call
    ``backward()``, which filled the ``.grad`` of the model's parameters (the attack's own gradient
    left there for the caller's next optimizer step). FAB backpropagates the same output more than
    once (``retain_graph=True``), so the inner graph is kept as long as the output's."""

    @staticmethod
    def forward(ctx, x, fn, dtype):
        if not ctx.needs_input_grad[0]:
            return fn(x.to(dtype)).float()
        with torch.enable_grad():
            ctx.x = x.detach().to(dtype).requires_grad_(True)
            ctx.out = fn(ctx.x).float()
        return ctx.out.detach()

    @staticmethod
    def backward(ctx, g):
        gx, = torch.autograd.grad(ctx.out, ctx.x, g, retain_graph=True)
        return gx.float(), None, None


class _Wrap(nn.Module):
    """nn.Module around a model callable, as torchattacks expects. If the callable
    is itself a module it is registered (as ``fn``), so ``eval()`` reaches it. torchattacks runs in
    float32 (its FAB failed on float64 images); the callable gets images of ``dtype``, the caller's."""

    def __init__(self, fn, dtype=torch.float32):
        super().__init__()
        self.fn = fn
        self.dtype = dtype
        # torchattacks restores train mode afterwards if the module it was given was training; a new
        # module is, so an eval-mode model came back in train mode. The wrapper reports fn's mode.
        self.training = fn.training if isinstance(fn, nn.Module) else False

    def forward(self, x):
        return _InputGrad.apply(x, self.fn, self.dtype)


def _torchattacks():
    try:
        import torchattacks
    except ImportError as e:  # pragma: no cover
        raise ImportError("this attack needs torchattacks==3.5.1 (pip install torchattacks==3.5.1)") from e
    return torchattacks


def _build(cls, *args, **kw):
    """``cls(*args, **kw)`` for a torchattacks attack: its constructor reads the device from the
    model's first parameter and, for a model callable without any, prints 'Failed to set device
    automatically, please try set_device() manual.' (once per attack and batch in an evaluation's
    output) although :func:`_run` sets the device before every run."""
    with contextlib.redirect_stdout(io.StringIO()):
        return cls(*args, **kw)


def _check_image_batch(fn: str, x) -> None:
    # torchattacks' APGD added a batch dimension to [N, D] input ("Expected input batch_size (1) to match
    # target batch_size (4)"); its CW works on any shape but is documented for images
    if isinstance(x, torch.Tensor) and x.dim() != 4:
        raise ValueError(f"{fn}: x must be images [N, C, H, W], got shape {tuple(x.shape)}")


def _gpus():
    # (none in a child forked from a process that used CUDA: it cannot initialize CUDA, and
    # torch.manual_seed leaves CUDA alone there, by the same test)
    if not torch.cuda.is_available() or torch.cuda._is_in_bad_fork():
        return []
    return list(range(torch.cuda.device_count()))


def _run(atk, x, y):
    check_autograd()
    check_labels(x, y)
    check_images(x)  # (torchattacks clamps to [0, 1])
    atk.set_device(x.device)
    # torchattacks puts the wrapped module in eval mode during the attack and then calls train() on it if
    # it was training, which set every submodule alike (a RandomPrecision wrapper, a new module, is
    # training around an eval-mode model) and on error left it in eval: each module's flag is restored.
    # Its components seed torch's global RNG themselves (torch.manual_seed: the CPU generator and every
    # GPU's, whatever device the images are on), so the caller's RNG states are kept apart, every GPU's
    # included: on a machine with a GPU this initializes CUDA even for CPU images, which is what the
    # states' restoring costs (CUDA's lazy seeding would otherwise apply the attack's seed later).
    with kept_modes(atk.model), torch.random.fork_rng(devices=_gpus(), device_type="cuda"):
        return atk(x.detach().float(), y).detach().to(x.dtype)


def cw_l2(model, x, y, c=1.0, kappa=0.0, steps=100, lr=0.01):
    """Carlini-Wagner L2 (torchattacks.CW's optimization, unbounded, minimal-distortion), with its
    margin, change of variables and success test as Carlini and Wagner define them (:func:`_cw_l2_class`)."""
    # (c, lr or steps <= 0 and a negative kappa returned the clean images silently)
    check_positive(c, "c")
    check_positive(lr, "lr")
    check_count(steps, "steps", 1)
    check_kappa(kappa)
    _check_image_batch("cw_l2", x)
    return _run(_build(_cw_l2_class(), _Wrap(model, x.dtype), c=c, kappa=kappa, steps=steps, lr=lr), x, y)


@functools.lru_cache(maxsize=None)
def _cw_l2_class():
    """torchattacks 3.5.1's CW with two of its defects mended:

    * its margin masked the logits by multiplying with the one-hot labels, which puts a 0 in the
      masked slot: with every other logit negative the "best other class" read 0, with the true
      logit negative too the margin was 0 and had no gradient (a logit shift of -100 took the
      attack from 66% to 0% success). Here: :func:`logit_margin`.
    * its change of variables mapped pixels at exactly 0 or 1 to atanh(±1) = ±inf, where tanh has no
      gradient, so those pixels (most of an MNIST image) never moved; scaled by 1 - 1e-6 as the
      original and advertorch do. They start at atanh(±0.999999) = ±7.25, where tanh's slope is 4e-6,
      and Adam moves w by about ``lr`` per step: at the defaults (100 steps of 0.01) such a pixel
      moves by 1e-6 to 1e-5, at 1,000 steps by 0.03-0.25 on small MNIST-sized models (Carlini and
      Wagner ran 1,000-10,000). So on
      images with many saturated pixels this attack is weak at the defaults; give more ``steps``.
    * an iterate counted as a success when its argmax was wrong, whatever κ: with κ > 0 it kept the
      least-L2 image that was only just misclassified. Here, as Carlini and Wagner's ``compare`` (and
      :func:`cw_linf`): misclassified by more than κ. The loop is otherwise torchattacks' (Adam on w,
      least L2 among successes, its early stop), untargeted as dwq calls it.
    """
    class CW(_torchattacks().CW):
        def inverse_tanh_space(self, x):
            return self.atanh(torch.clamp(x * 2 - 1, min=-1, max=1) * (1 - 1e-6))

        def forward(self, images, labels):
            images = images.clone().detach().to(self.device)
            labels = labels.clone().detach().to(self.device)
            w = self.inverse_tanh_space(images).detach().requires_grad_()
            best, best_l2 = images.clone(), torch.full((len(images),), math.inf, device=images.device)
            opt = torch.optim.Adam([w], lr=self.lr)
            prev_cost, every = math.inf, max(self.steps // 10, 1)
            for step in range(self.steps):
                with torch.enable_grad():  # (under torch.no_grad(), as the other attacks allow)
                    adv = self.tanh_space(w)
                    l2 = (adv - images).flatten(1).pow(2).sum(1)
                    outputs = self.get_logits(adv)
                    if step == 0:  # (one_hot's own error named no argument)
                        check_label_range(labels, outputs.shape[-1])
                    cost = l2.sum() + self.c * self.f(outputs, labels).sum()
                    opt.zero_grad()
                    cost.backward()
                opt.step()
                with torch.no_grad():
                    fooled = (outputs.argmax(1) != labels if self.kappa == 0
                              else logit_margin(outputs, labels) < -self.kappa)
                    better = fooled & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best = torch.where(better.view(-1, *[1] * (images.dim() - 1)), adv, best)
                if step % every == 0:  # torchattacks' early stop: the cost rose since the last check
                    if cost.item() > prev_cost:
                        break
                    prev_cost = cost.item()
            return best.detach()

        def f(self, outputs, labels):
            margin = logit_margin(outputs, labels)
            return torch.clamp(-margin if self.targeted else margin, min=-self.kappa)

    return CW


def autoattack(model, x, y, eps, version="standard", n_classes=None, seed=0, steps=100, eot_iter=20,
               square_queries=5000):
    """AutoAttack L∞ (Croce & Hein 2020) assembled from torchattacks 3.5.1 components.

    ``standard`` (deterministic models): APGD-CE, APGD-T, FAB-T, Square, each run on
    the points the previous ones did not break. ``rand`` (randomized models such as
    RPI): APGD-CE and APGD-DLR with ``eot_iter`` EOT samples per gradient.
    ``steps`` defaults to the original AutoAttack's 100 iterations: torchattacks'
    own ``AutoAttack`` class leaves its APGD/FAB at their default 10 steps, a weaker
    attack than the one papers report, so it is not used as is.
    ``n_classes``: the model's number of outputs (None: read from a forward of one image; given,
    it must match). APGD-T and FAB-T target the 9 most likely other classes, as the original does
    (``n_target_classes = 9``), or all of them with fewer than 10 classes; their targeted DLR loss
    needs at least 4 classes (``standard``), the DLR loss of ``rand`` at least 3.
    """
    check_eps(eps)
    if version not in ("standard", "rand"):
        raise ValueError(f"AutoAttack version must be 'standard' or 'rand', got {version!r}")
    check_count(steps, "steps", 1)
    check_count(eot_iter, "eot_iter", 1)
    check_count(square_queries, "square_queries", 1)
    check_count(seed, "seed")
    _check_image_batch("autoattack", x)
    # before the class-count forward: a NaN pixel failed in the model's quantizer, not as bad images
    check_labels(x, y)
    check_images(x)
    ta = _torchattacks()
    m = _Wrap(model, x.dtype)
    # torchattacks took n_classes - 1 targets: n_classes=10 for a 5-class model failed with 'index -6 is
    # out of bounds', and the class count of a 100-class model ran 99 targets, not the standard 9
    with kept_modes(m), torch.no_grad():
        classes = m.eval()(x[:1].float()).shape[-1]
    if n_classes is not None and check_count(n_classes, "n_classes", 1) != classes:
        raise ValueError(f"n_classes is {n_classes!r}, but the model has {classes} outputs")
    check_labels(x, y)
    check_label_range(y, classes)
    need = 4 if version == "standard" else 3
    if classes < need:
        raise ValueError(f"AutoAttack {version!r} needs a model with at least {need} classes (its "
                         f"{'targeted ' if version == 'standard' else ''}DLR loss), got {classes} outputs")
    targets = min(9, classes - 1)
    common = dict(norm="Linf", eps=eps, seed=seed, n_restarts=1)
    if version == "standard":  # torchattacks' n_classes: the number of targets + 1
        parts = [_build(ta.APGD, m, loss="ce", steps=steps, **common),
                 _build(ta.APGDT, m, steps=steps, n_classes=targets + 1, **common),
                 _build(ta.FAB, m, steps=steps, multi_targeted=True, n_classes=targets + 1, **common),
                 _build(ta.Square, m, n_queries=square_queries, **common)]
    else:
        parts = [_build(ta.APGD, m, loss="ce", steps=steps, eot_iter=eot_iter, **common),
                 _build(ta.APGD, m, loss="dlr", steps=steps, eot_iter=eot_iter, **common)]
    atk = _build(ta.MultiAttack, parts)
    return project_linf(_run(atk, x, y), x.detach(), eps)  # (x: an input that requires grad made the result so)


def apgd_eot(model, x, y, eps, *, loss="ce", steps=100, eot_iter=20, seed=0):
    """One component of AutoAttack ``rand``: APGD (torchattacks 3.5.1) with ``eot_iter`` gradient
    samples per step and ``loss`` "ce" or "dlr", run on *every* image, with what both ways of
    counting its result need. ``model``: a (randomized) callable ``x -> logits``.

    Returns a dict of tensors over the N images:

    * ``start_ok``: bool [N], the component's own first forward classified ``x`` correctly
      (AutoAttack's APGD attacks only those images and returns ``x`` for the others);
    * ``fooled``: bool [N], a forward during the run misclassified an iterate (APGD checks the
      last of the ``eot_iter`` samples at each step);
    * ``x_fooled``: the last such iterate (the random start where there is none);
    * ``x_best``: the iterate with the highest loss;
    * ``returned``: what AutoAttack's APGD returns for the image: ``x_fooled`` where
      ``start_ok & fooled``, else ``x``. Image for image where every image starts correct; else in
      distribution only (AutoAttack draws the random starts for the correct images alone).

    The random start is seeded with ``seed`` (as AutoAttack seeds each ``perturb``) inside a
    forked RNG, so the global RNG is untouched.
    """
    check_eps(eps)
    check_autograd()
    _check_image_batch("apgd_eot", x)
    check_labels(x, y)
    check_images(x)
    check_count(steps, "steps", 1)
    check_count(eot_iter, "eot_iter", 1)
    check_count(seed, "seed")
    if loss not in ("ce", "dlr"):
        raise ValueError(f"APGD loss must be 'ce' or 'dlr', got {loss!r}")
    ta = _torchattacks()
    x, y = x.detach(), y.detach()
    if len(x) == 0:  # (as every other attack; torchattacks failed to reshape the empty batch)
        none = torch.zeros(0, dtype=torch.bool, device=x.device)
        return {"start_ok": none, "fooled": none.clone(), "x_fooled": x.clone(), "x_best": x.clone(),
                "returned": x.clone()}
    atk = _build(ta.APGD, _Wrap(model, x.dtype), norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss=loss,
                  eot_iter=eot_iter)
    atk.set_device(x.device)
    with torch.no_grad():
        logits = model(x)
    if loss == "dlr" and logits.shape[-1] < 3:  # (torchattacks: 'index -3 is out of bounds')
        raise ValueError(f"APGD's DLR loss needs a model with at least 3 classes, got {logits.shape[-1]} outputs")
    check_label_range(y, logits.shape[-1])
    start_ok = logits.argmax(1) == y
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        # the generators it draws from, not torch.manual_seed: that one also reseeds every GPU, which
        # the fork does not give back (the global CUDA RNG of a machine with a GPU, for CPU images)
        torch.random.default_generator.manual_seed(seed)
        if x.device.type == "cuda":
            with torch.cuda.device(x.device):
                torch.cuda.manual_seed(seed)
        x_best, acc, _, x_fooled = (t.to(x.dtype) for t in atk.attack_single_run(x.float(), y))
    fooled = ~acc.bool()
    x_fooled = project_linf(x_fooled.detach(), x, eps)  # already inside; guards float drift
    keep = (start_ok & fooled).view(-1, *[1] * (x.dim() - 1))
    return {"start_ok": start_ok, "fooled": fooled, "x_fooled": x_fooled,
            "x_best": project_linf(x_best.detach(), x, eps), "returned": torch.where(keep, x_fooled, x)}


def cw_linf(model, x, y, tau=0.05, c_init=1e-3, steps=100, binary_steps=5, lr=0.01, kappa=0.0,
            lo=0.0, hi=1.0):
    """The paper's CW-L∞ variant (reference ``custom_attack/cw_inf.py``).

    Adam in tanh space on ``c·max(z_y - max_{j≠y} z_j + κ, 0) + Σ max(|δ| - τ, 0)``;
    τ is multiplied by 0.9 whenever no pixel exceeds it; ``c`` is set per sample
    by binary search (×10 while no success). Returns, per sample, the successful
    adversarial image with the smallest L∞ distortion, else the clean image. τ is a
    soft penalty, not a hard bound (the paper reports τ 0.05/0.1/0.2 as ε 8/12/16);
    project with :func:`project_linf` to score it as a bounded attack.

    As in the reference, one τ serves the whole batch and shrinks only once no image
    exceeds it, so an image's result can depend on its batch-mates. A τ per image
    (Carlini and Wagner's per-image loop) removes that, but shrinks sooner and
    attacked more weakly: on a small RPT CNN (MNIST-5k, 500 test images, ε = τ =
    0.1, c = 0.1, 100 steps) it left 70.4% / 50.6% accuracy at 4 / 2 bits against
    69.4% / 49.0% with the shared τ, at batch 250 and at batch 50 alike.
    """
    check_eps(tau, "tau", positive=True)  # τ <= 0 penalized every pixel at every step: a silently weak attack
    check_kappa(kappa)
    check_positive(c_init, "c_init")  # 0 stayed 0 under "x10 while no success": the clean images came back
    check_positive(lr, "lr")  # (0: the clean images came back, robust accuracy read as clean accuracy)
    check_count(steps, "steps", 1)
    check_count(binary_steps, "binary_steps", 1)
    check_autograd()
    check_labels(x, y)
    check_images(x, lo, hi)
    x = x.detach()
    n = x.shape[0]
    if n == 0:  # (as the other attacks: an empty batch is returned, not a max() error)
        return x.clone()
    c = torch.full((n,), c_init, device=x.device)
    c_lo = torch.zeros(n, device=x.device)
    c_hi = torch.full((n,), 1e10, device=x.device)
    # Adam and the tanh variables in float32 at least: in float16 Adam's eps (1e-8) is 0, so a zero
    # gradient stepped by NaN and a tiny one by -inf (returned images 0.99 from x), and atanh(0.999999) is inf
    xw = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    x_atanh = torch.atanh(((xw - lo) / (hi - lo) * 2 - 1).clamp(-1, 1) * 0.999999)
    best = x.clone()
    best_d = torch.full((n,), float("inf"), device=x.device, dtype=xw.dtype)  # (float32 failed float64 images)
    labels_checked = False
    for _ in range(binary_steps):
        delta = torch.zeros_like(xw, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=lr)
        t = tau
        succ_round = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            with torch.enable_grad():
                adv = (torch.tanh(delta + x_atanh) + 1) / 2 * (hi - lo) + lo
                logits = model(adv.to(x.dtype))
                if not labels_checked:  # (one_hot's own error named no argument)
                    check_label_range(y, logits.shape[-1])
                    labels_checked = True
                margin = logit_margin(logits, y)
                d = (torch.abs(adv - xw) - t).clamp(min=0).flatten(1).sum(1)
                loss = (c * (margin + kappa).clamp(min=0)).sum() + d.sum()
                # the gradient of delta only: loss.backward() filled the model's parameters' .grad too
                delta.grad, = torch.autograd.grad(loss, delta)
            opt.step()
            if d.max() == 0:
                t *= 0.9
            with torch.no_grad():
                ok = margin < -kappa if kappa > 0 else margin < 0
                linf = (adv - xw).abs().flatten(1).amax(1)
                better = ok & (linf < best_d)
                best[better] = adv.detach()[better].to(x.dtype)
                best_d[better] = linf[better]
                succ_round |= ok
        c_hi = torch.where(succ_round, torch.minimum(c_hi, c), c_hi)
        c_lo = torch.where(succ_round, c_lo, torch.maximum(c_lo, c))
        c = torch.where(c_hi < 1e9, (c_lo + c_hi) / 2, c * 10)
    return best.detach()


def bandits_td(model, x, y, eps, *, max_queries=1000, fd_eta=0.1, image_lr=None, online_lr=100.0,
               exploration=1.0, tile_size=4, loss=None, lo=0.0, hi=1.0, generator=None):
    """Bandits-TD (Ilyas, Engstrom, Madry 2019), L∞, black-box: only ``model``'s
    outputs are used (``torch.no_grad`` throughout).

    A time prior (the running gradient estimate) and a data prior (tiles of
    ``tile_size``×``tile_size`` pixels share one estimate) are updated with two
    antithetic queries per step; the image moves by ``image_lr·sign(prior)``
    (default ``eps/4``) and is projected onto the ε-ball. A sample stops once it
    is misclassified or after ``max_queries`` queries (2 per step).
    ``fd_eta``, ``online_lr`` and ``exploration`` are the original L∞ configuration's; it differs in
    ``max_queries`` (10,000), ``image_lr`` (0.01 at ε = 0.05: ε/5) and the meaning of
    ``tile_size``: the original's is the prior's side (50 cells over ImageNet's 299 px, tiles of
    about 6 px), here it is a tile's side in pixels (the prior has ``ceil(h / tile_size)`` cells per
    side, upsampled by nearest neighbour, so tiles are exactly ``tile_size`` px only where it
    divides ``h``: 28 px at 8 gives 7-px tiles).
    Returns ``(x_adv, queries)``: queries used per sample (int64 [N]).
    """
    check_eps(eps)
    check_count(max_queries, "max_queries")
    check_count(tile_size, "tile_size", 1)  # 0 was a ZeroDivisionError
    # 0 or NaN left every image where it was (a NaN prior has sign 0), a negative step descended the loss
    for value, name in ((fd_eta, "fd_eta"), (online_lr, "online_lr"), (exploration, "exploration")):
        check_positive(value, name)
    image_lr = eps / 4 if image_lr is None else check_eps(image_lr, "image_lr", positive=True)
    _check_image_batch("bandits_td", x)  # (its tiles are 2-D)
    check_labels(x, y)
    check_images(x, lo, hi)
    loss = loss or ce_loss
    x = x.detach()
    if len(x) == 0:
        return x.clone(), torch.zeros(0, dtype=torch.long, device=x.device)
    n, ch, h, w = x.shape
    ph, pw = math.ceil(h / tile_size), math.ceil(w / tile_size)
    prior = torch.zeros(n, ch, ph, pw, device=x.device)
    dim = prior[0].numel()
    up = lambda p: F.interpolate(p, size=(h, w), mode="nearest")  # noqa: E731
    x_adv = x.clone()
    queries = torch.zeros(n, dtype=torch.long, device=x.device)

    def eg_step(p, g, lr):
        # The original code's exponentiated-gradient step, real' = real·e^a / (real·e^a + (1 - real)·e^-a)
        # with real = (p + 1) / 2 and a = lr·g, in its closed form tanh(a + atanh(p)): the quotient's
        # exponentials overflowed to inf/inf = NaN for a > 88 (a confident model's loss differences),
        # so the model was queried with NaN images and the image stopped moving. p stays in [-1, 1].
        return torch.tanh(lr * g + torch.atanh(p))

    with torch.no_grad():
        z = model(x_adv)
        check_label_range(y, z.shape[-1])
        not_done = z.argmax(1) == y
        for _ in range(max_queries // 2):
            if not not_done.any():
                break
            noise = torch.randn(prior.shape, generator=generator,
                                device="cpu" if generator is not None else x.device).to(x.device)
            noise = exploration * noise / math.sqrt(dim)
            q1, q2 = up(prior + noise), up(prior - noise)
            n1 = q1.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            n2 = q2.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            # (the prior is float32: cast back, or a float16 model got float32 queries and failed)
            l1 = loss(model((x_adv + fd_eta * q1 / n1).to(x.dtype)), y)
            l2 = loss(model((x_adv + fd_eta * q2 / n2).to(x.dtype)), y)
            est = ((l1 - l2) / (fd_eta * exploration)).view(-1, 1, 1, 1) * noise
            prior = torch.where(not_done.view(-1, 1, 1, 1), eg_step(prior, est, online_lr), prior)
            step = image_lr * up(prior).sign() * not_done.view(-1, 1, 1, 1)
            x_adv = project_linf((x_adv + step).to(x.dtype), x, eps, lo, hi)
            queries += 2 * not_done.long()
            not_done = not_done & (model(x_adv).argmax(1) == y)
    return x_adv.detach(), queries

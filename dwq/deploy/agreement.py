"""How closely an integer model reproduces its fake-quant model: logits, top-1 and the codes themselves.

Both compute DESIGN.md's contract in float32, but not in the same order (the integer epilogue folds
scale, BN and bias into one multiply-add; the fake-quant model runs a float conv on dequantized values,
then the BN), so a value within float rounding of a quantization midpoint can round to neighbouring
codes on the two paths. That is the only source of difference: :func:`code_agreement` shows it per
layer (the share of input codes that differ, and by how much); :func:`compare` shows what reaches
the logits and lists every top-1 disagreement with the fake-quant model's top-2 margin, which is
small for such near-ties.
"""
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from dwq.deploy.integer_model import IntegerModel
from dwq.deploy.layers import IntConv2d, IntLinear
from dwq.deploy.operands import act_qparams
from dwq.nn import QConv2d, QLinear
from dwq.nn.modes import kept_modes
from dwq.nn.control import precision
from dwq.ops import quantize_act
from dwq.quant.precision import normalize_precision, normalize_set, precision_name

__all__ = ["compare", "code_agreement", "format_comparison"]


def _check_batch(fn: str, x: torch.Tensor, batch_size: int = 1, y: Optional[torch.Tensor] = None,
                 batch_name: str = "batch_size") -> None:
    # (else: "torch.cat(): expected a non-empty list", "range() arg 3 must not be zero", a size mismatch)
    # batch_name: the caller's name for its batch argument, for the message
    if len(x) == 0:
        raise ValueError(f"{fn}: x holds no images (shape {tuple(x.shape)}); give at least one")
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"{fn}: {batch_name} must be an int >= 1, got {batch_size!r}")
    if y is not None and tuple(y.shape) != (len(x),):
        raise ValueError(f"{fn}: y must be labels [{len(x)}] (one per image of x), got shape {tuple(y.shape)}")


@torch.no_grad()
def _logits(model, x, p, batch_size):
    with precision(model, p):
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def compare(fake_quant_model: nn.Module, int_model: IntegerModel, x: torch.Tensor,
            precisions: Optional[Sequence] = None, batch_size: int = 250,
            y: Optional[torch.Tensor] = None) -> Dict[str, dict]:
    """Eval-mode logits of both models on ``x`` (float32 [N, C, H, W]) at each precision (default: the
    integer model's set). Returns ``{precision name: {"n", "max_abs_diff", "mean_abs_diff", "logit_scale"
    (max |fake-quant logit|), "rel_max_diff" (max_abs_diff / logit_scale), "top1_agreement",
    "median_fq_margin" (the fake-quant model's median top-2 margin, for scale),
    "disagreements": [{"index", "fq_margin" (fake-quant top-1 minus its logit of the integer model's
    top-1), "max_abs_diff" (on that image)}]}}``; with labels ``y`` also "fq_accuracy" and "int_accuracy".
    """
    _check_batch("compare", x, batch_size, y)
    # ([] returned {} as if all agreed; a repeat was compared twice)
    ps = int_model.precisions if precisions is None else normalize_set(precisions, "compare: precisions")
    out = {}
    for p in ps:
        with kept_modes(fake_quant_model):  # a model checked in training goes on training after it
            fake_quant_model.eval()
            a = _logits(fake_quant_model, x, p, batch_size)
        b = _logits(int_model, x, p, batch_size)
        d = (a - b).abs()
        ta, tb = a.argmax(1), b.argmax(1)
        bad = (ta != tb).nonzero().flatten().tolist()
        scale = a.abs().max().item()
        top2 = a.topk(min(2, a.shape[1]), dim=1).values
        out[precision_name(p)] = {
            "n": len(x), "max_abs_diff": d.max().item(), "mean_abs_diff": d.mean().item(), "logit_scale": scale,
            "rel_max_diff": d.max().item() / scale if scale else 0.0,
            "top1_agreement": (ta == tb).float().mean().item(),
            "median_fq_margin": (top2[:, 0] - top2[:, -1]).median().item(),
            "disagreements": [{"index": i, "fq_margin": (a[i, ta[i]] - a[i, tb[i]]).item(),
                               "max_abs_diff": d[i].max().item()} for i in bad]}
        if y is not None:
            out[precision_name(p)].update(fq_accuracy=(ta == y).float().mean().item(),
                                          int_accuracy=(tb == y).float().mean().item())
    return out


@torch.no_grad()
def code_agreement(fake_quant_model: nn.Module, int_model: IntegerModel, x: torch.Tensor, p) -> Dict[str, dict]:
    """The input codes of every quantized layer on both paths at precision ``p``: ``{layer: {"codes",
    "differ" (how many differ), "max_step" (largest |difference|, in codes)}}``, layers by their name in
    the fake-quant model. On the fake-quant path the codes are the layer's input quantized with its
    own scale and zero point, exactly what its fake quantizer rounds. Empty at full precision (no codes)."""
    _check_batch("code_agreement", x)
    q = normalize_precision(p)
    if q is None:
        with precision(int_model, p), precision(fake_quant_model, p):
            pass  # (in both sets, as any other precision must be: else "fp" gave {} where 16 was refused)
        return {}
    seen_fq, seen_int = {}, {}
    hooks = []

    def fq_hook(name, layer):
        def hook(mod, inputs):
            s, z, bits = act_qparams(mod, q, name)
            seen_fq[name] = quantize_act(inputs[0].float().contiguous(), s, z, bits).to(torch.int32)
        return hook

    def int_hook(layer):
        def hook(mod, inputs):
            seen_int[mod.source] = mod.plan.input_codes(inputs[0]).to(torch.int32)
        return hook

    for name, m in fake_quant_model.named_modules():
        if isinstance(m, (QConv2d, QLinear)):
            hooks.append(m.register_forward_pre_hook(fq_hook(name, m)))
    for m in int_model.modules():
        if isinstance(m, (IntConv2d, IntLinear)):
            hooks.append(m.register_forward_pre_hook(int_hook(m)))
    try:
        with kept_modes(fake_quant_model), precision(fake_quant_model, p):
            fake_quant_model.eval()
            fake_quant_model(x)
        with precision(int_model, p):
            int_model(x)
    finally:
        for h in hooks:
            h.remove()
    missing = [name for name in seen_fq if name not in seen_int]
    if missing:  # (a comparison that dropped them named the wrong layer as the first to differ)
        names = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise RuntimeError(f"code_agreement: {len(missing)} layer(s) quantized on the fake-quant model gave no input "
                           f"codes on the integer model ({names})")
    out = {}
    for name, c in seen_fq.items():
        diff = (c - seen_int[name]).abs()
        out[name] = {"codes": c.numel(), "differ": int((diff > 0).sum()), "max_step": int(diff.max())}
    return out


def format_comparison(cmp: Dict[str, dict]) -> str:
    """A plain-text table of :func:`compare`'s result."""
    lines = [f"{'precision':>9} {'n':>6} {'top-1 agree':>11} {'max |diff|':>10} {'/ max|logit|':>12} "
             f"{'mean |diff|':>11}"]
    for p, r in cmp.items():
        lines.append(f"{p:>9} {r['n']:>6} {100 * r['top1_agreement']:>10.2f}% {r['max_abs_diff']:>10.2e} "
                     f"{r['rel_max_diff']:>12.2e} {r['mean_abs_diff']:>11.2e}")
        for d in r["disagreements"]:
            lines.append(f"{'':>9} image {d['index']}: fake-quant margin {d['fq_margin']:.3g} between the two "
                         f"classes (median top-2 margin {r['median_fq_margin']:.3g}), largest logit difference "
                         f"{d['max_abs_diff']:.3g}")
    return "\n".join(lines)

"""``convert``: a trained fake-quant model -> an :class:`~dwq.deploy.IntegerModel` with one plan per
precision, computing what the fake-quant model computes in eval mode (up to float rounding).

The model's forward is traced (``torch.fx``, the ``dwq.nn`` layers kept whole) and rewritten:

* every ``QConv2d``/``QLinear`` becomes one fused integer op; per precision its weights are quantized
  and bit-packed once, and a batch norm that only it feeds, then a ReLU, go into the epilogue
  (``scale * acc``, folded BN and bias, ReLU);
* if that result (after max pooling or flattening, which commute with quantization because it is
  monotonic) feeds exactly one quantized layer, the epilogue requantizes to that layer's input
  quantization and the two exchange integer codes (e.g. conv -> BN -> ReLU -> maxpool -> conv; in a
  PreAct block conv1's epilogue folds bn2 + ReLU and emits conv2's input codes);
* otherwise the result is float32 (a residual add, a layer kept in float, several consumers);
* a batch norm not absorbed becomes a per-precision float affine (with the ReLU only it feeds), which
  also emits codes when its only consumer is a quantized layer (a PreAct block's bn1 + ReLU);
* the layers the model's ``QuantPolicy`` keeps in float (stem, shortcuts, classifier) stay float.

At full precision (``None`` in the set) every quantized layer runs its float weights with the BN
folded in, i.e. the float model itself (up to float rounding), so a set like ``[4, 8, None]`` works.
The converter calls only ``dwq.ops`` and never branches on the device.
"""
import json
import operator
import warnings
from typing import Optional, Sequence

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from dwq.deploy.integer_model import INPUT, IntegerModel
from dwq.deploy.layers import (FloatAffine, FloatConv2d, FloatLinear, FloatNormalize, IntConv2d, IntLinear,
                               normalize_names, quant_plan_tensors)
from dwq.deploy.operands import ConversionError, act_qparams, bn_affine, weight_codes
from dwq.deploy.tracing import INPLACE_ADD, forward_override, trace
from dwq.models.common import Normalize
from dwq.nn import QConv2d, QLinear, SwitchableBatchNorm2d
from dwq.nn.control import get_precision, precision_set, set_precision
from dwq.quant import normalize_precision, normalize_set, precision_name
from dwq.quant.precision import precision_list

__all__ = ["convert", "calibrated_precisions", "ConversionError"]

# What each supported graph node is; anything else is named in a ConversionError.
_MODULE_KINDS = [((QConv2d, QLinear), "q"), ((SwitchableBatchNorm2d, nn.BatchNorm2d), "bn"), ((nn.ReLU,), "relu"),
                 ((nn.MaxPool2d,), "max_pool2d"), ((nn.AvgPool2d,), "avg_pool2d"),
                 ((nn.AdaptiveAvgPool2d,), "adaptive_avg_pool2d"), ((nn.Flatten,), "flatten"),
                 ((nn.Identity, nn.Dropout), "identity"), ((Normalize,), "normalize"), ((nn.Conv2d,), "conv"),
                 ((nn.Linear,), "linear")]
_FUNCTION_KINDS = {F.relu: "relu", torch.relu: "relu", F.max_pool2d: "max_pool2d", torch.max_pool2d: "max_pool2d",
                   F.avg_pool2d: "avg_pool2d", F.adaptive_avg_pool2d: "adaptive_avg_pool2d",
                   torch.flatten: "flatten", operator.add: "add", torch.add: "add"}
_METHOD_KINDS = {"relu": "relu", "flatten": "flatten", "add": "add"}
# Ops that run on codes unchanged: quantization is monotonic (max commutes with it) and they move no values.
_CODE_SAFE = ("max_pool2d", "flatten", "identity")


def _where(node: fx.Node, modules) -> str:
    if node.op == "call_module":
        return f"layer '{node.target}' ({type(modules[node.target]).__name__})"
    stack = node.meta.get("nn_module_stack") or {}
    inside = f" in '{list(stack)[-1]}'" if stack else ""
    name = getattr(node.target, "__name__", str(node.target))
    return f"'{name}' ({node.op}){inside}"


def _inplace(node: fx.Node, modules) -> bool:
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    return node.op == "call_function" and bool(node.kwargs.get("inplace", len(node.args) > 1 and node.args[1]))


def _kind(node: fx.Node, modules) -> str:
    if node.op in ("placeholder", "output"):
        return node.op
    if node.op == "call_module":
        m = modules[node.target]
        for types, kind in _MODULE_KINDS:
            if isinstance(m, types):
                differs = forward_override(m, next(t for t in types if isinstance(m, t)))
                if differs is not None:
                    raise ConversionError(f"cannot convert {_where(node, modules)}: it overrides {differs}, which "
                                          f"convert would not run; write its computation with the supported layers")
                return kind
    elif node.op == "call_function" and node.target in _FUNCTION_KINDS:
        return _FUNCTION_KINDS[node.target]
    elif node.op == "call_method" and node.target in _METHOD_KINDS:
        return _METHOD_KINDS[node.target]
    raise ConversionError(f"cannot convert {_where(node, modules)}: dwq.deploy supports dwq.nn QConv2d/QLinear/"
                          f"SwitchableBatchNorm2d, BatchNorm2d, Conv2d, Linear, ReLU, max/avg pooling, flatten, "
                          f"residual adds and dwq.models.Normalize")


def _only_user(node: fx.Node) -> Optional[fx.Node]:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].args and users[0].args[0] is node else None


def _fn_kwargs(node: fx.Node, modules, kind: str) -> dict:
    """The JSON keyword arguments of a pooling / flatten / relu node (module attributes or call arguments)."""
    def plain(v):
        return list(v) if isinstance(v, tuple) else v

    if node.op == "call_module":
        m = modules[node.target]
        if kind == "max_pool2d":
            if m.return_indices:
                raise ConversionError(f"cannot convert {_where(node, modules)}: return_indices=True")
            return dict(kernel_size=plain(m.kernel_size), stride=plain(m.stride), padding=plain(m.padding),
                        dilation=plain(m.dilation), ceil_mode=m.ceil_mode)
        if kind == "avg_pool2d":
            return dict(kernel_size=plain(m.kernel_size), stride=plain(m.stride), padding=plain(m.padding),
                        ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                        divisor_override=m.divisor_override)
        if kind == "adaptive_avg_pool2d":
            return dict(output_size=plain(m.output_size))
        if kind == "flatten":
            return dict(start_dim=m.start_dim, end_dim=m.end_dim)
        return {}
    import inspect

    from dwq.deploy.integer_model import FUNCTIONS

    sig = inspect.signature(FUNCTIONS[kind])
    args, kwargs = list(node.args[1:]), dict(node.kwargs)
    kwargs.pop("inplace", None)
    if kind == "max_pool2d" and kwargs.pop("return_indices", False):
        raise ConversionError(f"cannot convert {_where(node, modules)}: return_indices=True")
    if kind == "add":
        return {}
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError as e:
        raise ConversionError(f"cannot convert {_where(node, modules)}: {e}") from None
    out = {k: plain(v) for k, v in bound.arguments.items() if k != "x"}
    for k, v in out.items():
        if isinstance(v, fx.Node):
            raise ConversionError(f"cannot convert {_where(node, modules)}: argument {k} is computed by the model")
    return out


def _bn_at(bn: nn.Module, p) -> nn.BatchNorm2d:
    return bn.bn[bn.precisions.index(p)] if isinstance(bn, SwitchableBatchNorm2d) else bn


def _check_qlayer(layer: nn.Module, name: str):
    if not layer.quantize_input:
        raise ConversionError(f"layer '{name}': quantize_input=False (its input is quantized elsewhere) is not "
                              f"supported")
    if isinstance(layer, QConv2d):
        if layer.groups != 1 or tuple(layer.dilation) != (1, 1) or layer.padding_mode != "zeros" \
                or isinstance(layer.padding, str):
            raise ConversionError(f"layer '{name}': the integer conv supports groups=1, dilation=1 and numeric zero "
                                  f"padding, got groups={layer.groups}, dilation={layer.dilation}, "
                                  f"padding={layer.padding!r}, padding_mode={layer.padding_mode!r}")


def _own(t: torch.Tensor) -> torch.Tensor:
    """A float32 copy of a source tensor: the integer model is a snapshot, so later edits of the source
    (training on) do not reach it, nor the reverse (``.float()`` of a float32 tensor is the tensor)."""
    return t.detach().to(torch.float32, copy=True)


def _int_layer(layer, name: str, ps, bn, relu: bool, target, target_name):
    """An IntConv2d/IntLinear for ``layer`` at every precision of ``ps`` (normalized), with ``bn`` (a BN
    module or None) and ``relu`` in the epilogue and requantization to ``target``'s input if given."""
    is_conv = isinstance(layer, QConv2d)
    bias = None if layer.bias is None else _own(layer.bias)
    plans, tensors = [], {}
    for i, p in enumerate(ps):
        a = b = None
        if bn is not None:
            a, b = bn_affine(_bn_at(bn, p), f"{name} (its batch norm)")
        if p is None:
            w = _own(layer.weight)
            fb = bias
            if a is not None:
                w = w * a.view(-1, *[1] * (w.dim() - 1))
                fb = b if bias is None else bias * a + b
            plan_t = {"weight": w.contiguous()}
            if fb is not None:
                plan_t["bias"] = fb
            plans.append({"float": True, "relu": relu, "bias": fb is not None})
        else:
            sx, zx, abits = act_qparams(layer, p, f"layer '{name}'")
            codes, sw, zw, wbits = weight_codes(layer, p, f"layer '{name}'")
            affine_bias = bias if a is None else (b if bias is None else bias * a + b)
            out_scale = out_zp = out_bits = None
            if target is not None:
                out_scale, out_zp, out_bits = act_qparams(target, p, f"layer '{target_name}'")
            plan_t = quant_plan_tensors(codes, sw, zw, wbits, sx, zx, a, affine_bias, out_scale, out_zp)
            plans.append({"w_bits": wbits, "a_bits": abits, "relu": relu, "out_bits": out_bits,
                          "affine_scale": a is not None, "affine_bias": affine_bias is not None})
        tensors.update({f"plans.{i}.{k}": v for k, v in plan_t.items()})
    cfg = {"source": name, "precisions": normalize_names(ps), "plans": plans}
    if is_conv:
        cfg.update(in_channels=layer.in_channels, out_channels=layer.out_channels,
                   kernel_size=list(layer.kernel_size), stride=list(layer.stride), padding=list(layer.padding))
        return IntConv2d(cfg, tensors)
    cfg.update(in_features=layer.in_features, out_features=layer.out_features)
    return IntLinear(cfg, tensors)


def _float_affine(bn, name: str, ps, relu: bool, target, target_name) -> FloatAffine:
    rows = [bn_affine(_bn_at(bn, p), name) for p in ps]
    cfg = {"source": name, "precisions": normalize_names(ps), "channels": rows[0][0].numel(), "relu": relu}
    tensors = {"scale": torch.stack([r[0] for r in rows]), "bias": torch.stack([r[1] for r in rows])}
    if target is not None:
        qp = [act_qparams(target, p, f"layer '{target_name}'") if p is not None else None for p in ps]
        cfg["out_bits"] = [None if q is None else q[2] for q in qp]
        tensors["out_scale"] = torch.cat([torch.ones(1) if q is None else q[0].float().cpu() for q in qp])
        tensors["out_zero_point"] = torch.cat([torch.zeros(1, dtype=torch.int32) if q is None else q[1].int().cpu()
                                               for q in qp]).to(tensors["scale"].device)
        tensors["out_scale"] = tensors["out_scale"].to(tensors["scale"].device)
    return FloatAffine(cfg, tensors)


def _float_layer(m: nn.Module, name: str) -> nn.Module:
    t = {"weight": _own(m.weight)}
    if m.bias is not None:
        t["bias"] = _own(m.bias)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ConversionError(f"layer '{name}': padding={m.padding!r}, padding_mode={m.padding_mode!r} "
                                  f"is not supported")
        return FloatConv2d({"source": name, "in_channels": m.in_channels, "out_channels": m.out_channels,
                            "kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding),
                            "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None}, t)
    return FloatLinear({"source": name, "in_features": m.in_features, "out_features": m.out_features,
                        "bias": m.bias is not None}, t)


def _layer_keys(nodes) -> dict:
    """Each node's key in the integer model's ModuleDict of layers: its name, unless nn.ModuleDict has an
    attribute of that name (a layer called ``update`` or ``keys``, which it refuses as a key); then the
    name with "_" added until it is neither such a name nor another node's."""
    names = {n.name for n in nodes}
    keys = {}
    for n in nodes:
        k = n.name
        while hasattr(nn.ModuleDict, k) or (k != n.name and k in names):
            k += "_"
        keys[n] = k
    return keys


def _check_in_set(model: nn.Module, precisions) -> None:
    allowed = [normalize_precision(p) for p in precision_set(model)]
    for p in precisions:
        if normalize_precision(p) not in allowed:
            raise ConversionError(f"precision {precision_name(p)} is not in the model's precision set "
                                  f"[{', '.join(precision_name(q) for q in allowed)}]")


def _warn_untrained_bn(model: nn.Module, precisions) -> None:
    # Folded into the epilogue, such a branch's initial statistics would give a poor integer model
    # silently; the fake-quant model warns at its eval forward, the converter says it once.
    untrained = {name for m in model.modules() if isinstance(m, SwitchableBatchNorm2d)
                 for name in m.untrained_precisions()}
    never = [name for name in map(precision_name, precisions) if name in untrained]
    if never:
        warnings.warn(f"convert: the switchable batch norm never saw a training batch at precision(s) "
                      f"{', '.join(never)}; their folded statistics are the initial ones (mean 0, variance 1)")


def calibrated_precisions(model: nn.Module, precisions: Optional[Sequence] = None) -> list:
    """The precisions of ``precisions`` (default: the model's set) at which every quantized layer has an
    activation range in eval mode (its own, or the one observed over all training batches; full
    precision needs none)."""
    ps = precision_set(model) if precisions is None else precision_list(precisions)
    _check_in_set(model, ps)
    layers = [m for m in model.modules() if isinstance(m, (QConv2d, QLinear))]
    out = []
    for p in ps:
        q = normalize_precision(p)
        if q is None or all(m.input_quant.eval_slot(q) is not None for m in layers):
            out.append(p)
    return out


def convert(model: nn.Module, precisions: Optional[Sequence] = None, info: Optional[dict] = None) -> IntegerModel:
    """The integer model of ``model`` at each precision of ``precisions`` (default: the model's set).

    model: a model built from ``dwq.nn`` layers (the ``dwq.models`` families or your own), with integer
        zero points, whose activation ranges were set by training at every precision converted.
    precisions: a subset of the model's precision set, in the order the integer model keeps
        (``None``/"fp" = full precision, then the float path of every layer).
    info: extra JSON to keep in the model's ``info`` (e.g. ``{"network": ..., "input_size": [C, H, W]}``),
        held as the artifact's JSON holds it (keys as strings, tuples as lists).

    The result starts at ``model``'s current precision when ``precisions`` holds it (else at the set's
    last entry, as any dwq model) and computes, at every precision, the fake-quant model's eval-mode
    forward up to float rounding (codes can differ by one where a value lies within rounding of a
    quantization midpoint).
    ConversionError naming the layer for anything it cannot convert or a precision outside the set.
    """
    info = _checked_info(info)
    ps = normalize_set(precisions if precisions is not None else precision_set(model))
    _check_in_set(model, ps)
    gm = trace(model)
    modules = dict(model.named_modules())
    nodes = list(gm.graph.nodes)
    kinds = {n: _kind(n, modules) for n in nodes}
    placeholders = [n for n in nodes if kinds[n] == "placeholder"]
    if len(placeholders) != 1:
        raise ConversionError(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; convert supports one")

    order = {n: i for i, n in enumerate(nodes)}
    for n in nodes:
        if n.op in ("call_module", "call_function", "call_method") and not n.args:
            raise ConversionError(f"cannot convert {_where(n, modules)}: its input is passed by keyword "
                                  f"({', '.join(n.kwargs)}); convert reads the input as the first positional argument")
        relu = kinds[n] == "relu" and _inplace(n, modules)
        if (relu or n.meta.get(INPLACE_ADD)) and isinstance(n.args[0], fx.Node):
            # (in graph order: the aliases are a set of nodes, hashed by address, whose first was any reader)
            readers = (u for a in _aliases(n.args[0], kinds) for u in a.users if u is not n and order[u] > order[n])
            later = sorted(readers, key=order.get)
            if later:
                what, fix = ("ReLU", "use inplace=False") if relu else ("add (+=)", "write a = a + b")
                raise ConversionError(f"cannot convert {_where(n, modules)}: an in-place {what} whose input is read "
                                      f"again after it (by {later[0].name!r}), which eager PyTorch feeds the {what}'s "
                                      f"output and the integer model would not; {fix}")
        if kinds[n] == "q":
            _check_qlayer(modules[n.target], n.target)

    # Fusion: each quantized layer absorbs the BN and ReLU only it feeds; a BN left in float absorbs the
    # ReLU only it feeds; either sends codes to the next quantized layer when that is its only consumer.
    absorbed = {}   # BN / ReLU node -> the node of the layer that computes it
    fused = {}      # quantized layer or BN node -> (bn module or None, relu, codes target node or None)
    for n in nodes:
        if kinds[n] not in ("q", "bn") or n in absorbed:
            continue
        end, bn = n, (modules[n.target] if kinds[n] == "bn" else None)
        u = _only_user(end)
        if kinds[n] == "q" and u is not None and kinds[u] == "bn":
            bn, end = modules[u.target], u
            absorbed[u] = n
        u = _only_user(end)
        relu = u is not None and kinds[u] == "relu"
        if relu:
            end = u
            absorbed[u] = n
        while (u := _only_user(end)) is not None and kinds[u] in _CODE_SAFE:
            end = u
        target = u if u is not None and kinds[u] == "q" and modules[u.target].quantize_input else None
        fused[n] = (bn, relu, target)

    layers, program = {}, []
    value = {}  # fx node -> the program value holding it
    key = _layer_keys(nodes)

    def ref(n, i):
        a = n.args[i]
        if isinstance(a, fx.Node):
            return value[a]
        # (named the value alone: in a large model nothing said where the `+ 1` was)
        raise ConversionError(f"cannot convert {_where(n, modules)}: its argument {i} is a constant "
                              f"({type(a).__name__} {a!r:.40}), not a value the model computes")

    for n in nodes:
        k = kinds[n]
        if k == "placeholder":
            value[n] = INPUT
        elif k == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node):
                raise ConversionError(f"{type(model).__name__}.forward must return one tensor")
            output = value[out]
        elif n in absorbed:
            value[n] = value[absorbed[n]]
        elif k == "identity":
            value[n] = ref(n, 0)
        elif k in ("q", "bn"):
            bn, relu, target = fused[n]
            tgt = (None, None) if target is None else (modules[target.target], target.target)
            if k == "q":
                layers[key[n]] = _int_layer(modules[n.target], n.target, ps, bn, relu, *tgt)
            else:
                layers[key[n]] = _float_affine(bn, n.target, ps, relu, *tgt)
            program.append({"out": n.name, "call": key[n], "args": [ref(n, 0)]})
            value[n] = n.name
        elif k in ("conv", "linear", "normalize"):
            m = modules[n.target]
            if k == "normalize":
                layers[key[n]] = FloatNormalize({"source": n.target, "channels": m.mean.numel()},
                                                {"mean": _own(m.mean), "std": _own(m.std)})
            else:
                layers[key[n]] = _float_layer(m, n.target)
            program.append({"out": n.name, "call": key[n], "args": [ref(n, 0)]})
            value[n] = n.name
        else:  # relu, add, pooling, flatten
            if k == "add" and (len(n.args) != 2 or n.kwargs):
                raise ConversionError(f"cannot convert {_where(n, modules)}: only a + b of two tensors")
            args = [ref(n, 0)] + ([ref(n, 1)] if k == "add" else [])
            program.append({"out": n.name, "fn": k, "args": args, "kwargs": _fn_kwargs(n, modules, k)})
            value[n] = n.name
    _mark_inplace(program, output)
    meta = {"model_class": type(model).__name__, "precisions": normalize_names(ps),
            "quantizer": {"weights": "per output channel, min/max of the weights, integer zero point",
                          "activations": "per tensor, running min/max of each precision, integer zero point",
                          "rounding": "half to even"},
            "float_checkpoint_bytes": sum(t.numel() * t.element_size() for t in model.state_dict().values()
                                          if t.is_floating_point())}
    meta.update(info)
    try:
        int_model = IntegerModel(layers, program, output, meta)
    except ValueError as e:  # (a model returning its input, say: convert promises ConversionError)
        raise ConversionError(f"{type(model).__name__}: {e}") from None
    try:  # the model's current precision, where the set has it (else the set's last, as a new model)
        current = normalize_precision(get_precision(model))
    except ValueError:  # (its layers are at different precisions: none to carry over)
        current = ()
    if current in ps:
        set_precision(int_model, current)
    _warn_untrained_bn(model, ps)  # (once converted: a model refused for another cause said it first, then the cause)
    return int_model.to(next(iter(model.buffers())).device).eval()


_ALIAS_KINDS = ("identity", "flatten")


def _aliases(node, kinds) -> set:
    """The nodes whose tensors share ``node``'s storage in eager PyTorch: back through identities
    (nn.Identity, eval-mode Dropout) and flattens to the tensor that owns it, then every identity or
    flatten of that tensor, so an in-place ReLU on any of them is seen by all of their readers."""
    root = node
    while kinds[root] in _ALIAS_KINDS and root.args and isinstance(root.args[0], fx.Node):
        root = root.args[0]
    group, todo = set(), [root]
    while todo:
        a = todo.pop()
        if a not in group:
            group.add(a)
            todo += [u for u in a.users if kinds[u] in _ALIAS_KINDS]
    return group


_RECORDED = ("model_class", "precisions", "quantizer", "float_checkpoint_bytes")


def _checked_info(info) -> dict:
    """``info`` as the artifact's JSON header will hold it (keys as strings: {7: "x"} is {"7": "x"}, which
    the model then holds too, so that a saved and loaded model equals the converted one); ValueError
    before any work for ``info`` that is no dict, would overwrite what convert records (an artifact
    whose "precisions" disagreed with its layers), or that the artifact cannot store."""
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise ValueError(f"convert: info must be a dict of JSON values, got {type(info).__name__}")
    clash = sorted(k for k in info if k in _RECORDED)
    if clash:
        raise ValueError(f"convert: info key(s) {clash} are recorded by convert itself; choose other names")
    for key, value in info.items():
        try:
            json.dumps({key: value}, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"convert: info[{key!r}] cannot be stored in the artifact's JSON header ({e})") from None
    stored = json.loads(json.dumps(info, allow_nan=False))
    if len(stored) != len(info):  # (JSON keeps one of 7 and "7")
        raise ValueError(f"convert: info keys {sorted(map(str, info))} repeat once written as JSON strings")
    return stored


def _mark_inplace(program, output):
    """ReLU and add may overwrite their first argument when nothing else reads it and it is a fresh
    tensor of the program (not the caller's input, not a view made by flatten)."""
    uses = {}
    for s in program:
        for a in s["args"]:
            uses[a] = uses.get(a, 0) + 1
    fresh = {s["out"] for s in program if s.get("fn") != "flatten"}
    for s in program:
        if s.get("fn") in ("relu", "add"):
            a = s["args"][0]
            if a in fresh and uses[a] == 1 and a != output and (s["fn"] == "relu" or s["args"][1] != a):
                s["inplace"] = True

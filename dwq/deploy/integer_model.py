"""The integer random-precision model: a straight-line program over the layers of
:mod:`dwq.deploy.layers` and a few functions (ReLU, residual add, pooling, flatten).

Between two quantized layers the values are integer codes (the first layer's epilogue requantizes to
the second's input quantization; max pooling and flattening run on the codes, exact because
quantization is monotonic); everywhere else they are float32, channels-last. The program and the
layers' configs are JSON and their tensors a flat dict, which is what :mod:`dwq.deploy.artifact`
saves: no pickle, no Python code in an artifact.

Program step (JSON)::

    {"out": "layer1_0_conv1", "call": "layer1_0_conv1", "args": ["relu"]}          # a layer
    {"out": "add", "fn": "add", "args": ["layer1_0_conv2", "conv1"], "kwargs": {}, "inplace": true}

``args`` name earlier values (``"input"`` is the model input); ``kwargs`` are JSON constants. The
program is checked when the model is built (names computed before use, one argument per layer call,
each function's arguments as its torch counterpart takes them, every layer on one precision set).
It then runs with each residual ``add`` fused with what follows it (its ``relu``, and the quantization
of the layer that reads the result first: ``IntegerModel._fuse_residuals``), the same values in fewer
passes over memory; the program itself is not changed.
"""
import functools
import inspect
from typing import Dict, List

import torch
from torch import nn
from torch.nn import functional as F

from dwq.deploy.layers import FloatAffine, IntConv2d, _IntLayer, check_int, check_pair, is_int, layer_from_config
from dwq.nn.control import PrecisionModule, get_precision, precision_set, set_precision
from dwq.ops.qgemm import conv_output_hw
from dwq.ops.residual import add_affine_quantize_, add_relu_, add_relu_quantize_, qconv2d_residual
from dwq.quant.quantizers import check_flag
from dwq.quant.precision import parse_precision, precision_name

__all__ = ["IntegerModel", "FUNCTIONS", "INPUT"]

INPUT = "input"


def _relu(x, inplace=False):
    return torch.relu_(x) if inplace else torch.relu(x)


def _broadcasts_into(b_shape, a_shape) -> bool:
    """Whether b broadcasts to a's shape, so that a + b has a's shape (torch.broadcast_shapes, without
    its symbolic-shape machinery: it cost more than the add itself at batch 1)."""
    if len(b_shape) > len(a_shape):
        return False
    return all(bd == ad or bd == 1 for bd, ad in zip(reversed(b_shape), reversed(a_shape)))


def _can_add_into(a, b) -> bool:
    # convert marks an add in place without knowing shapes: a broadcast b may be the larger one
    return _broadcasts_into(b.shape, a.shape) and torch.result_type(a, b) == a.dtype


def _add(a, b, inplace=False):
    return a.add_(b) if inplace and _can_add_into(a, b) else a + b


def _add_relu(a, b, inplace=False):
    """An ``add`` whose value only the next step's ``relu`` uses, run as one step (the program keeps
    both): one pass over memory where the add may write a, else the add's new tensor rectified."""
    return add_relu_(a, b) if inplace and _can_add_into(a, b) else torch.relu_(a + b)


class _ResidualInto:
    """An in-place residual ``add`` (with ``relu``: :func:`_add_relu`'s step) whose result ``reader``
    reads first: returns (the result, what the reader's step takes). Where the reader quantizes, that is
    made in the same pass: a quantized layer's input codes after ``add`` + ``relu``
    (:func:`dwq.ops.add_relu_quantize_`), or a float batch norm's output codes after a plain ``add`` (a
    pre-activation block: :func:`dwq.ops.add_affine_quantize_`; the batch norm's step then passes them
    on, :class:`_AffineOrCodes`). Otherwise (the reader's float precisions, an add that cannot write
    a) it is the result itself."""

    __slots__ = ("reader", "relu")

    def __init__(self, reader, relu: bool):
        self.reader, self.relu = reader, relu

    def __call__(self, a, b):
        if not _can_add_into(a, b):
            x = torch.relu_(a + b) if self.relu else a + b
            return x, x
        if self.relu:
            plan, args = self.reader._call()
            if args is not None:
                return a, add_relu_quantize_(a, b, plan.x_scale, plan.x_zero_point, plan.a_bits)
            x = add_relu_(a, b)
            return x, x
        args = self.reader.codes_args()
        if args is not None:
            return a, add_affine_quantize_(a, b, *args)
        x = a.add_(b)
        return x, x


def _hooked(m: nn.Module) -> bool:
    """Whether calling ``m`` runs forward hooks (its own or global ones)."""
    g = nn.modules.module
    return bool(m._forward_pre_hooks or m._forward_hooks or g._global_forward_pre_hooks or g._global_forward_hooks)


class _ConvResidualInto:
    """A quantized conv whose float output only a :class:`_ResidualInto` step (add + relu, a quantized
    reader) takes, run as one step: :func:`dwq.ops.qconv2d_residual` makes relu(conv + b) and the
    reader's codes in the conv's epilogue, where the conv wrote its output and the add read it back.
    Otherwise (either layer at a float precision, a conv that ReLUs or requantizes itself, a b of
    another shape or dtype, or a conv with forward hooks, which its call runs and the fused step would
    skip: :func:`dwq.deploy.code_agreement` reads a conv's input codes through one) the conv and then
    that step, as before."""

    __slots__ = ("conv", "then")

    def __init__(self, conv, then: "_ResidualInto"):
        self.conv, self.then = conv, then

    def __call__(self, x, b):
        c = self.conv
        if _hooked(c):
            return self.then(c(x), b)
        plan, args = c._call()
        rplan, rargs = self.then.reader._call()
        if (args is not None and rargs is not None and not plan.relu and plan.out_scale is None and x.dim() == 4
                and x.shape[1] == c.in_channels and b.dtype == torch.float32 and b.shape == self._out_shape(x)):
            # (args[:10]: IntConv2d._op_args from x_scale to affine_bias, qconv2d_residual's conv arguments)
            return qconv2d_residual(plan.input_codes(x), *args[:10], b, True, rplan.x_scale, rplan.x_zero_point,
                                    rplan.a_bits)
        return self.then(c(x), b)

    def _out_shape(self, x):
        c = self.conv
        return (x.shape[0], c.out_channels, *conv_output_hw(x.shape[2], x.shape[3], c.kernel_size, c.stride, c.padding))


class _AffineOrCodes:
    """The step of a float batch norm that a :class:`_ResidualInto` step feeds: that step may have made
    the batch norm's output codes already (then they pass), else the batch norm runs on the float sum."""

    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x):
        return self.layer(x) if x.is_floating_point() else x


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    if x.is_floating_point():
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    # Codes: max commutes with (monotonic) quantization, so pooling codes is exact.
    k = _pair(kernel_size)
    s = k if stride is None or stride == [] else _pair(stride)
    B, C, H, W = x.shape
    oh, ow = H // k[0], W // k[1]
    if k == s and _pair(padding) == (0, 0) and _pair(dilation) == (1, 1) and not ceil_mode and oh > 0 and ow > 0:
        # Non-overlapping windows: the elementwise maximum of the k*k strided views, in the input's
        # own layout (channels-last codes stay channels-last for the next integer conv). torch's
        # pooling and amax reductions over these views took 5-45x longer.
        if k == (1, 1):
            return x.clone()  # a new tensor, as F.max_pool2d gives: later steps may write theirs in place
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        v = x.permute(0, 2, 3, 1) if cl else x
        d = 1 if cl else 2  # v's row dimension

        def pool(u, dim, kk, n):  # max over kk strided taps along dim: rows first, then columns
            taps = [u.narrow(dim, i, (n - 1) * kk + 1)[(slice(None),) * dim + (slice(None, None, kk),)]
                    for i in range(kk)]
            y = taps[0].contiguous() if kk == 1 else torch.maximum(taps[0], taps[1])
            for t in taps[2:]:
                torch.maximum(y, t, out=y)
            return y

        y = pool(pool(v, d, k[0], oh), d + 1, k[1], ow)
        return y.permute(0, 3, 1, 2) if cl else y
    # torch's channels-last uint8 max pooling rejects planes of more than 255 elements; int16 holds every code.
    y = F.max_pool2d(x.to(torch.int16) if x.dtype == torch.uint8 else x, kernel_size, stride, padding, dilation,
                     ceil_mode)
    return y.to(x.dtype)


def _avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _adaptive_avg_pool2d(x, output_size):
    return F.adaptive_avg_pool2d(x, output_size)


def _flatten(x, start_dim=0, end_dim=-1):
    return torch.flatten(x, start_dim, end_dim)


# The functions a program may call, by name; each takes tensors positionally and JSON keyword arguments.
FUNCTIONS = {"relu": _relu, "add": _add, "max_pool2d": _max_pool2d, "avg_pool2d": _avg_pool2d,
             "adaptive_avg_pool2d": _adaptive_avg_pool2d, "flatten": _flatten}


def _check_fn_arguments(fn: str, a: dict) -> None:
    """The JSON arguments of a function step (``a``: all of them, defaults applied), checked at load:
    what torch would refuse at the first forward (or our code-pooling divide by), ValueError naming the
    argument. Every value of a program is at most 4-D ([B, C, H, W] images; no function adds a dim)."""
    if fn in ("max_pool2d", "avg_pool2d"):
        k = check_pair(a["kernel_size"], "kernel_size", 1, single=True)
        if a["stride"] is not None and a["stride"] != []:
            check_pair(a["stride"], "stride", 1, single=True)
        pad = check_pair(a["padding"], "padding", 0, single=True)
        if fn == "max_pool2d":
            check_pair(a["dilation"], "dilation", 1, single=True)
        # against the kernel size, not the dilated window: torch refuses kernel 3, dilation 2, padding 2
        if any(2 * p > kk for p, kk in zip(pad, k)):
            raise ValueError(f"padding {a['padding']!r} must be at most half the kernel size {list(k)}")
        check_flag(a["ceil_mode"], "ceil_mode")
        if fn == "avg_pool2d":
            check_flag(a["count_include_pad"], "count_include_pad")
            if a["divisor_override"] is not None:
                check_int(a["divisor_override"], "divisor_override", 1)
    elif fn == "adaptive_avg_pool2d":
        v = a["output_size"]
        sizes = [v, v] if is_int(v) else v
        if not isinstance(sizes, (list, tuple)) or len(sizes) != 2 or not all(s is None or (is_int(s) and s >= 1)
                                                                      for s in sizes):
            raise ValueError(f"output_size must be an int or a pair of ints >= 1 (or null), got {v!r}")
    elif fn == "flatten":
        for key in ("start_dim", "end_dim"):
            if not is_int(a[key]) or not -4 <= a[key] <= 3:
                raise ValueError(f"{key} must be an int in -4..3 (a value is at most 4-D), got {a[key]!r}")


class IntegerModel(nn.Module):
    """An integer random-precision model, made by :func:`dwq.deploy.convert` or :func:`dwq.deploy.load`.

    ``model(x)``: x float32 [B, C, H, W] images as the source model takes them; returns float32 logits.
    The precision is chosen like on the fake-quant model: ``dwq.set_precision(m, 4)``,
    ``with dwq.precision(m, 4): ...`` or ``dwq.RandomPrecision(m, seed=0)``; the set is fixed at
    conversion (``m.precisions``). Inference only: no gradients flow through the integer ops, so at a
    quantized precision an input that requires grad is refused while autograd is on (attacks go
    through :class:`dwq.deploy.StraightThrough`). Edits of the layers' buffers (in place, replaced,
    ``torch.func.functional_call``) take effect at the next forward; forward hooks on a layer run and
    keep what it returned (the forward then skips the in-place residual steps that would hide it).

    Attributes: ``layers`` (ModuleDict of the converted layers, named after the source graph's nodes),
    ``program`` (list of JSON steps), ``output`` (the name of the returned value), ``info`` (JSON:
    the source architecture, input size, ...).
    """

    def __init__(self, layers: Dict[str, nn.Module], program: List[dict], output: str, info: dict):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.program = [dict(s) for s in program]
        self.output = output
        self.info = dict(info)
        self._compile()
        if any(isinstance(m, PrecisionModule) for m in self.modules()):
            precision_set(self)  # ValueError now if the layers' sets differ (else every precision control's)

    # -- building ---------------------------------------------------------------------------------
    def _compile(self, fuse: bool = True, conv_residual: bool = True):
        """Checks the program and turns it into steps (:meth:`_schedule`); ``fuse``: with the fused steps
        of :meth:`_fuse_residuals` (False: one per program step, for comparisons); ``conv_residual``:
        with its conv + add + relu steps (False: without, for comparisons)."""
        self._plan = self._build(fuse, conv_residual, inplace=True)  # (steps, slot count, output slot): swapped as one
        self._plain = None
        self._options = (fuse, conv_residual)

    def _plain_plan(self):
        """The plan whose steps write nothing in place (and so fuse no add with a reader's quantization):
        for forwards that hooks watch (:meth:`_hooks_watch`)."""
        if self._plain is None:
            self._plain = self._build(*self._options, inplace=False)
        return self._plain

    def _hooks_watch(self) -> bool:
        """Whether forward hooks watch what the plan's in-place steps would hide: the output of a layer
        that a later step overwrites in place (a hook that kept it saw the sum), or a batch norm whose
        output codes a fused residual add makes (its call, and so its hooks, skipped)."""
        g = nn.modules.module
        producers, readers = self._watched
        return bool(g._global_forward_hooks or any(m._forward_hooks for m in producers)
                    or any(_hooked(m) for m in readers))

    def _build(self, fuse: bool, conv_residual: bool, inplace: bool):
        known = {INPUT}
        for k, step in enumerate(self.program):
            if not isinstance(step.get("out"), str) or not isinstance(step.get("args"), list):
                raise ValueError(f"program step {k} must have a name 'out' and a list 'args', got {step!r:.200}")
            for a in step["args"]:
                if a not in known:
                    raise ValueError(f"program step {k} ({step['out']}) uses {a!r} before it is computed")
            if step["out"] in known:
                raise ValueError(f"program step {k} recomputes {step['out']!r}")
            known.add(step["out"])
        if self.output not in known:
            raise ValueError(f"the program never computes its output {self.output!r}")
        if self.output == INPUT:
            raise ValueError(f"the program's output is its input {INPUT!r}; expected a value the program computes")
        nodes = []  # (callable, argument names, output names): one per step, until fused
        for k, step in enumerate(self.program):
            if "call" in step:
                if step["call"] not in self.layers:
                    raise ValueError(f"program step {k} calls an unknown layer {step['call']!r}")
                if len(step["args"]) != 1:  # (else every forward raised a TypeError)
                    raise ValueError(f"program step {k} calls layer {step['call']!r} with {len(step['args'])} "
                                     f"arguments {step['args']}; a layer takes 1")
                fn = self.layers[step["call"]]
            else:
                if step.get("fn") not in FUNCTIONS:
                    raise ValueError(f"program step {k} calls an unknown function {step.get('fn')!r}; "
                                     f"known: {sorted(FUNCTIONS)}")
                kw = dict(step.get("kwargs", {}))
                if step.get("inplace") and inplace:
                    kw["inplace"] = True
                try:  # checked here, not at the first forward
                    bound = inspect.signature(FUNCTIONS[step["fn"]]).bind(*step["args"], **kw)
                except TypeError as e:
                    raise ValueError(f"program step {k} ({step['fn']}) does not take these arguments: {e}") from None
                bound.apply_defaults()
                try:
                    _check_fn_arguments(step["fn"], bound.arguments)
                except ValueError as e:
                    raise ValueError(f"program step {k} ({step['fn']}): {e}") from None
                fn = functools.partial(FUNCTIONS[step["fn"]], **kw)
            nodes.append((fn, list(step["args"]), (step["out"],)))
        if fuse:
            nodes = self._fuse_residuals(nodes, conv_residual)
        if inplace:
            made_by = {s["out"]: self.layers[s["call"]] for s in self.program if "call" in s}
            producers = {id(made_by[s["args"][0]]): made_by[s["args"][0]] for s in self.program
                         if s.get("inplace") and s["args"][0] in made_by}
            readers = {id(fn.layer): fn.layer for fn, _, _ in nodes if isinstance(fn, _AffineOrCodes)}
            self._watched = (tuple(producers.values()), tuple(readers.values()))
        return self._schedule(nodes)

    def _fuse_residuals(self, nodes, conv_residual: bool = True):
        """Fuses the residual adds (the program, and so a saved model, stays as it is):
        - an ``add`` that only the next step's ``relu`` reads runs as one step, :func:`_add_relu`;
        - where the add may write its first operand and the first later step that reads the result
          can take codes made in the same pass (a quantized layer after add + relu, a float batch
          norm with codes out after a plain add), a :class:`_ResidualInto` step gives it those;
        - where that add + relu's first operand is a quantized conv's output that nothing else reads,
          the conv and that step are one, :class:`_ConvResidualInto` (the sum and the codes made in the
          conv's epilogue)."""
        uses = {}
        for _, args, _ in nodes:
            for a in args:
                uses[a] = uses.get(a, 0) + 1
        fused, renamed, k = [], {}, 0
        while k < len(nodes):
            fn, args, outs = nodes[k]
            args = [renamed.get((k, a), a) for a in args]
            if isinstance(fn, FloatAffine) and args != list(self.program[k]["args"]):  # fed by a fused add
                fn = _AffineOrCodes(fn)
            step, nxt = self.program[k], self.program[k + 1] if k + 1 < len(self.program) else {}
            if step.get("fn") != "add":
                fused.append((fn, args, outs))
                k += 1
                continue
            relu = (nxt.get("fn") == "relu" and nxt["args"] == [step["out"]] and uses[step["out"]] == 1
                    and step["out"] != self.output)
            r = nxt["out"] if relu else step["out"]
            j = next((j for j in range(k + 1 + relu, len(self.program)) if r in self.program[j]["args"]), None)
            reader = self.layers[self.program[j]["call"]] if j is not None and "call" in self.program[j] else None
            if (fn.keywords.get("inplace") and r != self.output
                    and isinstance(reader, _IntLayer if relu else FloatAffine)):
                codes = (r, "codes")  # (not a string: no program name can clash with it)
                renamed[(j, r)] = codes
                into = _ResidualInto(reader, relu)
                prev = fused[-1] if fused else None
                if (conv_residual and relu and prev is not None and isinstance(prev[0], IntConv2d)
                        and prev[2] == (args[0],) and uses[args[0]] == 1 and args[0] != args[1]):
                    fused[-1] = (_ConvResidualInto(prev[0], into), prev[1] + [args[1]], (r, codes))
                else:
                    fused.append((into, args, (r, codes)))
            elif relu:
                fused.append((functools.partial(_add_relu, inplace=bool(fn.keywords.get("inplace"))), args, (r,)))
            else:
                fused.append((fn, args, outs))
            k += 1 + relu
        return fused

    def _schedule(self, nodes):
        """(steps, slot count, output slot): each step (callable, input slots, output slot or slots,
        slots to free after it: the values no later step reads)."""
        slots = {INPUT: 0}
        for _, _, outs in nodes:
            for o in outs:
                slots[o] = len(slots)
        last_use = {}
        for k, (_, args, _) in enumerate(nodes):
            for a in args:
                last_use[a] = k
        steps = []
        for k, (fn, args, outs) in enumerate(nodes):
            free = tuple(slots[a] for a in set(args) if last_use[a] == k and a != self.output)
            out = slots[outs[0]] if len(outs) == 1 else tuple(slots[o] for o in outs)
            steps.append((fn, tuple(slots[a] for a in args), out, free))
        return steps, len(slots), slots[self.output]

    def config(self) -> dict:
        """JSON description: layer configs, program, output, info, and the current precision where the
        layers agree on one (the tensors are ``state_dict()``)."""
        cfg = {"layers": {name: m.config() for name, m in self.layers.items()}, "program": self.program,
               "output": self.output, "info": self.info}
        try:  # (a loaded model started at the set's last precision, not at the one it was saved at)
            cfg["precision"] = precision_name(get_precision(self))
        except ValueError:  # (no switchable layer, or layers set apart: the set's last, as a new model)
            pass
        return cfg

    @classmethod
    def from_config(cls, cfg: dict, tensors: Dict[str, torch.Tensor]) -> "IntegerModel":
        """Rebuilds a model from :meth:`config` and its state_dict tensors (ValueError if they do not fit)."""
        layers = {}
        for name, lc in cfg["layers"].items():
            prefix = f"layers.{name}."
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            layers[name] = layer_from_config(lc, sub)
        model = cls(layers, cfg["program"], cfg["output"], cfg.get("info", {}))
        unknown = set(tensors) - set(model.state_dict())
        if unknown:
            raise ValueError(f"tensors that no layer takes: {sorted(unknown)[:3]}")
        if "precision" in cfg:  # (artifacts of earlier versions have none: the set's last)
            set_precision(model, parse_precision(str(cfg["precision"])))  # (ValueError: not in its set)
        return model

    def _apply(self, fn, recurse=True):
        # The integer ops take float32 scales and return float32: a cast of the model (.half(), .double(),
        # .to(dtype)) is refused before it changes anything, instead of failing later inside an op.
        probe = fn(torch.zeros(1))
        if probe.device.type == "meta":  # (it failed repacking the first layer's codes, the model half moved)
            raise ValueError("IntegerModel cannot move to the meta device: its kernels' weight layout is packed "
                             "from the codes it holds; build or load it on the device it runs on")
        if probe.dtype != torch.float32:
            raise ValueError(f"IntegerModel computes in float32 and cannot be cast to {probe.dtype}; "
                             "cast its outputs instead")
        # (.type(torch.float32) casts every tensor: codes and zero points became float32, and the model
        # failed at its next forward, or at load after a save that took it)
        codes = fn(torch.zeros(1, dtype=torch.int32))
        if codes.dtype != torch.int32:
            raise ValueError(f"IntegerModel holds integer codes and zero points, which cannot be cast to "
                             f"{codes.dtype}; cast its outputs instead")
        return super()._apply(fn, recurse)

    # -- running ----------------------------------------------------------------------------------
    @property
    def precisions(self) -> list:
        """The precision set (None, b or (w, a) entries)."""
        return precision_set(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():  # between layers integer tensors are codes; the model's input never is
            raise ValueError(f"IntegerModel: x must be floating-point images, got {x.dtype} (convert integer "
                             "pixels to float as the source model expects them)")
        if x.dtype != torch.float32:
            # Every op computes in float32; without this a half or float64 batch failed inside the first
            # layer, with a message that depended on the precision (the integer op's or F.conv2d's).
            x = x.float()
        quantized = x.requires_grad and torch.is_grad_enabled() and self._quantized_now()
        if quantized:
            # The float layers around the integer ones (stem, shortcuts) passed a gradient, the integer ops
            # none: an attack on that gradient ran, silently weak (its cosine with the fake-quant model's
            # was ~0.1 on a PreActResNet18).
            raise ValueError(f"IntegerModel at precision {', '.join(quantized)} "
                             "passes no gradient through its integer layers, and x requires one; attack "
                             "dwq.deploy.StraightThrough(int_model, fake_quant_model) (its values, the fake-quant "
                             "model's gradients), or call it under torch.no_grad()")
        if x.dim() == 4:
            # Channels-last throughout: each filter tap of the integer conv reads contiguous channels.
            x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_autocast_enabled(x.device.type):
            # float32 whatever autocast asks (its float layers ran in half: the next integer op refused
            # it, or the logits came out in bfloat16 and rounded)
            with torch.autocast(x.device.type, enabled=False):
                return self._run(x)
        return self._run(x)

    def _quantized_now(self) -> list:
        """The current precisions of the layers that now run integer ops (none: the model is in float)."""
        return sorted({precision_name(m.precision) for m in self.layers.values()
                       if isinstance(m, _IntLayer) and m.precision is not None})

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        steps, nslots, output = self._plain_plan() if self._hooks_watch() else self._plan
        env = [None] * nslots
        env[0] = x
        for fn, ins, out, free in steps:
            if out.__class__ is int:
                env[out] = fn(*[env[i] for i in ins])
            else:  # a fused step with two results (_ResidualInto)
                env[out[0]], env[out[1]] = fn(*[env[i] for i in ins])
            for i in free:
                env[i] = None
        y = env[output]
        if not y.is_floating_point():  # (a hand-edited description whose output is a layer's codes)
            raise ValueError(f"IntegerModel: the program's output {self.output!r} holds integer codes ({y.dtype}) "
                             f"at precision {precision_name(get_precision(self))}, not float32 logits; the model's "
                             f"description is malformed")
        return y

    def extra_repr(self) -> str:
        try:
            cur = get_precision(self)
        except ValueError:
            cur = "?"
        return f"{self.info.get('network', self.info.get('model_class', ''))}, {len(self.program)} steps, " \
               f"precision={cur}"

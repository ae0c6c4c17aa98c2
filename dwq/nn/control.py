"""Precision state of quantized layers and the model-level controls.

Every :class:`PrecisionModule` owns a precision set (fixed at construction) and a current
precision. ``set_precision``/``precision``/``RandomPrecision`` act on all of them in a model.
"""
import random
from typing import Iterable, List, Optional, Sequence

import torch
from torch import nn

from dwq._index import index_or_none
from dwq.quant.precision import Normalized, normalize_precision, normalize_set, precision_name, user_precision


def _names(ps) -> str:
    return "[" + ", ".join(precision_name(p) for p in ps) + "]"


def _encode_set(precisions) -> torch.Tensor:
    return torch.tensor([[0, 0] if p is None else list(p) for p in precisions], dtype=torch.int32)


def _decode_set(t: torch.Tensor) -> list:
    return [user_precision(None if int(w) == 0 else (int(w), int(a))) for w, a in t.tolist()]


def _describe_set(t) -> str:
    """The precision set a ``precision_set`` entry encodes, or what the entry is when it encodes none
    (a foreign or damaged state_dict, or the uninitialized memory of ``to_empty``): never a bare
    unpacking or bit-width error about a tensor the message does not name."""
    if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[1] == 2 and t.device.type != "meta":
        try:
            return _names(_decode_set(t))
        except ValueError:
            pass
    if not isinstance(t, torch.Tensor):
        return f"<not a tensor: {type(t).__name__}>"
    if t.device.type == "meta" and t.dim() == 2 and t.shape[1] == 2:
        return f"<{t.shape[0]} precisions, on the meta device (no values)>"
    values = "" if t.device.type == "meta" or t.numel() > 8 else f" {t.tolist()}"
    return f"<not a precision set: {t.dtype} {list(t.shape)}{values}; expected int32 [P, 2] (w, a) bits, 0 = fp>"


class PrecisionModule(nn.Module):
    """Base of the precision-switchable layers.

    ``precisions``: the ordered precision set; the current precision starts at its last entry.
    The set is kept in the persistent buffer ``precision_set`` (int32 [P, 2], 0 = full
    precision) so that a state_dict made for another set is refused by name.
    """

    def _init_precision(self, precisions: Iterable) -> None:
        self.precisions = normalize_set(precisions)
        self._precision: Normalized = self.precisions[-1]
        self.register_buffer("precision_set", _encode_set(self.precisions))

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # The set is a constant of the layer: rebuilt, since fn may be to_empty's (uninitialized memory,
        # which reset_parameters does not touch and a state_dict saved from it then carried).
        self.precision_set = _encode_set(self.precisions).to(self.precision_set.device)
        return self

    @property
    def precision(self) -> Normalized:
        """The current precision, normalized ((w, a) bits or None); assigning checks it like ``set_precision``
        (``layer.precision = 4`` once stored a bare 4, and the next forward failed far from it)."""
        return self._precision

    @precision.setter
    def precision(self, p) -> None:
        q = normalize_precision(p)
        if q not in self.precisions:
            raise ValueError(
                f"precision {precision_name(q)} is not in this layer's precision set {_names(self.precisions)}"
            )
        self._precision = q

    def set_precision(self, p) -> None:
        self.precision = p

    @property
    def precision_index(self) -> int:
        return self.precisions.index(self.precision)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        key = prefix + "precision_set"
        if key in state_dict:
            theirs = state_dict[key]
            # Compared with the set itself, not the buffer, which may be on a device without data (meta).
            ours = _encode_set(self.precisions)
            # a meta state_dict (a model built on the meta device) has no values: its shape is what it says
            if (not isinstance(theirs, torch.Tensor) or theirs.shape != ours.shape
                    or (theirs.device.type != "meta" and not torch.equal(theirs.cpu().int(), ours))):
                raise RuntimeError(
                    f"{prefix or 'module '}: the state_dict was saved for precision set {_describe_set(theirs)}, "
                    f"this model has {_names(self.precisions)}"
                )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


def _layers(model: nn.Module) -> List[PrecisionModule]:
    return [m for m in model.modules() if isinstance(m, PrecisionModule)]


def _shared_set(model: nn.Module, layers: List[PrecisionModule]) -> list:
    """The normalized set every layer of ``layers`` (``model``'s) has; ValueError if none or they differ."""
    if not layers:
        raise ValueError(f"{type(model).__name__} has no precision-switchable (dwq.nn) layer")
    first = layers[0].precisions
    for m in layers[1:]:
        if m.precisions != first:
            name = {id(mod): n or "the model" for n, mod in model.named_modules()}
            raise ValueError(
                f"the model's layers have different precision sets: {_names(first)} ({name[id(layers[0])]!r}, "
                f"{type(layers[0]).__name__}) and {_names(m.precisions)} ({name[id(m)]!r}, {type(m).__name__})"
            )
    return first


def precision_set(model: nn.Module) -> list:
    """The model's precision set in set order (None, b or (w, a) entries).

    Raises ValueError if the model has no precision-switchable layer or its layers disagree."""
    return [user_precision(p) for p in _shared_set(model, _layers(model))]


def set_precision(model: nn.Module, p) -> None:
    """Sets every dwq layer of ``model`` to precision ``p``; ValueError if ``p`` is not in its set."""
    # one walk over the modules and one check (RandomPrecision calls this before every forward)
    layers = _layers(model)
    allowed = _shared_set(model, layers)
    q = normalize_precision(p)
    if q not in allowed:
        raise ValueError(f"precision {precision_name(q)} is not in the model's precision set {_names(allowed)}")
    for m in layers:
        m._precision = q  # (in the set every layer shares: the property's own check would repeat it per layer)


def get_precision(model: nn.Module):
    """The current precision of ``model`` (None, b or (w, a)); ValueError if its layers disagree."""
    layers = _layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no precision-switchable (dwq.nn) layer")
    cur = {m.precision for m in layers}
    if len(cur) != 1:
        raise ValueError(f"the model's layers are at different precisions: {sorted(precision_name(c) for c in cur)}")
    return user_precision(cur.pop())


class precision:
    """``with dwq.precision(model, 4): ...`` runs the block at 4 bits, then restores the precision.

    The precision is set at construction (so ``dwq.precision(model, 4)`` alone also sets it) and
    restored only by ``__exit__``; dropping the object does not undo it. The object can be entered
    again, also while inside itself: every ``with`` runs its block at ``p`` and restores what it found.
    """

    def __init__(self, model: nn.Module, p):
        if any(isinstance(m, RandomPrecision) for m in model.modules()):
            # (else the block ran at random precisions, the wrapper's draws, while every caller's
            # report was labelled p: dwq.deploy.compare, latency_per_precision, the eval protocols)
            raise ValueError(f"dwq.precision: the model holds a dwq.RandomPrecision, which draws its own "
                             f"precision at every forward, so the block would not run at "
                             f"{precision_name(normalize_precision(p))}; pass the model it wraps (its .model)")
        self.model = model
        self._p = normalize_precision(p)
        self._saved = [self._save()]
        set_precision(model, self._p)
        self._set_by_init = True  # the first __enter__ restores the state before construction (if still at p)

    def _save(self) -> list:
        return [(m, m.precision) for m in _layers(self.model)]

    def __enter__(self) -> nn.Module:
        # Every entry sets p (a block must run at p even after an earlier exit restored the old
        # precision) and saves what it found, for its own exit; except the first entry while every layer
        # is still at the p construction set: what it restores is the state from before construction.
        found = self._save()
        set_precision(self.model, self._p)
        if not self._set_by_init:
            self._saved.append(found)
        elif any(q != self._p for _, q in found):  # changed since construction: restore what was found instead
            self._saved = [found]
        self._set_by_init = False
        return self.model

    def __exit__(self, *exc) -> bool:
        for m, q in self._saved.pop():
            m.precision = q
        return False


class RandomPrecision(nn.Module):
    """Random Precision Inference: every forward pass draws a precision and runs ``model`` at it.

    ``bits``: the precisions to draw from (default: the model's whole set); each must be in the
    model's set. ``seed`` seeds a private generator, so two wrappers with the same seed draw the
    same sequence and the global RNG is untouched. ``generator`` (instead of ``seed``): a
    ``torch.Generator`` to draw from (``torch.randint`` on the generator's device), shared with the
    caller, e.g. to replay a deployment's draws. With neither, the draws come from torch's global
    CPU RNG, as dropout's do, so ``torch.manual_seed`` makes them reproducible.
    ``last_precision`` is the latest draw.
    """

    def __init__(self, model: nn.Module, bits: Optional[Sequence] = None, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if seed is not None and generator is not None:
            raise ValueError("RandomPrecision: give seed or generator, not both")
        if generator is not None and not isinstance(generator, torch.Generator):  # (else an AttributeError at the draw)
            raise ValueError(f"RandomPrecision: generator must be a torch.Generator, got {generator!r}; for an "
                             f"integer seed give seed=")
        self.model = model
        allowed = [normalize_precision(p) for p in precision_set(model)]
        if bits is not None:
            # Checked here to show the model's set; precision_list's message offers no choices.
            if not isinstance(bits, (int, str)) and isinstance(bits, Iterable):
                bits = list(bits)
            if not isinstance(bits, list) or not bits:
                raise ValueError(f"RandomPrecision: bits must be a non-empty list of precisions from the model's "
                                 f"set {_names(allowed)} (e.g. [4, 8]), got {bits!r}")
        try:
            choices = normalize_set(bits if bits is not None else precision_set(model), name="bits")
        except ValueError as e:
            raise ValueError(f"RandomPrecision: {e}") from None
        for q in choices:
            if q not in allowed:
                raise ValueError(
                    f"RandomPrecision: precision {precision_name(q)} is not in the model's set {_names(allowed)}"
                )
        self.choices = [user_precision(q) for q in choices]
        _untrace_draw()
        self._rng = random.Random(_seed_material(seed)) if seed is not None else None
        self.generator = generator
        self.last_precision = None

    def draw(self):
        """Draws the next precision (without running the model)."""
        if self._rng is not None:
            return self.choices[self._rng.randrange(len(self.choices))]
        g = self.generator
        i = torch.randint(len(self.choices), (1,), generator=g, device=g.device if g is not None else "cpu")
        return self.choices[int(i)]

    def forward(self, *args, **kwargs):
        p = self.draw()
        set_precision(self.model, p)
        self.last_precision = p
        return self.model(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"choices={_names(self.choices)}"


def _seed_material(seed):
    """What seeds RandomPrecision's private generator: ``seed`` itself when >= 0 (the streams people
    have), a string for a negative one, because random.Random seeds with abs(int) and seed=-5 drew
    seed=5's sequence. A numpy int is taken, a bool, float or string refused (random.Random hashed them)."""
    s = index_or_none(seed)
    if s is None:
        raise ValueError(f"RandomPrecision: seed must be an int, got {seed!r}")
    return s if s >= 0 else f"dwq.RandomPrecision seed {s}"


def _untrace_draw() -> None:
    """Makes ``RandomPrecision.draw`` one that torch.compile never traces: it replayed the draw it traced
    (the private random.Random's), so a compiled RandomPrecision with a seed ran one precision at every
    forward, silently: fixed-precision inference. Done at the first construction, not at import:
    torch.compiler.disable imports torch._dynamo, a second more for every ``import dwq``."""
    if "_draw_untraced" not in RandomPrecision.__dict__:
        RandomPrecision.draw = torch.compiler.disable(RandomPrecision.draw)
        RandomPrecision._draw_untraced = True

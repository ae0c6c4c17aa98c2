"""Import checkpoints of the reference implementation (GATECH-EIC/Double-Win-Quant) into dwq models.

What a reference state_dict looks like (PreActResNet18 / WideResNet32 / ResNet50 trained with
``--switchable_bn``, saved from ``torch.nn.DataParallel``)::

    module.conv1.weight
    module.conv1.quantize_input.running_zero_point     # [1, 1, 1, 1]: EMA of the batch minimum
    module.conv1.quantize_input.running_range          # [1, 1, 1, 1]: EMA of max - min
    module.layer1.0.bn1.weight / .bias / .running_mean / .running_var / .num_batches_tracked
                                                       # the switchable BN's parent: never used
    module.layer1.0.bn1.bn.3.weight  (... .bn.<i>.*)   # branch i serves num_bits_list[i]
    module.block1.layer.0.convShortcut.weight          # WideResNet: our `shortcut`
    module.linear.weight / module.fc.weight
    (module.normalize.mean / .std when trained with in-model normalization)

Mapping onto a dwq model of the same architecture:

* the ``module.`` prefix is stripped and ``convShortcut`` renamed ``shortcut``;
* branch ``bn.<j>`` of each switchable BN goes to our branch ``bn.<i>``, where ``j`` is the position
  of our i-th precision in the checkpoint's ``num_bits_list``. The checkpoint does not store that
  list, only the number of branches: by default the model's own set is assumed (the counts must
  agree), or pass ``reference_precisions`` (e.g. ``range(4, 17)``) to load a subset. Full precision
  (``None``) maps to the last branch, which is what the reference uses at ``num_bits=0``;
* a plain (non-switchable) reference BN is copied into every branch of ours;
* the unused parent BN entries are dropped;
* the activation range of a quantized layer goes into every slot (the reference shares one range
  across precisions): ``running_min = zero_point`` and, with the reference's quantizer
  (``zero_point="float"``), ``running_range = range`` as stored, so the scale is the reference's
  bit for bit; with dwq's integer zero point, ``running_max = zero_point + range``. A range that
  never saw data (both zero) leaves the slot uninitialized. Ranges of layers that are full
  precision in our model (stem, shortcuts) are dropped;
* ``normalize.mean/std`` are taken from the checkpoint when present. Otherwise the model keeps its
  own: the reference's CIFAR scripts normalize in the data pipeline with **CIFAR-10** statistics,
  also for CIFAR-100, so build a CIFAR-100 model with ``mean``/``std`` of CIFAR-10 to import those;
* ``precision_set`` keeps the model's value (the reference has none); a BN counter
  (``num_batches_tracked``) the checkpoint lacks is set to 1, so that the branch counts as trained.

To reproduce the reference's outputs, build the model with its quantizer,
``dwq.models.reference_policy(network)`` (``zero_point="float"``, ``shared_act_range=True``): eval
logits then equal the reference's up to float32 rounding at every precision (measured against the
reference code: docs/workflow.md). With the default integer zero point the outputs differ by the
quantizer's rounding, as documented in ``dwq.quant``.
"""
import re
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

from dwq.models.common import Normalize
from dwq.nn import PrecisionModule, QConv2d, QLinear, SwitchableBatchNorm2d
from dwq.nn.control import _encode_set, _names
from dwq.quant import normalize_set, precision_name, user_precision

__all__ = ["load_reference_state_dict", "reference_to_dwq_state_dict", "expand_plain_state_dict"]

_BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_REF_ACT = "quantize_input"
_RENAMES = ((re.compile(r"(^|\.)convShortcut\."), r"\1shortcut."),)


def _unwrap(state_dict) -> Dict[str, torch.Tensor]:
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]  # a whole training checkpoint
    if not isinstance(state_dict, dict):
        raise TypeError(f"expected a state_dict (dict of tensors), got {type(state_dict).__name__}")
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            # e.g. a whole checkpoint under another name ({"model": ..., "epoch": ...}): named here, not
            # an AttributeError deep in the mapping.
            found = ("a name that is no string" if not isinstance(key, str)
                     else "a dict (a whole checkpoint? pass the state_dict inside it)" if isinstance(value, dict)
                     else f"a {type(value).__name__}, not a tensor")
            raise TypeError(f"expected a state_dict (dict of name -> tensor); entry {key!r} is {found}")
        if key.startswith("module."):
            key = key[len("module."):]
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        if key in out:
            raise RuntimeError(f"the state_dict has {key!r} twice (with and without the 'module.' prefix)")
        out[key] = value
    return out


def _branches(sd: Dict[str, torch.Tensor], prefix: str) -> Dict[int, Dict[str, torch.Tensor]]:
    pattern = re.compile(re.escape(prefix + "bn.") + r"(\d+)\.(.+)$")
    found: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        m = pattern.match(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return found


def _bn_entries(branch: Dict[str, torch.Tensor]):
    """A branch's batch-norm entries (weight, bias, statistics, counter), without any other."""
    return [(e, v) for e, v in branch.items() if e in _BN_ENTRIES]


def _branch_map(model_set, num_branches: int, reference_precisions, where: str) -> List[int]:
    ours = [user_precision(p) for p in model_set]
    if reference_precisions is None:
        if num_branches != len(model_set):
            raise RuntimeError(
                f"{where}: the checkpoint has {num_branches} switchable-BN branches per layer, the model's "
                f"precision set {_names(ours)} has {len(model_set)}; build the model with the checkpoint's precision "
                f"set, or pass reference_precisions=<the checkpoint's num_bits_list> to load a subset"
            )
        # The reference saves num_bits_list = range(a, b + 1): ascending whole widths, no full precision.
        # A set of the same size that cannot be one ([None, 4, 5], [6, 5, 4]) took branch i as its i-th
        # precision, silently wrong at each one that is not the reference's i-th.
        if not all(type(p) is int for p in ours) or ours != sorted(set(ours)):
            raise RuntimeError(
                f"{where}: the model's precision set {_names(ours)} cannot be the reference's num_bits_list (ascending "
                f"widths, e.g. [4, 5, 6, 7, 8]); pass reference_precisions=<the checkpoint's num_bits_list> to "
                f"say which branch is which"
            )
        return list(range(num_branches))
    theirs = list(reference_precisions)
    if len(theirs) != num_branches:
        raise RuntimeError(
            f"{where}: reference_precisions has {len(theirs)} entries, the checkpoint has {num_branches} "
            f"switchable-BN branches per layer"
        )
    mapping = []
    for p in model_set:
        if p in theirs:
            mapping.append(theirs.index(p))
        elif p is None:
            mapping.append(num_branches - 1)  # the reference runs full precision with its last BN
        else:
            raise RuntimeError(
                f"{where}: precision {precision_name(p)} of the model is not in the checkpoint's precision "
                f"set {_names(theirs)}"
            )
    return mapping


def _put(target, key, value, source):
    if key not in target:
        raise RuntimeError(f"{source}: internal error, the model has no entry {key!r}")
    if tuple(target[key].shape) != tuple(value.shape):
        raise RuntimeError(
            f"{source}: shape mismatch for {key!r}: checkpoint {tuple(value.shape)}, model {tuple(target[key].shape)}"
        )
    target[key] = value.detach().to(dtype=target[key].dtype, device=target[key].device).clone()


def _convert(model: nn.Module, state_dict, *, source: str, reference_precisions=None,
             need_act_ranges: bool) -> Dict[str, torch.Tensor]:
    if not isinstance(model, nn.Module):  # (build_model's (model, name) pair: "'tuple' object has no attribute")
        hint = "; build_model returns (model, network): take its first item" if isinstance(model, tuple) else ""
        raise TypeError(f"model must be an nn.Module, got a {type(model).__name__}{hint}")
    sd = _unwrap(state_dict)
    target = dict(model.state_dict(keep_vars=False))  # entries are replaced, never written in place
    filled, consumed = set(), set()

    sbn_children, counts = set(), {}
    for name, module in model.named_modules():
        pre = f"{name}." if name else ""  # (the model itself may be the one layer: no leading ".")
        if isinstance(module, PrecisionModule):
            # The model's own set, not its buffer: after to_empty() (a model built on the meta device) the
            # buffer holds uninitialized memory, which the load would then refuse as a foreign set.
            target[f"{pre}precision_set"] = _encode_set(module.precisions)
        if isinstance(module, SwitchableBatchNorm2d):
            sbn_children.update(f"{pre}bn.{i}" for i in range(len(module.bn)))
            found = _branches(sd, pre)
            if found:
                counts[name] = max(found) + 1
    if len(set(counts.values())) > 1:
        # A layer with fewer branches than the rest is a damaged file, not another precision set: say so
        # before a per-layer message suggests rebuilding the model with another set.
        usual = max(set(counts.values()), key=list(counts.values()).count)
        odd = [f"{n!r} has {c}" for n, c in counts.items() if c != usual]
        raise RuntimeError(f"{source}: its switchable BNs disagree on the number of branches: {_few(odd, 4)}, the "
                           f"other {len(counts) - len(odd)} have {usual} (a truncated or damaged checkpoint?)")

    for name, module in model.named_modules():
        pre = f"{name}." if name else ""  # (the model itself may be the one layer: no leading ".")
        where = f"{source}, layer {name!r}"
        if isinstance(module, SwitchableBatchNorm2d):
            found = _branches(sd, pre)
            parents = {e: sd[f"{pre}{e}"] for e in _BN_ENTRIES if f"{pre}{e}" in sd}
            if found:
                mapping = _branch_map(module.precisions, max(found) + 1, reference_precisions, where)
                for i, j in enumerate(mapping):
                    if j not in found:
                        raise RuntimeError(f"{where}: the checkpoint has no branch bn.{j}")
                    for entry, value in _bn_entries(found[j]):
                        _put(target, f"{pre}bn.{i}.{entry}", value, source)
                        filled.add(f"{pre}bn.{i}.{entry}")
                # (an entry a batch norm does not have is left for the check of entries with no place)
                consumed.update(f"{pre}bn.{j}.{e}" for j in found for e, _ in _bn_entries(found[j]))
                consumed.update(f"{pre}{e}" for e in parents)  # the reference's unused parent BN
            elif parents and counts:
                # the reference's unused parent BN alone, in a file whose other layers have branches: a
                # damaged file, which loaded the parent's default statistics into every branch
                raise RuntimeError(f"{where}: the checkpoint has no switchable-BN branch here (bn.<i>.*), only "
                                   f"the reference's unused parent BN, where its other {len(counts)} switchable "
                                   f"BNs have {max(counts.values())} branches (a truncated or damaged checkpoint?)")
            elif parents:  # a plain BN: the same statistics and affine for every precision
                for i in range(len(module.bn)):
                    for entry, value in parents.items():
                        _put(target, f"{pre}bn.{i}.{entry}", value, source)
                        filled.add(f"{pre}bn.{i}.{entry}")
                consumed.update(f"{pre}{e}" for e in parents)
        elif isinstance(module, nn.BatchNorm2d) and name not in sbn_children:
            found = _branches(sd, pre)
            if found:
                if len(found) != 1:
                    raise RuntimeError(
                        f"{where}: the checkpoint has {len(found)} switchable-BN branches here, the model has "
                        f"one plain BatchNorm2d (switchable_bn=False); build it with switchable_bn=True"
                    )
                (only,) = found.values()
                for entry, value in _bn_entries(only):
                    _put(target, f"{pre}{entry}", value, source)
                    filled.add(f"{pre}{entry}")
                consumed.update(f"{pre}bn.{j}.{e}" for j in found for e, _ in _bn_entries(found[j]))
                consumed.update(f"{pre}{e}" for e in _BN_ENTRIES if f"{pre}{e}" in sd)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            zp_key, range_key = f"{pre}{_REF_ACT}.running_zero_point", f"{pre}{_REF_ACT}.running_range"
            ref_keys = [k for k in sd if k.startswith(f"{pre}{_REF_ACT}.")]
            # (QuantMeasure's buffers; num_measured only in its measure mode. Others have no place.)
            consumed.update(k for k in ref_keys if k in (zp_key, range_key, f"{pre}{_REF_ACT}.num_measured"))
            if not isinstance(module, (QConv2d, QLinear)):
                continue  # full precision here: the reference's range of this layer is not needed
            if zp_key in sd and range_key in sd:
                zp = sd[zp_key].detach().float().reshape(-1)
                rng = sd[range_key].detach().float().reshape(-1)
                for key, t in ((zp_key, zp), (range_key, rng)):
                    if t.numel() != 1:
                        raise RuntimeError(f"{where}: expected a per-tensor activation range (one value), "
                                           f"{key} has shape {list(sd[key].shape)}")
                # (a diverged run's NaN failed at the first forward naming no layer, blaming the input; a
                # negative range ran silently with an integer zero point)
                if not (torch.isfinite(zp).all() and torch.isfinite(rng).all() and torch.isfinite(zp + rng).all()
                        and (rng >= 0).all()):
                    raise RuntimeError(f"{where}: the activation range {zp_key} = {zp.item()}, {range_key} = "
                                       f"{rng.item()} is not finite or negative (a diverged run?)")
                slots = module.input_quant.running_min.numel()
                seen = bool(zp.item() != 0.0 or rng.item() != 0.0)
                q = f"{pre}input_quant."
                # The reference's state itself where the model keeps it ("float": running_range), so
                # its scale range / (2^b - 1) is reproduced bit for bit; an integer-zero-point model
                # keeps a maximum, zp + range (rounded in float32).
                upper = "running_range" if q + "running_range" in target else "running_max"
                target[q + "running_min"] = zp.expand(slots).clone()
                target[q + upper] = (rng if upper == "running_range" else zp + rng).expand(slots).clone()
                target[q + "initialized"] = torch.full((slots,), seen, dtype=torch.bool)
                filled.update(q + e for e in ("running_min", upper, "initialized"))
            elif ref_keys:
                raise RuntimeError(f"{where}: incomplete activation range in the checkpoint: {sorted(ref_keys)}")

    unexpected = []
    for key, value in sd.items():
        if key in consumed:
            continue
        if key in target and key not in filled:
            _put(target, key, value, source)
            filled.add(key)
        else:
            unexpected.append(key)
    if unexpected:
        raise RuntimeError(f"{source}: entries with no place in {type(model).__name__}: {_few(unexpected)}")

    missing = []
    normalize_names = {n for n, m in model.named_modules() if isinstance(m, Normalize)}
    for key in target:
        if key in filled:
            continue
        owner, _, entry = key.rpartition(".")
        if entry in ("precision_set", "num_batches_tracked") or owner in normalize_names:
            continue  # the model's own values
        if ".input_quant." in f".{key}" and not need_act_ranges:
            continue
        missing.append(key)
    if missing:
        raise RuntimeError(f"{source}: the checkpoint lacks entries the model needs: {_few(missing)}")
    for key in [k for k in target if k.endswith(".num_batches_tracked") and k not in filled]:
        # A file without the counters (torchvision's original ResNet-50 weights predate them) holds real
        # statistics: kept, the model's own 0 made every branch warn at eval that it never saw a training
        # batch. Left out, the branch counted as trained until the model was saved: torch then wrote its
        # own 0, and the reloaded model warned again. A count of 1 stays trained through any save.
        target[key] = torch.ones_like(target[key])
    return target


def _few(keys: List[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def reference_to_dwq_state_dict(model: nn.Module, state_dict, reference_precisions: Optional[Iterable] = None
                                ) -> Dict[str, torch.Tensor]:
    """The state_dict of ``model`` filled from a reference checkpoint (see the module docstring);
    ``model`` itself is not modified. RuntimeError names any entry that cannot be placed."""
    if reference_precisions is not None:
        # Checked as a set: a repeat made two branches claim one precision and a string such as "468"
        # was taken apart silently; the message names the argument.
        reference_precisions = list(normalize_set(reference_precisions, name="reference_precisions"))
    return _convert(model, state_dict, source="reference checkpoint", reference_precisions=reference_precisions,
                    need_act_ranges=True)


def load_reference_state_dict(model: nn.Module, state_dict, reference_precisions: Optional[Iterable] = None
                              ) -> nn.Module:
    """Loads a checkpoint of the reference implementation into ``model`` (same architecture).

    state_dict: the reference's ``model.state_dict()`` or its whole checkpoint (``{"state_dict": ...}``).
    reference_precisions: the checkpoint's ``num_bits_list`` (e.g. ``range(4, 17)``); default: the
    model's own precision set. RuntimeError for a precision set that does not fit, a missing or
    unexpected entry, or a shape mismatch. Returns ``model``.

    Example::

        model = preact_resnet18(precisions=list(range(4, 17)))
        load_reference_state_dict(model, torch.load("ckpt/model.pth", map_location="cpu"))
    """
    target = reference_to_dwq_state_dict(model, state_dict, reference_precisions)
    model.load_state_dict(target, strict=True)
    return model


def expand_plain_state_dict(model: nn.Module, state_dict, source: str = "state_dict") -> Dict[str, torch.Tensor]:
    """The state_dict of ``model`` filled from a float state_dict of the same layout whose BNs are plain
    (torchvision's): each BN entry goes into every switchable-BN branch; activation ranges,
    ``precision_set`` and ``normalize.*`` keep the model's values."""
    return _convert(model, state_dict, source=source, reference_precisions=None, need_act_ranges=False)

"""Shared pieces of the model zoo: the quantization policy, input normalization, layer factories.

A model is built only from ``dwq.nn`` layers (``QConv2d``, ``QLinear``, ``SwitchableBatchNorm2d``)
and plain ``torch.nn`` layers for what stays in full precision, so "is this layer quantized?" is
answered by its type: a plain ``nn.Conv2d``/``nn.Linear`` never is.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from dwq._index import index_or_none
from dwq.data import DATASETS
from dwq.nn import QConv2d, QLinear, SwitchableBatchNorm2d
from dwq.quant.precision import precision_list
from dwq.quant.qparams import check_zero_point_mode

__all__ = ["QuantPolicy", "Normalize", "DATASET_STATS", "dataset_stats", "LayerFactory"]

# (mean, std) per channel of each dataset's training images in [0, 1]: dwq.data owns them.
DATASET_STATS: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    ("mnist" if name == "mnist5k" else name): (info.mean, info.std) for name, info in DATASETS.items()
}


def dataset_stats(name: str):
    """(mean, std) of a dataset by name (see ``DATASET_STATS``); ValueError for an unknown name."""
    key = name.lower().replace("-", "").replace("_", "") if isinstance(name, str) else name
    key = "mnist" if key == "mnist5k" else key
    if not isinstance(key, str) or key not in DATASET_STATS:
        raise ValueError(f"unknown dataset {name!r} for normalization statistics; known: {sorted(DATASET_STATS)}")
    return DATASET_STATS[key]


@dataclass(frozen=True)
class QuantPolicy:
    """Which layers of a model are quantized, beyond the body convolutions (always quantized).

    first_conv: the stem convolution that sees the image. shortcut: the 1x1 projection shortcuts
    (ResNet-50's ``downsample`` convs). classifier: the final linear layer.
    zero_point, shared_act_range: passed to every quantized layer (``"float"`` and ``True``
    reproduce the reference code's quantizer; the defaults are the integer-exact ones).

    Defaults follow the reference code: CIFAR networks quantize only the 3x3 block convs
    (``QuantPolicy()``); ResNet-50 also quantizes its downsample convs (``QuantPolicy(shortcut=True)``).
    """

    first_conv: bool = False
    shortcut: bool = False
    classifier: bool = False
    zero_point: str = "int"
    shared_act_range: bool = False

    def __post_init__(self):  # (classifier="no" quantized the classifier: a non-empty string is true)
        for name in ("first_conv", "shortcut", "classifier", "shared_act_range"):
            check_flag(getattr(self, name), f"QuantPolicy: {name}")
        # here, not when a model is built, where the message named ActQuantizer's argument
        try:
            check_zero_point_mode(self.zero_point)
        except ValueError as e:
            raise ValueError(f"QuantPolicy: {e}") from None


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; x: float [N, C, H, W] in [0, 1], cast to the buffers' dtype (the
    model's); integer images are refused.

    state_dict: ``mean`` and ``std`` (float32 [C]), so a checkpoint remembers its normalization.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        # Checked on the host: under ``with torch.device("meta")`` (building a large model without memory)
        # the tensors would have no values to check; the buffers then go to that default device.
        mean = torch.as_tensor(mean, dtype=torch.float32, device="cpu").flatten()
        std = torch.as_tensor(std, dtype=torch.float32, device="cpu").flatten()
        if mean.numel() != std.numel() or mean.numel() == 0:
            raise ValueError(f"Normalize: mean and std need one entry per channel, got {mean.numel()} and "
                             f"{std.numel()}")
        if not bool(mean.isfinite().all()) or not bool((std > 0).all() and std.isfinite().all()):
            raise ValueError(f"Normalize: mean must be finite and std finite and positive, got mean {mean.tolist()}, "
                             f"std {std.tolist()}")
        self._stats = (mean.tolist(), std.tolist())
        self.register_buffer("mean", torch.tensor(self._stats[0], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(self._stats[1], dtype=torch.float32))

    def reset_parameters(self) -> None:
        """The buffers back at the statistics given at construction: the meta-device recipe (build under
        ``torch.device("meta")``, ``to_empty``, then every module's ``reset_parameters``) left them holding
        whatever memory ``to_empty`` gave them."""
        with torch.no_grad():
            self.mean.copy_(torch.tensor(self._stats[0], dtype=self.mean.dtype))
            self.std.copy_(torch.tensor(self._stats[1], dtype=self.std.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.numel():
            raise ValueError(
                f"Normalize: expected input [N, {self.mean.numel()}, H, W], got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            # uint8 pixels in 0..255 were promoted to float and ran, giving confident nonsense.
            raise ValueError(f"Normalize: expected float images in [0, 1], got dtype {x.dtype} "
                             f"(for uint8 pixels: x.float() / 255)")
        # A float64 batch (numpy's default) met float32 weights in the first conv and failed there
        # without naming the input; images are cast to the model's dtype instead.
        x = x.to(self.mean.dtype)
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"mean={[round(v, 4) for v in self.mean.tolist()]}, std={[round(v, 4) for v in self.std.tolist()]}"


def make_normalize(mean, std, dataset: str, channels: int) -> Normalize:
    """The in-model Normalize: given mean/std, else the statistics of ``dataset``."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither (then the dataset's own statistics are used)")
    if mean is None:
        mean, std = dataset_stats(dataset)
    norm = Normalize(mean, std)
    if norm.mean.numel() != channels:
        raise ValueError(f"mean/std have {norm.mean.numel()} channels, the model takes {channels}")
    return norm


class LayerFactory:
    """Builds quantized or full-precision layers and switchable or plain BNs for one model."""

    def __init__(self, precisions, policy: QuantPolicy, switchable_bn: bool):
        if not isinstance(policy, QuantPolicy):
            raise TypeError(f"policy must be a dwq.models.QuantPolicy, got {type(policy).__name__}")
        self.precisions = list(precisions)
        self.policy = policy
        self.switchable_bn = check_flag(switchable_bn, "switchable_bn")  # (bool("no") built switchable BNs)

    def conv(self, quantized: bool, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
             padding: int = 0, bias: bool = False) -> nn.Conv2d:
        if quantized:
            return QConv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias,
                           precisions=self.precisions, zero_point=self.policy.zero_point,
                           shared_act_range=self.policy.shared_act_range)
        return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)

    def linear(self, quantized: bool, in_f: int, out_f: int, bias: bool = True) -> nn.Linear:
        if quantized:
            return QLinear(in_f, out_f, bias=bias, precisions=self.precisions,
                           zero_point=self.policy.zero_point, shared_act_range=self.policy.shared_act_range)
        return nn.Linear(in_f, out_f, bias=bias)

    def bn(self, num_features: int) -> nn.Module:
        if self.switchable_bn:
            return SwitchableBatchNorm2d(num_features, self.precisions)
        return nn.BatchNorm2d(num_features)


def check_flag(v, name: str) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return v


def check_num_classes(num_classes: int) -> int:
    n = index_or_none(num_classes)  # (numpy ints too, as the precisions take them; not a bool, nor a float)
    if n is None or n < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return n


def default_precisions(precisions: Optional[Sequence]):
    """The paper's RPT set 4..16 when none is given."""
    return list(range(4, 17)) if precisions is None else precision_list(precisions)

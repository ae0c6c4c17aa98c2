"""Model zoo: the paper's architectures built from ``dwq.nn`` layers.

Every constructor takes ``num_classes``, ``precisions`` (the precision set, default 4..16),
``policy`` (a :class:`QuantPolicy`: which layers are quantized), ``switchable_bn`` and
``mean``/``std`` of the in-model normalization (default: the dataset's own statistics); inputs
are images in [0, 1].

>>> import dwq
>>> model = dwq.models.get_model("preact_resnet18", num_classes=10, precisions=[4, 8, None])
>>> sorted(dwq.models.MODELS)
['preact_resnet18', 'resnet50', 'small_cnn', 'wide_resnet34_10']
"""
from typing import Callable, Dict

from torch import nn

from dwq.models.build import build_model, canonical_network, reference_policy
from dwq.models.common import DATASET_STATS, Normalize, QuantPolicy, dataset_stats
from dwq.models.preact_resnet import PreActResNet, preact_resnet18
from dwq.models.reference_import import load_reference_state_dict, reference_to_dwq_state_dict
from dwq.models.resnet import ResNet, load_torchvision_state_dict, resnet50
from dwq.models.small_cnn import SmallCNN, small_cnn
from dwq.models.wide_resnet import WideResNet, wide_resnet34_10

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "small_cnn": small_cnn,
    "preact_resnet18": preact_resnet18,
    "wide_resnet34_10": wide_resnet34_10,
    "resnet50": resnet50,
}

# Other spellings found in the paper and the reference code.
ALIASES = {
    "preactresnet18": "preact_resnet18",
    "wrn34_10": "wide_resnet34_10",
    "wrn32": "wide_resnet34_10",
    "wideresnet32": "wide_resnet34_10",
    "wideresnet34_10": "wide_resnet34_10",
    "resnet_50": "resnet50",
    "smallcnn": "small_cnn",
}


def get_model(name: str, **kwargs) -> nn.Module:
    """Builds a model by name (see ``MODELS``; the reference's names such as "PreActResNet18" and
    "WideResNet32" work too); keyword arguments go to its constructor.

    ValueError for an unknown name; TypeError for an argument the constructor does not take.
    """
    return MODELS[canonical_network(name)](**kwargs)


__all__ = [
    "DATASET_STATS",
    "MODELS",
    "Normalize",
    "PreActResNet",
    "QuantPolicy",
    "ResNet",
    "SmallCNN",
    "WideResNet",
    "build_model",
    "canonical_network",
    "dataset_stats",
    "get_model",
    "load_reference_state_dict",
    "load_torchvision_state_dict",
    "preact_resnet18",
    "reference_policy",
    "reference_to_dwq_state_dict",
    "resnet50",
    "small_cnn",
    "wide_resnet34_10",
]

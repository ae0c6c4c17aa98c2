"""Build a model by network name for a dataset: the one place that knows which network fits which
data (classes, input channels, normalization), used by ``dwq train``, checkpoint loading and deploy."""
from typing import Optional, Sequence, Tuple

from torch import nn

from dwq.data import dataset_info
from dwq.models.common import QuantPolicy

__all__ = ["build_model", "canonical_network"]


def canonical_network(name: str) -> str:
    """The zoo key of a network name (reference spellings such as "PreActResNet18" accepted);
    ValueError naming the choices for an unknown one."""
    from dwq.models import ALIASES, MODELS

    if not isinstance(name, str):
        raise ValueError(f"network name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, ALIASES.get(key.replace("_", ""), key))
    if key not in MODELS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(MODELS)}")
    return key


def build_model(network: str, dataset: str, precisions: Sequence, switchable_bn: bool, width: int = 32,
                pretrained: Optional[str] = None, policy: Optional[QuantPolicy] = None) -> Tuple[nn.Module, str]:
    """``(model, network key)``: ``network`` built for ``dataset``'s classes and mean/std.

    width: small_cnn only. pretrained: resnet50 only, a local torchvision state_dict. policy: which
    layers are quantized and how (default: the network's own default). ValueError for a network that
    does not take the dataset's images or an option it does not have.
    """
    from dwq.models import MODELS

    info = dataset_info(dataset)
    key = canonical_network(network)
    kw = dict(num_classes=info.num_classes, precisions=list(precisions), switchable_bn=switchable_bn,
              mean=list(info.mean), std=list(info.std))
    if policy is not None:
        kw["policy"] = policy
    if key == "small_cnn":
        if info.input_size[0] != 1:
            raise ValueError(f"small_cnn takes 1-channel 28x28 images (mnist5k), not {dataset}")
        kw["width"] = width
    elif info.input_size[0] != 3:
        raise ValueError(f"{key} takes RGB images; use small_cnn with {dataset}")
    if pretrained:
        if key != "resnet50":
            raise ValueError("pretrained weights are for resnet50 only")
        kw["weights_path"] = pretrained
    return MODELS[key](**kw), key

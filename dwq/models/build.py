"""Build a model by network name for a dataset: the one place that knows which network fits which
data (classes, input channels, normalization), used by ``dwq train``, checkpoint loading and deploy."""
from typing import Optional, Sequence, Tuple

from torch import nn

from dwq.data import dataset_info, reference_stats
from dwq.models.common import QuantPolicy
from dwq.quant.precision import precision_list

__all__ = ["build_model", "canonical_network", "reference_policy"]


def canonical_network(name: str) -> str:
    """The zoo key of a network name (reference spellings such as "PreActResNet18" accepted);
    ValueError naming the choices for an unknown one."""
    from dwq.models import ALIASES, MODELS

    if not isinstance(name, str):
        raise ValueError(f"network name must be a string, got {name!r}")
    # Compared without separators, so that every spelling of a name works, not only those whose
    # separators happen to fall where the key's do ("PreActResNet-18" worked, "WRN-34-10" did not).
    bare = name.strip().lower().replace("-", "").replace("_", "")
    known = {k.replace("_", ""): v for k, v in ALIASES.items()}
    known.update({k.replace("_", ""): k for k in MODELS})
    if bare not in known:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(MODELS)}")
    return known[bare]


def reference_policy(network: str) -> QuantPolicy:
    """The reference code's quantizer for ``network``: its choice of quantized layers (CIFAR networks:
    the 3x3 block convs; ResNet-50: also the downsample convs), the float zero point and one activation
    range shared by all precisions, tracked in every train-mode forward."""
    key = canonical_network(network)
    return QuantPolicy(shortcut=key == "resnet50", zero_point="float", shared_act_range=True)


def build_model(network: str, dataset: str, precisions: Sequence, switchable_bn: bool, width: int = 32,
                pretrained: Optional[str] = None, policy: Optional[QuantPolicy] = None,
                reference: bool = False) -> Tuple[nn.Module, str]:
    """``(model, network key)``: ``network`` built for ``dataset``'s classes and mean/std.

    width: small_cnn only. pretrained: resnet50 only, a local torchvision state_dict. policy: which
    layers are quantized and how (default: the network's own default). reference: the reference
    code's quantizer (:func:`reference_policy`) and normalization (``dwq.data.reference_stats``:
    CIFAR-100 with CIFAR-10's statistics); ``policy`` must then be None or that policy. ValueError
    for a network that does not take the dataset's images or an option it does not have.
    """
    from dwq.models import MODELS

    info = dataset_info(dataset)
    key = canonical_network(network)
    mean, std = info.mean, info.std
    if reference:
        ref = reference_policy(key)
        if policy is not None and policy != ref:
            raise ValueError(f"reference=True builds the reference's quantizer {ref}; got policy={policy}")
        policy = ref
        mean, std = reference_stats(dataset)
    kw = dict(num_classes=info.num_classes, precisions=precision_list(precisions), switchable_bn=switchable_bn,
              mean=list(mean), std=list(std))
    if policy is not None:
        kw["policy"] = policy
    if key == "small_cnn":
        if info.input_size[0] != 1:
            raise ValueError(f"small_cnn takes 1-channel 28x28 images (mnist5k), not {dataset}")
        kw["width"] = width
    elif info.input_size[0] != 3:
        raise ValueError(f"{key} takes RGB images; use small_cnn with {dataset}")
    elif width != 32:  # (dropped silently; 32, the default, is what callers pass through for any network)
        raise ValueError(f"width is small_cnn's option; {key} has none, got width={width!r}")
    if pretrained:
        if key != "resnet50":
            raise ValueError("pretrained weights are for resnet50 only")
        kw["weights_path"] = pretrained
    return MODELS[key](**kw), key

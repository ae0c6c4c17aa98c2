"""dwq's bottleneck ResNet against torchvision's on an input large enough that the last stage's map is 2x2:
the same weights give the same logits and every stage's output has torchvision's shape. At 32x32 (the other
torchvision comparison) layer4 ends at 1x1, where any global pooling (max, sum, a corner) agrees with the
average; here it must be the average."""
import pytest
import torch

from conftest import torchvision_or_skip
from dwq.models import QuantPolicy, ResNet, load_torchvision_state_dict
from test_reference_import import _randomize

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _pair():
    torchvision = torchvision_or_skip("needs torchvision's ResNet as the reference")
    from torchvision.models.resnet import Bottleneck

    torch.manual_seed(0)
    ref = _randomize(torchvision.models.resnet.ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10), seed=1)
    ours = ResNet([1, 1, 1, 1], 10, [None], QuantPolicy(shortcut=True), False, None, None)
    load_torchvision_state_dict(ours, ref.state_dict())
    return ours.eval(), ref.eval()


def _stage_shapes(model, x):
    shapes, hooks = {}, []
    for name in ("maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
        hooks.append(getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, shapes


@pytest.mark.parametrize("size", [64, 80])
def test_resnet_logits_and_stage_shapes_equal_torchvisions(size):
    """Same weights and a (size x size) input: stage shapes equal, logits equal (layer4 at 2x2 or 3x3)."""
    ours, ref = _pair()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    got, got_shapes = _stage_shapes(ours, x)
    want, want_shapes = _stage_shapes(ref, (x - mean) / std)
    assert got_shapes == want_shapes, f"stage outputs {got_shapes}, torchvision's {want_shapes}"
    assert got_shapes["layer4"][2:] == (-(-size // 32),) * 2  # more than 1x1: the pooling matters
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4,
                               msg=lambda m: f"{size}x{size}: logits differ from torchvision's: {m}")

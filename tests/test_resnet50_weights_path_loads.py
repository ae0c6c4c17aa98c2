"""resnet50(weights_path=...) loads the file's weights, every BN into every switchable branch, also
from a checkpoint dict holding the state_dict under "state_dict"; the source here is a plain-BN dwq
ResNet-50 saved with torchvision's key names, so the test needs no torchvision."""
import torch
from torch import nn

from dwq.models import resnet50


def _torchvision_style_state_dict():
    src = resnet50(num_classes=10, precisions=[None], switchable_bn=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.normal_(1, 0.1, generator=g)
    return {k: v for k, v in src.state_dict().items()
            if not k.endswith("precision_set") and ".input_quant." not in k and not k.startswith("normalize.")}


def test_resnet50_weights_path_fills_the_model(tmp_path):
    sd = _torchvision_style_state_dict()
    path = tmp_path / "r50.pth"
    torch.save({"state_dict": sd, "epoch": 90}, path)
    model = resnet50(num_classes=10, precisions=[4, None], weights_path=str(path))
    got = model.state_dict()
    for key in ("conv1.weight", "layer3.2.conv2.weight", "layer4.0.downsample.0.weight", "fc.weight", "fc.bias"):
        assert torch.equal(got[key], sd[key]), key
    for i in range(2):
        assert torch.equal(got[f"bn1.bn.{i}.running_var"], sd["bn1.running_var"])
        assert torch.equal(got[f"layer2.0.downsample.1.bn.{i}.weight"], sd["layer2.0.downsample.1.weight"])

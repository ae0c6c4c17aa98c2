"""What fx tracing cannot see is refused by name (dwq/deploy/tracing.py): a subclass's own forward,
module hooks, ``+=`` on a tensor read again, a wrapper around the model. Each converted silently
wrong before: logits off by 20-60% of their scale."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn
from torch.nn import functional as F

import dwq
from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d, QLinear
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class ClippedReLU(nn.ReLU):
    def forward(self, x):
        return torch.clamp(x, 0, 1)


class StdConv2d(nn.Conv2d):
    def forward(self, x):
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class ScaledQConv2d(QConv2d):
    def forward(self, x):
        return 2 * super().forward(x)


class Net(nn.Module):
    def __init__(self, stem=nn.Conv2d, act=nn.ReLU, conv=QConv2d):
        super().__init__()
        self.stem = stem(3, 4, 3, padding=1)
        self.c = conv(4, 4, 3, padding=1, precisions=[8])
        self.act = act()
        self.fc = QLinear(4, 2, precisions=[8])

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.act(self.c(self.stem(x))), 1).flatten(1))


@pytest.mark.parametrize("kw, where, base", [
    (dict(act=ClippedReLU), r"layer 'act' \(ClippedReLU\)", "ReLU"),
    (dict(stem=StdConv2d), r"layer 'stem' \(StdConv2d\)", "Conv2d"),
    (dict(conv=ScaledQConv2d), r"layer 'c' \(ScaledQConv2d\)", "QConv2d"),
], ids=["relu", "conv", "qconv"])
def test_a_subclass_with_its_own_forward_is_refused(kw, where, base):
    m = calibrated(Net(**kw), (2, 3, 6, 6))
    with pytest.raises(ConversionError, match=f"cannot convert {where}: it overrides {base}.forward, which convert "
                                              f"would not run"):
        convert(m)


class HalfWeightConv(nn.Conv2d):
    def _conv_forward(self, x, w, b):
        return super()._conv_forward(x, 0.5 * w, b)


def test_an_override_of_what_the_forward_calls_or_of_one_instance_is_refused():
    """A subclass overriding the base forward's helper (_conv_forward: weight standardisation, scaling),
    a forward set on one instance, and global module hooks converted silently wrong."""
    m = calibrated(Net(stem=HalfWeightConv), (2, 3, 6, 6))
    with pytest.raises(ConversionError, match=r"layer 'stem' \(HalfWeightConv\): it overrides Conv2d._conv_forward"):
        convert(m)
    m = calibrated(Net(), (2, 3, 6, 6))
    m.act.forward = lambda t: torch.clamp(t, 0, 0.05)
    with pytest.raises(ConversionError, match=r"layer 'act' \(ReLU\): it overrides its forward, set on the instance"):
        convert(m)
    del m.act.forward
    h = nn.modules.module.register_module_forward_hook(lambda mod, i, o: None)
    try:
        with pytest.raises(ConversionError, match="global module forward hooks are registered"):
            convert(m)
    finally:
        h.remove()
    convert(m)


def test_a_subclass_that_keeps_the_forward_converts_and_agrees():
    class MyReLU(nn.ReLU):
        pass

    m = calibrated(Net(act=MyReLU), (2, 3, 6, 6))
    im, x = convert(m), torch.rand(3, 3, 6, 6)
    with torch.no_grad():
        assert torch.allclose(m(x), im(x), atol=1e-5)


@pytest.mark.parametrize("kind", ["forward", "pre", "model"])
def test_forward_hooks_are_refused(kind):
    m = calibrated(Net(), (2, 3, 6, 6))
    target = m if kind == "model" else m.act
    h = (target.register_forward_pre_hook(lambda mod, i: None) if kind == "pre"
         else target.register_forward_hook(lambda mod, i, o: o * 0.5))
    name = "the model" if kind == "model" else "'act'"
    with pytest.raises(ConversionError, match=f"cannot convert {name} \\(.*\\): it has forward hooks"):
        convert(m)
    h.remove()
    convert(m)


class InplaceAddBlock(nn.Module):
    def __init__(self, read_again: bool, inplace: bool = True):
        super().__init__()
        self.c0 = QConv2d(3, 3, 3, padding=1, precisions=[8])
        self.c = QConv2d(3, 3, 3, padding=1, precisions=[8])
        self.read_again, self.inplace = read_again, inplace

    def forward(self, x):
        h = self.c0(x)
        skip = h
        if self.inplace:
            h += self.c(h)  # eager: skip is h, so it changes too
        else:
            h = h + self.c(h)  # a new tensor: skip keeps c0's output
        return (h + skip if self.read_again else h).flatten(1)


def test_an_inplace_add_read_again_is_refused_and_one_not_read_again_converts():
    m = calibrated(InplaceAddBlock(read_again=True), (2, 3, 5, 5))
    with pytest.raises(ConversionError, match=r"'add' \(call_function\): an in-place add \(\+=\) whose input is read "
                                              r"again after it \(by 'add_1'\).*write a = a \+ b"):
        convert(m)
    m = calibrated(InplaceAddBlock(read_again=False), (2, 3, 5, 5))
    im, x = convert(m), torch.rand(2, 3, 5, 5)
    with torch.no_grad():
        assert torch.allclose(m(x), im(x), atol=1e-5)


def test_a_plain_add_whose_input_is_read_again_converts_and_agrees():
    """Only `+=` is refused when its input is read again: `a = a + b` makes a new tensor."""
    m = calibrated(InplaceAddBlock(read_again=True, inplace=False), (4, 3, 6, 6))
    im, x = convert(m), torch.rand(3, 3, 6, 6)
    with torch.no_grad():
        want, got = m(x), im(x)
    assert torch.allclose(got, want, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize("wrap, attr", [(lambda m: dwq.RandomPrecision(m, seed=0), "model"),
                                        (nn.DataParallel, "module")], ids=["random_precision", "data_parallel"])
def test_a_wrapper_names_what_to_convert(wrap, attr):
    m = calibrated(Net(), (2, 3, 6, 6))
    with pytest.raises(ConversionError, match=f"not a {type(wrap(m)).__name__} wrapping it: convert its .{attr} "
                                              r"\(Net\)"):
        convert(wrap(m))


def test_different_precision_sets_name_a_layer_of_each():
    m = Net()
    m.fc = QLinear(4, 2, precisions=[4, 8])
    with pytest.raises(ValueError, match=r"different precision sets: \[8\] \('c', QConv2d\) and \[4, 8\] "
                                         r"\('fc', QLinear\)"):
        dwq.precision_set(m)

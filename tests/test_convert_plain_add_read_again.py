"""dwq.deploy.convert tells ``a + b`` from ``a += b``: only the in-place add whose input is read again is
refused; a plain add (BINARY_OP +, not +=) of a tensor read again after it converts and agrees."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _AddReadAgain(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.c0 = QConv2d(3, 3, 3, padding=1, precisions=[8])
        self.c = QConv2d(3, 3, 3, padding=1, precisions=[8])
        self.inplace = inplace

    def forward(self, x):
        h = self.c0(x)
        g = self.c(h)
        skip = g
        if self.inplace:
            g += h  # eager: skip is g, so it changes too
        else:
            g = g + h  # a new tensor: skip keeps c's output
        return (g + skip).flatten(1)  # c's output read again after the add


def test_a_plain_add_whose_input_is_read_again_converts_and_agrees():
    m = calibrated(_AddReadAgain(inplace=False), (4, 3, 6, 6))
    im = convert(m)
    x = torch.rand(3, 3, 6, 6)
    with torch.no_grad(), dwq.precision(m, 8), dwq.precision(im, 8):
        want, got = m(x), im(x)
    assert torch.allclose(got, want, atol=1e-4 * want.abs().max().item())


def test_the_same_add_written_in_place_is_refused():
    m = calibrated(_AddReadAgain(inplace=True), (4, 3, 6, 6))
    with pytest.raises(ConversionError, match=r"an in-place add \(\+=\) whose input is read again"):
        convert(m)

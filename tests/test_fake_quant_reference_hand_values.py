"""fake_quantize_ref (the definition the kernels are compared with, and the path taken without a kernel
and under torch.compile) pinned against values worked out by hand: round half to even before the zero
point is added (an odd zero point tells the two orders apart), saturation at both ends, per-channel
qparams along a negative axis, and a 0-d x, whose outputs stay 0-d like the op's."""
import pytest
import torch

from dwq.ops import HAS_EXT, fake_quantize, fake_quantize_ref, has_kernel

I32 = torch.int32


def _both(x, scale, zp, bits, axis=None):
    """The reference's (x_hat, codes), and the op's where a CPU kernel serves."""
    out = [fake_quantize_ref(x, scale, zp, bits, axis, return_codes=True)]
    if HAS_EXT and has_kernel("fake_quantize", "cpu"):
        out.append(fake_quantize(x, scale, zp, bits, axis, return_codes=True))
    return out


def test_ties_round_to_even_before_an_odd_zero_point():
    # x / s = 0.5, 1.5, 2.5, -0.5, -2.5 round to 0, 2, 2, -0, -2; + z = 3; 9 and -9 saturate at 7 and 0
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 9.0, -9.0])
    for x_hat, codes in _both(x, torch.tensor([1.0]), torch.tensor([3], dtype=I32), 3):
        assert codes.tolist() == [3, 5, 5, 3, 1, 7, 0]
        assert x_hat.tolist() == [0.0, 2.0, 2.0, 0.0, -2.0, 4.0, -3.0]


def test_per_channel_along_a_negative_axis():
    x = torch.tensor([[0.3, 0.3], [1.0, -1.0]])  # channels are the columns: axis=-1
    scale, zp = torch.tensor([0.25, 0.5]), torch.tensor([1, 2], dtype=I32)
    # column 0: 0.3/0.25 = 1.2 -> 1 (+1 = 2), 1.0/0.25 = 4 (+1 = 5); column 1: 0.3/0.5 = 0.6 -> 1 (+2 = 3),
    # -1.0/0.5 = -2 (+2 = 0)
    for x_hat, codes in _both(x, scale, zp, 4, axis=-1):
        assert codes.tolist() == [[2, 3], [5, 0]]
        assert x_hat.tolist() == [[0.25, 0.5], [1.0, -1.0]]


def test_a_0d_x_gives_0d_outputs():
    x = torch.tensor(1.26)
    for x_hat, codes in _both(x, torch.tensor([0.5]), torch.tensor([3], dtype=I32), 4):
        assert x_hat.shape == () and codes.shape == ()
        assert x_hat.item() == 1.5 and codes.item() == 6


def test_the_path_without_a_kernel_keeps_a_0d_shape(monkeypatch):
    from dwq.ops import _lib

    monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    x_hat, codes = fake_quantize(torch.tensor(-0.7), torch.tensor([0.5]), torch.tensor([3], dtype=I32), 4,
                                 return_codes=True)
    assert x_hat.shape == () and codes.shape == () and x_hat.item() == -0.5 and codes.item() == 2

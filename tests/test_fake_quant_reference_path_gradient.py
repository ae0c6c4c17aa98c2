"""The pure-PyTorch path of fake_quantize (no kernel for the device, and torch.compile's trace) has the
kernel's straight-through gradient: the incoming gradient passed to x unchanged, codes not differentiable."""
import torch

from dwq.ops import fake_quantize
from dwq.ops import _lib


def test_reference_path_gradient_is_straight_through(monkeypatch):
    monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    x = torch.tensor([[-3.0, 0.2, 0.9], [1.4, 7.0, -0.6]], requires_grad=True)  # some clamp, some do not
    scale, zp = torch.tensor([0.25, 0.5]), torch.tensor([8, 2], dtype=torch.int32)
    x_hat, codes = fake_quantize(x, scale, zp, 4, axis=0, return_codes=True)
    assert not codes.requires_grad
    g = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])
    x_hat.backward(g)
    assert torch.equal(x.grad, g)

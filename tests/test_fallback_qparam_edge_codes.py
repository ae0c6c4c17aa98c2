"""The pure-PyTorch paths (a device without a kernel) check scale and zero point like the kernels: the
extreme codes 0 and 2^bits - 1 are valid zero points there too, one past them is refused, and the
results equal the kernels'."""
import pytest
import torch

from dwq.ops import HAS_EXT, fake_quantize
from dwq.ops import _lib
from dwq.ops import qgemm as q

I32 = torch.int32


@pytest.mark.parametrize("bits", [2, 5, 8])
def test_fake_quantize_without_a_kernel_takes_the_extreme_codes_as_zero_points(monkeypatch, bits):
    qmax = (1 << bits) - 1
    x = torch.linspace(-3, 3, 13)
    scale = torch.tensor([0.4])
    want = [fake_quantize(x, scale, torch.tensor([z], dtype=I32), bits, return_codes=True) for z in (0, qmax)]
    monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    for z, (w_hat, w_codes) in zip((0, qmax), want):
        x_hat, codes = fake_quantize(x, scale, torch.tensor([z], dtype=I32), bits, return_codes=True)
        assert torch.equal(codes, w_codes) and torch.equal(x_hat, w_hat), z
    with pytest.raises(ValueError, match=rf"zero_point\[0\] = {qmax + 1} is not a code of {bits} bits"):
        fake_quantize(x, scale, torch.tensor([qmax + 1], dtype=I32), bits)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
@pytest.mark.parametrize("bits", [4, 8, 12])
def test_quantize_act_and_affine_without_a_kernel_take_the_extreme_codes(monkeypatch, bits):
    qmax = (1 << bits) - 1
    x = torch.linspace(-2, 2, 24).reshape(2, 3, 2, 2)
    ones, zeros = torch.ones(3), torch.zeros(3)
    s = torch.tensor([0.05])
    cases = [(z, q.quantize_act(x, s, torch.tensor([z], dtype=I32), bits),
              q.affine_quantize_act(x, ones, zeros, False, s, torch.tensor([z], dtype=I32), bits)) for z in (0, qmax)]
    monkeypatch.setitem(_lib._KERNELS, ("quantize_act", "cpu"), False)
    monkeypatch.setitem(_lib._KERNELS, ("affine_quantize_act", "cpu"), False)
    for z, want, want_affine in cases:
        zp = torch.tensor([z], dtype=I32)
        assert torch.equal(q.quantize_act(x, s, zp, bits), want), z
        assert torch.equal(q.affine_quantize_act(x, ones, zeros, False, s, zp, bits), want_affine), z

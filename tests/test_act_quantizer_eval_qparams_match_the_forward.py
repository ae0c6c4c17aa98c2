"""ActQuantizer.eval_qparams (what conversion reads) gives the scale and zero point its eval forward uses,
in both zero-point modes: with zero_point="float" the state is (min, range), not (min, max)."""
import pytest
import torch

from dwq.quant import ActQuantizer
from dwq.quant.fake_quant import fake_quantize, fake_quantize_float_zp


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_eval_qparams_are_those_of_the_eval_forward(zero_point):
    q = ActQuantizer([4, 8], zero_point=zero_point).train()
    q(torch.linspace(-1.0, 3.0, 40), 4)
    q(torch.linspace(-0.5, 6.0, 40), 4)
    q.eval()
    scale, zp = q.eval_qparams(4, 4)
    assert scale.shape == (1,) and zp.shape == (1,)
    x = torch.linspace(-3.0, 8.0, 97)
    quant = fake_quantize_float_zp if zero_point == "float" else fake_quantize
    assert torch.equal(q(x, 4), quant(x, scale, zp, 4, None))


def test_float_eval_qparams_of_a_set_range_are_the_references():
    q = ActQuantizer([4, 8], zero_point="float")
    q.set_range(-1.0, 3.0, precision=4)
    scale, zp = q.eval_qparams(4, 4)
    assert torch.allclose(scale, torch.tensor([4.0 / 15])) and zp.tolist() == [-1.0]
    assert zp.dtype == torch.float32

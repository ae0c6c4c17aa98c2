"""dwq.quant.fake_quantize_float_zp (the reference code's quantizer, zero_point="float") pinned where the
suite left it open (found by mutation): its straight-through gradient also passes where x saturates,
per-channel qparams along a dimension other than 0, a 0-d x, and the refusals of NaN and of bit widths
outside 2..16."""
import pytest
import torch

from dwq.quant import fake_quantize_float_zp


def test_gradient_is_the_incoming_gradient_also_where_x_saturates():
    # scale 0.25, offset -1, 4 bits: the grid is -1..2.75; -3 and 7 saturate, the others do not
    x = torch.tensor([-3.0, -1.0, 0.2, 2.75, 7.0], requires_grad=True)
    out = fake_quantize_float_zp(x, torch.tensor([0.25]), torch.tensor([-1.0]), 4)
    assert out.detach().tolist() == [-1.0, -1.0, 0.25, 2.75, 2.75]
    g = torch.tensor([1.0, -2.0, 3.0, 0.5, -4.0])
    out.backward(g)
    assert torch.equal(x.grad, g)


def test_half_precision_gradient_is_straight_through_in_x_dtype():
    x = torch.tensor([-3.0, 0.2, 7.0], dtype=torch.float16, requires_grad=True)
    out = fake_quantize_float_zp(x, torch.tensor([0.25]), torch.tensor([-1.0]), 4)
    g = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float16)
    out.backward(g)
    assert x.grad.dtype == torch.float16 and torch.equal(x.grad, g)


@pytest.mark.parametrize("axis", [1, -1])
def test_per_channel_qparams_along_the_last_dimension(axis):
    x = torch.tensor([[0.3, 0.3, 0.3], [1.0, -1.0, 2.0]])  # channels are the columns
    scale, offset = torch.tensor([0.25, 0.5, 1.0]), torch.tensor([0.0, -1.0, 0.0])
    # column 0: 0.3/0.25 = 1.2 -> 1 -> 0.25, 1.0/0.25 = 4 -> 1.0; column 1: (0.3+1)/0.5 = 2.6 -> 3 -> 0.5,
    # 0 -> -1.0; column 2: 0.3 -> 0 -> 0.0, 2 -> 2.0
    got = fake_quantize_float_zp(x, scale, offset, 4, axis)
    assert got.tolist() == [[0.25, 0.5, 0.0], [1.0, -1.0, 2.0]]


def test_a_0d_x_gives_a_0d_output():
    got = fake_quantize_float_zp(torch.tensor(1.26), torch.tensor([0.5]), torch.tensor([-1.0]), 4)
    assert got.shape == () and got.item() == 1.5


def test_nan_in_x_is_refused():
    with pytest.raises(ValueError, match="fake_quantize: x contains NaN"):
        fake_quantize_float_zp(torch.tensor([0.0, float("nan")]), torch.ones(1), torch.zeros(1), 4)


@pytest.mark.parametrize("bits, message", [(1, "bits must be in 2..16, got 1"), (17, "bits must be in 2..16, got 17"),
                                           (4.0, "bits must be an int in 2..16")])
def test_bit_widths_outside_2_to_16_are_refused(bits, message):
    with pytest.raises(ValueError, match=message):
        fake_quantize_float_zp(torch.zeros(3), torch.ones(1), torch.zeros(1), bits)

"""The arithmetic contract across layers: a fake-quantized QConv2d/QLinear in eval mode computes
what the true-integer kernels compute from the same codes, scales and zero points (DESIGN.md:
equal up to float rounding of the epilogue), and both quantizer ops produce the same codes."""
import pytest
import torch
from torch.nn import functional as F

from dwq.deploy.operands import act_qparams, bn_affine, weight_codes
from dwq.nn import QConv2d, QLinear
from dwq.ops import HAS_EXT, fake_quantize, pack_conv_weight, pack_weight, qconv2d, qlinear, quantize_act

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

BITS = [2, 3, 4, 8, 9, 12, 16]


def integer_operands(layer, x, bits):
    """Input codes and weight codes/qparams exactly as the layer's quantizers choose them (dwq.deploy's
    conversion reads a layer through the same functions)."""
    sx, zx, _ = act_qparams(layer, bits)
    x_codes = quantize_act(x, sx, zx, bits)
    # The fused quantizer op (used in training) must give the same codes as the deploy-time one.
    _, fq_codes = fake_quantize(x, sx, zx, bits, return_codes=True)
    assert torch.equal(x_codes.to(torch.int32), fq_codes)
    w_codes, sw, zw, _ = weight_codes(layer, bits)
    return x_codes, sx, zx, w_codes, sw, zw


def assert_same_up_to_epilogue_rounding(y_int, y_fake):
    scale = y_fake.abs().max().item()
    torch.testing.assert_close(y_int, y_fake, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("stride, padding, k", [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 3, 7)])
def test_qconv2d_matches_fake_quant_layer(bits, stride, padding, k):
    torch.manual_seed(bits * 100 + k)
    conv = QConv2d(5, 7, k, stride=stride, padding=padding, precisions=[bits])
    conv.train()
    conv(torch.randn(4, 5, 11, 11))  # one batch sets the running range
    conv.eval()
    x = torch.randn(2, 5, 11, 11) * 0.9
    with torch.no_grad():
        y_fake = conv(x)
    x_codes, sx, zx, w_codes, sw, zw = integer_operands(conv, x, bits)
    y_int = qconv2d(x_codes, sx, zx, bits, pack_conv_weight(w_codes, zw, bits), sw, k, stride, padding,
                    affine_bias=conv.bias.detach())
    assert_same_up_to_epilogue_rounding(y_int, y_fake)


@pytest.mark.parametrize("bits", BITS)
def test_qlinear_matches_fake_quant_layer(bits):
    torch.manual_seed(bits)
    lin = QLinear(37, 11, precisions=[bits])
    lin.train()
    lin(torch.randn(16, 37))
    lin.eval()
    x = torch.randn(9, 37)
    with torch.no_grad():
        y_fake = lin(x)
    x_codes, sx, zx, w_codes, sw, zw = integer_operands(lin, x, bits)
    y_int = qlinear(x_codes, sx, zx, bits, pack_weight(w_codes, zw, bits), sw, affine_bias=lin.bias.detach())
    assert_same_up_to_epilogue_rounding(y_int, y_fake)


def test_folded_batch_norm_and_relu_in_the_epilogue():
    bits = 4
    conv = QConv2d(3, 6, 3, padding=1, bias=False, precisions=[bits])
    bn = torch.nn.BatchNorm2d(6)
    conv.train(), bn.train()
    bn(conv(torch.randn(8, 3, 9, 9)))
    conv.eval(), bn.eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        y_fake = F.relu(bn(conv(x)))
    a, b = bn_affine(bn)
    x_codes, sx, zx, w_codes, sw, zw = integer_operands(conv, x, bits)
    y_int = qconv2d(x_codes, sx, zx, bits, pack_conv_weight(w_codes, zw, bits), sw, 3, 1, 1,
                    affine_scale=a, affine_bias=b, relu=True)
    assert_same_up_to_epilogue_rounding(y_int, y_fake)

"""dwq.ops wrappers name the argument that is not a tensor (None, a list: the op's own error was "tensor
does not have a device", naming neither op nor argument; fake_quantize's check, shared), and the residual ops refuse a dtype their
kernels refuse on every path (found by an audit)."""
import pytest
import torch

from dwq import ops
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

SX, ZX = torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32)


def _operands():
    w = torch.randint(0, 256, (4, 3, 3, 3), dtype=torch.uint8)
    zw = torch.zeros(4, dtype=torch.int32)
    return (torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8), ops.pack_conv_weight(w, zw, 8),
            ops.pack_weight(w.reshape(4, -1), zw, 8), torch.full((4,), 0.1), zw, w)


def test_each_op_names_the_argument_that_is_not_a_tensor():
    x, wc, wl, sw, zw, w = _operands()
    xl = x.reshape(2, -1)[:, :27].contiguous()
    cases = [
        ("quantize_act", "scale", lambda: ops.quantize_act(torch.ones(3), None, ZX, 8)),
        ("quantize_act", "x", lambda: ops.quantize_act([1.0], SX, ZX, 8)),
        ("affine_quantize_act", "bias", lambda: ops.affine_quantize_act(torch.ones(2, 3), torch.ones(3), None, False,
                                                                         SX, ZX, 8)),
        ("pack_weight", "zero_point", lambda: ops.pack_weight(w.reshape(4, -1), None, 8)),
        ("pack_conv_weight", "w_codes", lambda: ops.pack_conv_weight([[1]], zw, 8)),
        ("qgemm_acc", "x_zero_point", lambda: ops.qgemm_acc(xl, None, 8, wl)),
        ("qlinear", "w_scale", lambda: ops.qlinear(xl, SX, ZX, 8, wl, None)),
        ("qlinear", "x_codes", lambda: ops.qlinear(xl.tolist(), SX, ZX, 8, wl, sw)),
        ("qconv2d_acc", "w_packed", lambda: ops.qconv2d_acc(x, ZX, 8, None, 3)),
        ("qconv2d", "x_scale", lambda: ops.qconv2d(x, None, ZX, 8, wc, sw, 3)),
        ("qconv2d_residual", "residual", lambda: ops.qconv2d_residual(x, SX, ZX, 8, wc, sw, 3, 1, 0, None, None, None,
                                                                       True, SX, ZX, 8)),
    ]
    for op, arg, call in cases:
        with pytest.raises(TypeError, match=f"^{op}: {arg} must be a tensor, got (NoneType|list)$"):
            call()


def test_the_residual_ops_refuse_other_dtypes_on_every_path():
    x, wc, _, sw, _, _ = _operands()
    for dtype in (torch.float64, torch.int32):
        res = torch.zeros(2, 4, 3, 4, dtype=dtype).contiguous(memory_format=torch.channels_last)
        with pytest.raises(ValueError, match=f"qconv2d_residual: residual must be a float32 tensor, got {dtype}"):
            ops.qconv2d_residual(x, SX, ZX, 8, wc, sw, 3, 1, 0, None, None, res, True, SX, ZX, 8)
    x64 = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="add_relu_quantize_: x must be float32, got torch.float64"):
        ops.add_relu_quantize_(x64, torch.ones(2, 3, dtype=torch.float64), SX, ZX, 8)
    assert torch.equal(x64, torch.ones(2, 3, dtype=torch.float64))

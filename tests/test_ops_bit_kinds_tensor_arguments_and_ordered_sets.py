"""Argument kinds, found by driving the API: dwq.ops refused numpy's ints as bit widths (dwq's layers,
precision sets and dwq.quant took them); a list as fake_quantize's scale and a float range in
choose_qparams failed with "'list' object has no attribute 'numel'" and "'float' object has no
attribute 'shape'"; a Python set was taken as a precision set in hash order, which then decided each
precision's BN branch and range slot."""
import numpy as np
import pytest
import torch

from dwq import ops
from dwq.nn import QConv2d
from dwq.quant import choose_qparams, fake_quantize

needs_ext = pytest.mark.skipif(not ops.HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@needs_ext
@pytest.mark.parametrize("kind", [np.int64, np.int32, torch.tensor])
def test_ops_take_any_integer_kind_of_bit_width(kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, generator=g)
    s, z = torch.tensor([0.05]), torch.tensor([128], dtype=torch.int32)
    assert torch.equal(ops.quantize_act(x, s, z, kind(8)), ops.quantize_act(x, s, z, 8))
    y, _ = ops.fake_quantize(x, s, torch.tensor([3], dtype=torch.int32), kind(4))
    assert torch.equal(y, ops.fake_quantize(x, s, torch.tensor([3], dtype=torch.int32), 4)[0])
    codes = torch.randint(0, 16, (8, 64), generator=g, dtype=torch.int32)
    zw = torch.full((8,), 7, dtype=torch.int32)
    packed = ops.pack_weight(codes, zw, kind(4))
    assert torch.equal(packed, ops.pack_weight(codes, zw, 4))
    xc = ops.quantize_act(x, s, z, 8)
    assert torch.equal(ops.qgemm_acc(xc, z, kind(8), packed), ops.qgemm_acc(xc, z, 8, packed))


@needs_ext
@pytest.mark.parametrize("bits", [True, 1, 17, 4.0, np.float64(4), torch.tensor([4])])
def test_what_is_no_bit_width_is_still_refused(bits):
    x, s, z = torch.randn(2, 8), torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"bits must be an int in 2..16"):
        ops.quantize_act(x, s, z, bits)
    with pytest.raises(ValueError, match=r"fake_quantize: bits must be an int in 2..16"):
        ops.fake_quantize(x, s, z, bits)


def test_a_scale_or_zero_point_that_is_no_tensor_is_named():
    x = torch.randn(3)
    with pytest.raises(TypeError, match="fake_quantize: scale must be a tensor, got list"):
        fake_quantize(x, [0.1], torch.tensor([3]), 4)
    with pytest.raises(TypeError, match="fake_quantize: zero_point must be a tensor, got int"):
        fake_quantize(x, torch.tensor([0.1]), 3, 4)


def test_a_range_of_python_floats_is_named():
    with pytest.raises(TypeError, match=r"min_val must be a tensor \(e.g. torch.tensor\(\[-1.0\]\)\), got float"):
        choose_qparams(-1.0, 1.0, 4)
    with pytest.raises(TypeError, match=r"max_val must be a tensor .*got float"):
        choose_qparams(torch.tensor([-1.0]), 1.0, 4)
    s, z = choose_qparams(torch.tensor([-1.0]), torch.tensor([1.0]), 4)
    assert s.item() == pytest.approx(2 / 15) and z.item() in (7, 8)


@pytest.mark.parametrize("unordered", [{8, 4}, frozenset({4, 16, 2})])
def test_a_set_is_no_precision_set(unordered):
    with pytest.raises(ValueError, match=r"precisions must be a list or tuple, in the order wanted \(a set has none\)"):
        QConv2d(2, 2, 1, precisions=unordered)
    assert QConv2d(2, 2, 1, precisions=sorted(unordered)).precisions == tuple((b, b) for b in sorted(unordered))

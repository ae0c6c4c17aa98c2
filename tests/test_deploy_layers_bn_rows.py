"""dwq.deploy.layers: each precision of a float batch norm reads its own row (found by mutation)."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 4, None]


def _int_model(seed):
    torch.manual_seed(seed)
    return convert(calibrated(small_cnn(precisions=SET, width=4), (8, 1, 28, 28), seed=seed))


def test_a_float_batch_norm_uses_the_row_of_the_current_precision():
    """bn1 (FloatAffine) holds one row of scale, bias and output quantization per precision: each
    precision's forward reads its own (rows made distinct here), at quantized and full precision."""
    im = _int_model(0)
    bn = im.layers["bn1"]
    x = torch.rand(2, 4, 5, 5, generator=torch.Generator().manual_seed(3)) - 0.3
    with torch.no_grad():
        bn.scale.copy_(torch.tensor([[1.0], [2.0], [3.0]]).expand_as(bn.scale))
        bn.bias.copy_(torch.tensor([[0.5], [-0.25], [0.125]]).expand_as(bn.bias))
        bn.out_zero_point.copy_(torch.tensor([1, 3, 0], dtype=torch.int32))
        for i, p in enumerate(SET):
            with dwq.precision(im, p):
                y = bn(x)
            want = bn.scale[i].view(1, -1, 1, 1) * x + bn.bias[i].view(1, -1, 1, 1)
            want = torch.relu(want) if bn.relu else want
            if p is None:
                torch.testing.assert_close(y, want)
            else:
                s, z = bn.out_scale[i], bn.out_zero_point[i]
                codes = torch.clamp(torch.round(want / s) + z, 0, (1 << p) - 1)
                assert y.dtype == torch.uint8 and (y.int() - codes.int()).abs().max() <= 1, p
                assert (y.int() == codes.int()).float().mean() > 0.99, p

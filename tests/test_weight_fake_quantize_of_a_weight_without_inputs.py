"""dwq::weight_fake_quantize on a weight with output channels but no inputs (w [O, 0, ...], e.g. a
QLinear(0, O) or a conv with no input channels, called through torch.ops.dwq so no Python shortcut
runs first): nothing to quantize, an empty result of w's shape in the asked dtype, as the reference
path gives; the kernel's work split (16384 / inner elements per task) must never see inner = 0."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)


@pytest.mark.parametrize("shape", [(3, 0), (2, 0, 3, 3), (5, 4, 0)])
@pytest.mark.parametrize("dtype, out", [(torch.float32, None), (torch.float16, None), (torch.bfloat16, None),
                                        (torch.float32, torch.float16), (torch.float32, torch.bfloat16)])
def test_an_empty_row_weight_comes_back_empty(isa, shape, dtype, out):
    w = torch.empty(shape, dtype=dtype)
    y = torch.ops.dwq.weight_fake_quantize(w, 4, out)
    assert y.shape == w.shape and y.dtype == (out or dtype) and y.is_contiguous()

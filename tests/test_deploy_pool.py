"""Max pooling of codes in the integer model: equal to torch's pooling of the same values for every
window, stride, padding and layout, and channels-last codes stay channels-last."""
import pytest
import torch
import torch.nn.functional as F

from dwq.deploy.integer_model import _max_pool2d

CASES = [  # (shape, kernel, stride, padding, ceil_mode)
    ((4, 16, 28, 28), 2, None, 0, False),
    ((3, 5, 7, 9), 2, None, 0, False),      # odd sizes: the last row and column are dropped
    ((2, 4, 9, 9), 3, None, 0, False),
    ((2, 3, 5, 4), (2, 1), None, 0, False),
    ((2, 3, 5, 4), (1, 3), None, 0, False),
    ((2, 3, 6, 6), 1, None, 0, False),
    ((2, 8, 9, 9), 3, 2, 1, False),         # overlapping, padded: torch's pooling
    ((2, 8, 7, 7), 2, None, 0, True),
    ((2, 3, 6, 6), 2, 1, 0, False),         # overlapping windows, unpadded: not the strided views
    ((2, 3, 6, 6), 2, 2, 1, False),         # stride = kernel but padded: not the strided views either
]


@pytest.mark.parametrize("shape, k, s, pad, ceil", CASES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pooled_codes_equal_torch_pooling(shape, k, s, pad, ceil, dtype, channels_last):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randint(0, 256 if dtype == torch.uint8 else 65536, shape, generator=g).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    before = x.clone()
    y = _max_pool2d(x, k, s, pad, 1, ceil)
    want = F.max_pool2d(x.double(), k, s, pad, 1, ceil).to(dtype)
    assert y.dtype == dtype and torch.equal(y, want)
    assert torch.equal(x, before)
    assert y.data_ptr() != x.data_ptr()  # a new tensor (later steps may write it in place)
    if channels_last and min(y.shape[1], y.shape[2] * y.shape[3]) > 1:
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_window_larger_than_the_input_is_torchs_error():
    with pytest.raises(RuntimeError, match="Output size is too small"):
        _max_pool2d(torch.zeros(1, 2, 1, 1, dtype=torch.uint8), 2)

"""dwq.deploy.IntegerModel's max pooling of uint8 codes with overlapping windows (torch's own pooling):
channels-last planes larger than 255 elements pool exactly, in the codes' dtype and layout class
(found by mutation: torch's channels-last uint8 max pooling refuses such planes, and no test had one)."""
import pytest
import torch
from torch.nn import functional as F

from dwq.deploy.integer_model import _max_pool2d


@pytest.mark.parametrize("shape", [(1, 3, 17, 16), (2, 5, 20, 13)])
def test_overlapping_max_pooling_of_channels_last_uint8_codes_on_large_planes(shape):
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    y = _max_pool2d(codes, 3, 2, 1)
    want = F.max_pool2d(codes.float(), 3, 2, 1)
    assert y.dtype == torch.uint8 and torch.equal(y.float(), want)

"""kernel_size, stride and padding of the integer conv wrappers are an int or exactly two ints: a list of
one or three (or a 3-tuple, or numpy ints, which miss the wrappers' fast path) is the wrapper's
ValueError, named by the argument, before any op runs."""
import numpy as np
import pytest
import torch

from dwq.ops._lib import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.mark.parametrize("arg", ["kernel_size", "stride", "padding"])
@pytest.mark.parametrize("bad", [(1, 1, 1), [np.int64(1)], [np.int64(1), 1, 1], []])
def test_a_pair_argument_of_another_length_is_refused_by_name(arg, bad):
    from dwq.ops import qgemm as q
    from dwq.ops.residual import qconv2d_residual

    x = torch.full((1, 3, 4, 4), 5, dtype=torch.uint8)
    zx, sx = torch.tensor([5], dtype=torch.int32), torch.tensor([0.1])
    wp = q.pack_conv_weight(torch.full((2, 3, 1, 1), 7, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), 8)
    geometry = dict(kernel_size=1, stride=1, padding=0)
    geometry[arg] = bad
    with pytest.raises(ValueError, match=f"{arg} must be an int or a pair"):
        q.qconv2d_acc(x, zx, 8, wp, **geometry)
    with pytest.raises(ValueError, match=f"{arg} must be an int or a pair"):
        q.qconv2d(x, sx, zx, 8, wp, torch.ones(2), **geometry)
    with pytest.raises(ValueError, match=f"{arg} must be an int or a pair"):
        qconv2d_residual(x, sx, zx, 8, wp, torch.ones(2), geometry["kernel_size"], geometry["stride"],
                         geometry["padding"], None, None, torch.zeros(1, 2, 4, 4), True, sx, zx, 8)

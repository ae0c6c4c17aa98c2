"""torch.compile (inductor) of quantized models in channels-last memory format (issue 10 item 5):
the fake impls and the kernels must agree on output strides, which inductor asserts on."""
import os

import pytest
import torch

import dwq
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

from conftest import devices

pytestmark = pytest.mark.skipif(
    not HAS_EXT and os.environ.get("DWQ_REQUIRE_EXT") != "1", reason="dwq._C is not built"
)


@pytest.mark.slow
@pytest.mark.parametrize("device", devices())
def test_channels_last_quantized_model_compiles_with_inductor(device):
    torch.manual_seed(0)
    m = small_cnn(num_classes=10, precisions=[None, 4]).eval().to(device, memory_format=torch.channels_last)
    dwq.set_precision(m, 4)
    x = torch.rand(2, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = torch.compile(m)(x)  # inductor: asserts the custom ops' output strides at run time
        want = m(x)
    # inductor fuses the float ops around the quantizers, so a rare code may differ by rounding.
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

"""dwq.deploy.convert records the float model's float32 state in bytes (info["float_checkpoint_bytes"],
the size report's reference): floating-point tensors only, not integer buffers such as a batch norm's
num_batches_tracked."""
import pytest
import torch
from deploy_models import calibrated

from dwq.deploy import convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_float_checkpoint_bytes_count_the_floating_point_state_only():
    torch.manual_seed(0)
    m = calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28))
    state = m.state_dict()
    assert any(not t.is_floating_point() for t in state.values())  # (else the rule is not exercised)
    want = sum(t.numel() * t.element_size() for t in state.values() if t.is_floating_point())
    assert convert(m).info["float_checkpoint_bytes"] == want

"""dwq.deploy.check_conversion on a model left in train mode: it measures the eval-mode model (whose
statistics a train-mode forward would update) and hands the model back in train mode, its state as it
was: the timed fake-quant forwards neither move a BN's running statistics nor an activation range."""
import pytest
import torch
from deploy_models import calibrated

from dwq.deploy import check_conversion
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_check_conversion_leaves_a_training_models_state_and_mode_as_they_were():
    torch.manual_seed(0)
    m = calibrated(small_cnn(precisions=[2, 4], width=4), (8, 1, 28, 28)).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rep = check_conversion(m, torch.rand(6, 1, 28, 28) * 3, latency_batch=3, budget_s=0.0)
    assert rep["precisions"] == ["2", "4"]
    assert m.training and all(mod.training for mod in m.modules())
    after = m.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert not changed, changed

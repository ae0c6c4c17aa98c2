"""dwq.eval.stages identity: a setting the folder's record lacks is refused (except the ones dwq added to
the record later, which a folder of an earlier dwq could not hold), and the model's current precision is
no part of the identity (every stage sets its own)."""
import pytest
import torch
from test_stage_identity import settings_ident as _ident

import dwq
from dwq.eval.stages import StageDirError, StageStore, evaluation_identity
from dwq.models import small_cnn


def test_a_setting_recorded_here_only_is_refused_unless_dwq_added_it_later(tmp_path):
    StageStore(str(tmp_path / "a"), _ident())
    with pytest.raises(StageDirError, match=r"another evaluation: seed None there, 2 here \(dwq eval --seed\)"):
        StageStore(str(tmp_path / "a"), _ident(seed=2))
    StageStore(str(tmp_path / "b"), _ident(seed=2))  # a folder of a dwq that recorded no kernels: resumed
    StageStore(str(tmp_path / "b"), _ident(seed=2, torch=torch.__version__, kernels="cpu X"))


def test_the_identity_leaves_out_the_models_current_precision():
    torch.manual_seed(0)
    m = small_cnn(precisions=[2, 8], width=4).eval()
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([1, 2])
    dwq.set_precision(m, 2)
    at2 = evaluation_identity(m, x, y, {"seed": 0})
    dwq.set_precision(m, 8)
    assert evaluation_identity(m, x, y, {"seed": 0}) == at2

"""dwq.eval.stages identity: the labels alone make another evaluation, the model's current precision is
left out whatever its name's length (16, 2w4a), object addresses in a layer's repr are left out, a run
without a PGD resumes a folder whose PGD settings are recorded, and a model of another class is named as
such without also being called other weights."""
import pytest
import torch
from test_stage_identity import _ident
from torch import nn

import dwq
from dwq.eval.stages import StageDirError, StageStore, evaluation_identity
from dwq.models import small_cnn


def test_other_labels_alone_make_another_evaluation():
    """The same images with one label changed are another evaluation's data (the accuracies count the
    labels)."""
    m = nn.Linear(4, 2)
    x, y = torch.rand(3, 4), torch.tensor([0, 1, 0])
    same = evaluation_identity(m, x, y.clone(), {})
    assert evaluation_identity(m, x, y, {}) == same
    assert evaluation_identity(m, x, torch.tensor([0, 1, 1]), {})["data"] != same["data"], "labels ignored"


@pytest.mark.parametrize("precisions", [[2, 16], [(2, 4), (8, 8)]])
def test_the_identity_leaves_out_a_current_precision_of_any_name(precisions):
    """The current precision is no part of the identity, also where its name is longer than one
    character (16, 2w4a): the whole name is masked, not its first character."""
    torch.manual_seed(0)
    m = small_cnn(precisions=precisions, width=4).eval()
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([1, 2])
    ids = []
    for p in precisions:
        dwq.set_precision(m, p)
        ids.append(evaluation_identity(m, x, y, {}))
    assert ids[0] == ids[1], f"the identity changed with the precision: {ids}"


class _Opaque:
    """An option object with the default repr (its address, which differs from process to process)."""


class _WithOption(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.option = _Opaque()

    def extra_repr(self):
        return f"option={self.option!r}"


def test_object_addresses_in_a_layers_repr_are_no_part_of_the_identity():
    """Two models alike but for the address of an option object in their repr (as two processes building
    the same model) have the same identity."""
    torch.manual_seed(0)
    a = _WithOption()
    b = _WithOption()
    b.load_state_dict(a.state_dict())
    assert repr(a) != repr(b)  # (else the test checks nothing)
    x, y = torch.rand(3, 2), torch.tensor([0, 1, 0])
    assert evaluation_identity(a, x, y, {})["layers"] == evaluation_identity(b, x, y, {})["layers"]


def test_a_run_without_a_pgd_resumes_a_folder_that_recorded_one(tmp_path):
    """A folder whose PGD settings are recorded is resumed by a run whose stages use no PGD (its
    settings None): the settings are compared only when both runs use them."""
    StageStore(str(tmp_path), _ident(settings={"steps": 3, "alpha": 0.1, "restarts": 1}))
    StageStore(str(tmp_path), _ident(settings={"steps": None, "alpha": None, "restarts": None}))


def test_a_model_of_another_class_is_not_also_called_other_weights(tmp_path):
    """A folder of another model class names the class change alone; the same class with another state
    names the weights."""
    StageStore(str(tmp_path), _ident(model="SmallCNN 0"))
    with pytest.raises(StageDirError) as e:
        StageStore(str(tmp_path), _ident(model="Sequential 1"))
    assert "a SmallCNN there, a Sequential here" in str(e.value)
    assert "weights or state" not in str(e.value), str(e.value)
    with pytest.raises(StageDirError, match=r"another evaluation: the model's weights or state\. "):
        StageStore(str(tmp_path), _ident(model="SmallCNN 1"))

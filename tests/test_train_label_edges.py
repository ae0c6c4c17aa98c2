"""The Trainer's label check at its edges: a label equal to the number of outputs (one past the last
class) is refused before training, as is a negative one; labels 0 .. outputs - 1 are accepted."""
import pytest
import torch
from torch.utils.data import TensorDataset

from dwq.models import small_cnn
from dwq.train import Trainer
from test_train import cfg


@pytest.mark.parametrize("label,refused", [(10, r"\[0, 10\]"), (-1, r"\[-1, 9\]"), (9, None)])
def test_labels_at_the_edges_of_the_outputs(tmp_path, label, refused):
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    y[3] = label
    args = (small_cnn(precisions=[4], width=4), TensorDataset(x, y),
            cfg(epochs=1, attack="none", precisions=[4], random_precision=False, batch_size=16), str(tmp_path))
    if refused is None:
        Trainer(*args)
    else:
        with pytest.raises(ValueError, match=rf"train_set holds labels in {refused}, but the model has 10 outputs"):
            Trainer(*args)

"""dwq.train / dwq.data from Python, found by driving the API: free training clamped normalized images
into [0, 1] without a word (PGD and FGSM refuse them); an image folder's labels beyond the model's
outputs failed at the first step's cross-entropy, after config.json was written; extra=None trained to
the end and then neither resumed nor loaded; a Subset of an augmented training set gave validation its
random crops; a Trainer of one's own with the reference's quantizer wrote checkpoints load_trained_model
rebuilt with dwq's; rank outside 0..world-1 and augment="no" were taken; a hidden folder among the
class folders became a class; resume() into another model was torch's multi-line error."""
import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from dwq.data import load_mnist5k, train_val_split
from dwq.models import small_cnn
from dwq.models.build import build_model
from dwq.train import Trainer, TrainConfig, load_trained_model
from dwq.train.batches import dataset_labels


def _cfg(**kw):
    base = dict(attack="none", epsilon=0.0, epochs=1, batch_size=16, lr=0.05, lr_schedule="constant", seed=0,
                progress=False, precisions=[4], random_precision=False)
    base.update(kw)
    return TrainConfig(**base)


def _data(n=32):
    x, y = load_mnist5k("train").tensors
    return TensorDataset(x[:n].clone(), y[:n].clone())


def test_free_training_refuses_images_outside_the_unit_box(tmp_path):
    x, y = _data().tensors
    normalized = TensorDataset((x - 0.1307) / 0.3081, y)
    torch.manual_seed(0)
    cfg = _cfg(attack="free", epsilon=0.1, free_replays=1)
    with pytest.raises(ValueError, match=r"x must hold images in \[0, 1\]"):
        Trainer(small_cnn(precisions=[4], width=4), normalized, cfg, str(tmp_path / "a")).fit()
    Trainer(small_cnn(precisions=[4], width=4), _data(), cfg, str(tmp_path / "b")).fit()


class _Folder(torch.utils.data.Dataset):
    """Stands for an image folder: it lists its labels (``targets``) and reads images one by one."""

    def __init__(self, n, classes):
        self.targets = [i % classes for i in range(n)]
        self.reads = 0

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        self.reads += 1
        return torch.rand(1, 28, 28), self.targets[i]


def test_a_folders_listed_labels_are_checked_before_anything_is_written(tmp_path):
    out = tmp_path / "r"
    ds = _Folder(24, classes=12)
    with pytest.raises(ValueError, match=r"train_set holds labels in \[0, 11\], but the model has 10 outputs"):
        Trainer(small_cnn(precisions=[4], width=4), Subset(ds, range(20)), _cfg(), str(out))
    assert not out.exists() and ds.reads == 1  # one image read, for the model's output width
    assert dataset_labels(Subset(Subset(ds, [3, 5, 7]), [2, 0])).tolist() == [7 % 12, 3 % 12]
    assert dataset_labels(torch.utils.data.ConcatDataset([ds])) is None  # lists none: not checked


@pytest.mark.parametrize("extra, msg", [(None, "extra must be a dict of JSON values"),
                                        ({"n": np.float32(1.5)}, "extra must hold JSON values only")])
def test_extra_that_no_checkpoint_can_hold_is_refused_at_construction(extra, msg):
    with pytest.raises(ValueError, match=msg):
        _cfg(extra=extra).validate()


def test_a_subset_of_an_augmented_set_validates_with_the_test_transform():
    class Augmented(TensorDataset):
        def __init__(self, *t):
            super().__init__(*t)
            self.transform = "random crop"
            self.eval_transform = "test"

    base = Augmented(*_data(12).tensors)
    train, val = train_val_split(Subset(base, range(10)), 3)
    inner = val.dataset.dataset
    assert inner.transform == "test" and inner is not base and base.transform == "random crop"
    assert train.dataset.dataset is base
    assert [val[i][1] for i in range(3)] == [base[j][1] for j in (Subset(base, range(10)).indices[k]
                                                                   for k in val.indices)]


def test_a_reference_quantizer_model_trained_from_python_loads_back(tmp_path):
    torch.manual_seed(0)
    m, _ = build_model("small_cnn", "mnist5k", [4, None], True, 4, reference=True)
    extra = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["4", "fp"], "width": 4}
    Trainer(m, _data(), _cfg(precisions=[4, None], random_precision=True, extra=extra), str(tmp_path)).fit()
    loaded, _ = load_trained_model(str(tmp_path / "last.pt"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), m.state_dict().values()))


@pytest.mark.parametrize("rank, world", [(1, 1), (-1, 1), (0, 0), (True, 2)])
def test_a_rank_outside_the_world_is_refused(tmp_path, rank, world):
    with pytest.raises(ValueError, match=r"rank must be an int in 0..world-1 and world an int >= 1"):
        Trainer(small_cnn(precisions=[4], width=4), _data(), _cfg(), str(tmp_path), rank=rank, world=world)


def test_get_datasets_switches_are_bools():
    from dwq.data import get_datasets

    with pytest.raises(ValueError, match=r"get_datasets: augment must be True or False, got 'no'"):
        get_datasets("mnist5k", augment="no")


def test_resuming_into_another_model_is_one_checkpoint_error(tmp_path):
    """torch's multi-line "Error(s) in loading state_dict" came through, not the CheckpointError resume names."""
    from dwq.train import CheckpointError

    torch.manual_seed(0)
    Trainer(small_cnn(precisions=[4], width=4), _data(), _cfg(), str(tmp_path)).fit()
    other = Trainer(small_cnn(precisions=[4], width=8), _data(), _cfg(epochs=2), str(tmp_path))
    with pytest.raises(CheckpointError, match=r"the checkpoint's weights do not fit this Trainer's model: ") as e:
        other.resume()
    assert "\n" not in str(e.value)


def test_a_hidden_folder_among_the_class_folders_is_refused(tmp_path):
    """A notebook's .ipynb_checkpoints holding images became class 0 in train/ and val/ alike, and every
    label moved up by one, without a word (a pretrained model's classes no longer meant its own)."""
    from PIL import Image

    from conftest import torchvision_or_skip
    from dwq.data import DatasetError, get_datasets

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    for split in ("train", "val"):
        for c in (".ipynb_checkpoints", "n01", "n02"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / c / "0.JPEG")
    with pytest.raises(DatasetError, match=r"imagenet: .*(train|val) holds the hidden folder\(s\) .ipynb_checkpoints, "
                                           r"which would be classes"):
        get_datasets("imagenet", str(tmp_path))

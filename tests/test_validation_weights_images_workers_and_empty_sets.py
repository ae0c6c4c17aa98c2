"""evaluate_clean_pgd's averages weigh images, not batches (a short last batch counts its own images), every
precision counts each image once, the loader gets the num_workers given, and an empty dataset is refused
with the message (not a ZeroDivisionError)."""
import pytest
import torch

import dwq
import dwq.train.validation as validation
from dwq.train.validation import evaluate_clean_pgd
from test_train import tiny_data
from test_validation_precisions_and_attack import _trained_model

PRECS = [2, 8]


def _ints(batches):
    return [[int(i) for i in b] for b in batches]


def _direct_clean(model, data, precisions):
    """Clean accuracy over all images and precisions, each image once per precision, in eval mode."""
    x, y = data.tensors
    model.eval()
    right = 0
    with torch.no_grad():
        for p in precisions:
            with dwq.precision(model, p):
                right += (model(x).argmax(1) == y).sum().item()
    model.train()
    return right / (len(y) * len(precisions))


@pytest.mark.parametrize("batch_size", [3, 5, 7, 16])
def test_a_short_last_batch_weighs_its_images(batch_size):
    """13 images in batches of 3, 5, 7 (a short last one) or 16 (one batch short of its size): the figure is
    the accuracy over the 13 images at each precision, whatever the batching."""
    model, data = _trained_model(), tiny_data(13)
    want = _direct_clean(model, data, PRECS)
    assert 0 < want < 1, f"the model's accuracy {want} cannot tell weightings apart"
    got, rob = evaluate_clean_pgd(model, data, PRECS, 0.1, 0.05, 0, "cpu", batch_size=batch_size)
    assert got == pytest.approx(want, abs=1e-12), f"batch_size {batch_size}: clean {got}, over the images {want}"
    assert rob is None


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_loader_gets_the_num_workers_given(monkeypatch, num_workers):
    """The validation's BatchLoader reads with the num_workers it was given (an image folder is decoded by
    workers, as in training), over the batches of the seeded epoch-0 order."""
    seen = []
    real = validation.BatchLoader

    def recording(dataset, batches, workers=0, *a, **k):
        seen.append((_ints(batches), workers))
        return real(dataset, batches, workers, *a, **k)

    monkeypatch.setattr(validation, "BatchLoader", recording)
    evaluate_clean_pgd(_trained_model(), tiny_data(6), [2], 0.1, 0.05, 0, "cpu", batch_size=4, seed=3,
                       num_workers=num_workers)
    want = (_ints(validation.epoch_batches(6, 4, 3, 0)), num_workers)
    assert seen == [want], f"BatchLoader calls {seen}, expected {want}"


def test_no_images_is_refused():
    """An empty dataset: ValueError that names the empty set (not a ZeroDivisionError at the end)."""
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"needs images and precisions, got 0 images and precisions \[2, 8\]"):
        evaluate_clean_pgd(_trained_model(), empty, PRECS, 0.1, 0.05, 1, "cpu")

"""PGD over a list (or tuple) of models (EOT): the early stop reads each image's own averaged softmax
over the models (not one mixed with its batch-mates'), the restart choice counts the models that
misclassify for a tuple as for a list, eot_pgd hands its loss on to pgd, and a drawn-ahead start must
match x's dtype."""
import functools

import pytest
import torch
import torch.nn.functional as F

import dwq.attacks as A


def _two_pixel(x):
    """Label 0 leads by 10*a + 0.2*b (a, b: the image's two pixels); CE rises as either falls."""
    a, b = x.flatten(1)[:, 0], x.flatten(1)[:, 1]
    return torch.stack([10 * a + 0.2 * b, torch.zeros_like(a)], 1)


def test_early_stop_reads_each_images_own_averaged_prediction():
    # both images are classified correctly by every model (logits [10.1, 0] and [1.1, 0]), so neither is
    # stopped: both take the full step. A softmax taken across the batch instead of the classes read the
    # second as wrong (its class-0 logit is small beside its batch-mate's) and froze it.
    x = torch.tensor([[1.0, 0.5], [0.1, 0.5]]).view(2, 2, 1, 1)
    y = torch.zeros(2, dtype=torch.long)
    assert (_two_pixel(x).argmax(1) == y).all()
    out = A.pgd([_two_pixel, _two_pixel], x, y, 0.1, 0.05, 1, random_start=False, early_stop=True)
    assert torch.allclose(out, x - 0.05)
    # an image the models misclassify is stopped before it moves
    xw = torch.tensor([[0.0, 0.0]]).view(1, 2, 1, 1)
    yw = torch.ones(1, dtype=torch.long)  # the models say 0 (a logit of 0 vs 0: ties go to class 0)
    assert torch.equal(A.pgd([_two_pixel, _two_pixel], xw, yw, 0.1, 0.05, 1, random_start=False,
                             early_stop=True), xw)


def _step_model(low, high):  # logits by whether the (one-pixel) image is below 0.5
    def m(x):
        below = (x.flatten(1)[:, :1] < 0.5).float()
        return below * torch.tensor([low]) + (1 - below) * torch.tensor([high])
    return m


def test_a_tuple_of_models_chooses_its_restart_as_a_list_does():
    """Below 0.5 two of three models are wrong (the averaged softmax right); above, one is (the average
    wrong): the restart kept is one that more models misclassify, for a tuple as for a list."""
    models = [_step_model([20.0, 0.0], [0.0, 20.0]), _step_model([0.0, 0.1], [0.1, 0.0]),
              _step_model([0.0, 0.1], [0.1, 0.0])]
    x, y = torch.full((64, 1, 1, 1), 0.5), torch.zeros(64, dtype=torch.long)
    below = torch.zeros(1, 1, 1, 1)
    assert (sum(F.softmax(m(below), 1) for m in models) / 3).argmax(1).item() == 0
    by_list = A.pgd(models, x, y, 0.5, 0.1, 0, restarts=10, generator=torch.Generator().manual_seed(0))
    by_tuple = A.pgd(tuple(models), x, y, 0.5, 0.1, 0, restarts=10, generator=torch.Generator().manual_seed(0))
    assert (by_list.flatten() < 0.5).all()
    assert torch.equal(by_tuple, by_list)


def test_eot_pgd_hands_its_loss_to_pgd():
    """With the CW margin capped at kappa = 0 an image already misclassified has no gradient and stays
    put; under the default CE it keeps moving."""
    x = torch.tensor([[0.3, 0.5]]).view(1, 2, 1, 1)
    y = torch.ones(1, dtype=torch.long)  # the models say class 0: misclassified from the start
    cw0 = functools.partial(A.cw_margin_loss, kappa=0.0)
    models = [_two_pixel, _two_pixel]
    with_cw = A.eot_pgd(models, x, y, 0.1, 0.05, 2, random_start=False, loss=cw0)
    assert torch.equal(with_cw, x)
    assert torch.equal(with_cw, A.pgd(models, x, y, 0.1, 0.05, 2, random_start=False, loss=cw0))
    with_ce = A.eot_pgd(models, x, y, 0.1, 0.05, 2, random_start=False)
    assert torch.allclose(with_ce, x + 0.1)  # CE for label 1 rises with both pixels: two steps up to eps


def test_a_start_of_another_dtype_is_refused():
    x, y = torch.full((2, 1, 2, 2), 0.5), torch.zeros(2, dtype=torch.long)
    start = A.draw_random_start(x, 0.1, torch.Generator().manual_seed(0))
    for bad in (start.double(), start.half()):
        with pytest.raises(ValueError, match="start must be like x"):
            A.pgd(_two_pixel, x, y, 0.1, 0.05, 1, start=bad)
    assert A.pgd(_two_pixel, x, y, 0.1, 0.05, 0, start=start).dtype == x.dtype

"""dwq.attacks.apgd_eot's fields, image by image, on a model whose answer hangs on one pixel: an image
misclassified from the start (start_ok False) and one too robust to fool come back as x in "returned";
an image the attack fools is "fooled", and "returned" is its misclassified iterate ``x_fooled``."""
import torch

import dwq.attacks as A


def _one_pixel_model(x):
    """Class 1 by 20·(p - 0.5) over the other three, p the first pixel: p = 0.9 leads by 8 (robust at
    eps 0.05), p = 0.51 by 0.2 (fooled once p < 0.5)."""
    p = x.flatten(1)[:, :1]
    z = torch.zeros(x.shape[0], 4, dtype=x.dtype)
    return z + torch.cat([torch.zeros_like(p), 20 * (p - 0.5), torch.zeros_like(p), torch.zeros_like(p)], 1)


def test_returned_fooled_and_start_ok_image_by_image():
    x = torch.full((3, 3, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.9, 0.51])
    y = torch.tensor([0, 1, 1])  # image 0: misclassified from the start; 1: robust; 2: fooled by the attack
    r = A.apgd_eot(_one_pixel_model, x, y, 0.05, steps=5, eot_iter=1, seed=0)
    assert r["start_ok"].tolist() == [False, True, True]
    assert r["fooled"].tolist()[1:] == [False, True]
    assert torch.equal(r["returned"][:2], x[:2])
    assert torch.equal(r["returned"][2], r["x_fooled"][2]) and not torch.equal(r["returned"][2], x[2])
    assert _one_pixel_model(r["returned"][2:]).argmax(1).item() != 1
    assert (r["returned"] - x).abs().max() <= 0.05 + 1e-6


def test_the_random_start_follows_seed_not_the_callers_rng():
    """apgd_eot seeds its random start with ``seed`` (as AutoAttack seeds each perturb): the same seed gives
    the same result whatever the global RNG's state, another seed another start."""
    x = torch.full((3, 3, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.9, 0.51])
    y = torch.tensor([0, 1, 1])
    torch.manual_seed(1)
    a = A.apgd_eot(_one_pixel_model, x, y, 0.05, steps=2, eot_iter=1, seed=5)
    torch.manual_seed(2)
    b = A.apgd_eot(_one_pixel_model, x, y, 0.05, steps=2, eot_iter=1, seed=5)
    c = A.apgd_eot(_one_pixel_model, x, y, 0.05, steps=2, eot_iter=1, seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x_best"], c["x_best"])

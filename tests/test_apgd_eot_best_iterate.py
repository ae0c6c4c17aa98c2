"""dwq.attacks.apgd_eot's ``x_best`` is the iterate of the highest loss, a field of its own: on an image
the attack cannot fool it is not ``x_fooled`` (there the random start), it has a loss at least that of
``x_fooled`` and the random start, and it lies inside the eps-ball."""
import torch

import dwq.attacks as A
from test_apgd_eot_result_fields import _one_pixel_model


def test_x_best_is_the_highest_loss_iterate_not_x_fooled():
    """Image 0 (p = 0.9, label 1) leads by 8 and stays correct at eps 0.05: its x_fooled is the random
    start, while x_best is an iterate that lowered p (so raised the loss)."""
    x = torch.full((2, 3, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.51])
    y = torch.tensor([1, 1])
    eps = 0.05
    r = A.apgd_eot(_one_pixel_model, x, y, eps, steps=5, eot_iter=1, seed=0)
    assert r["fooled"].tolist() == [False, True]
    best, fooled = r["x_best"][:1], r["x_fooled"][:1]
    assert not torch.equal(best, fooled), "x_best of an unfooled image is x_fooled (its random start)"
    with torch.no_grad():
        l_best = A.ce_loss(_one_pixel_model(best), y[:1]).item()
        l_start = A.ce_loss(_one_pixel_model(fooled), y[:1]).item()
    assert l_best > l_start, f"x_best's loss {l_best} is not above the random start's {l_start}"
    assert (r["x_best"] - x).abs().max().item() <= eps + 1e-6

"""dwq.attacks.autoattack runs torchattacks in float32; its result is projected back onto the eps-ball
around the caller's float64 images, so the bound holds exactly there, not only up to float32 rounding."""
import torch
from torch import nn

import dwq.attacks as A


def test_float64_result_is_within_eps_exactly():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(48, 4)).double().eval()
    x = torch.rand(8, 3, 4, 4, dtype=torch.float64)
    y = m(x).argmax(1)
    eps = 0.1
    xa = A.autoattack(m, x, y, eps, version="rand", steps=3, eot_iter=1)
    assert xa.dtype == torch.float64
    assert (xa - x).abs().max().item() <= eps
    assert ((xa - x).abs().flatten(1).amax(1) > 0.9 * eps).any()  # (it moved: the bound was reached)

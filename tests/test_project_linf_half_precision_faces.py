"""dwq.attacks.project_linf in float16/bfloat16: each face of the eps-ball is the representable value
nearest to x ± eps *on the inside*: exactly x ± eps where that is representable (not one unit inside it),
and otherwise the last representable value before the face (the next one out lies beyond eps)."""
import pytest
import torch

import dwq.attacks as A


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_representable_faces_are_reached_exactly(dtype):
    """x = 0.5, eps = 0.25: both faces (0.25 and 0.75) are representable, so a far point comes back
    on them, not a unit inside."""
    x = torch.full((2, 1, 2, 2), 0.5, dtype=dtype)
    up = A.project_linf(torch.ones_like(x), x, 0.25)
    down = A.project_linf(torch.zeros_like(x), x, 0.25)
    assert up.dtype == dtype and down.dtype == dtype
    assert torch.equal(up, torch.full_like(x, 0.75)), f"upper face {up.flatten()[0].item()}, expected 0.75"
    assert torch.equal(down, torch.full_like(x, 0.25)), f"lower face {down.flatten()[0].item()}, expected 0.25"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unrepresentable_faces_are_the_last_value_inside(dtype):
    """eps = 8/255 on random images: every face lies inside the ball, and the next representable value
    outward lies outside it (the face is as far out as the dtype allows)."""
    eps = 8 / 255
    x = (torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1).to(dtype)
    up = A.project_linf(torch.ones_like(x), x, eps)
    down = A.project_linf(torch.zeros_like(x), x, eps)
    x64 = x.double()
    assert ((up.double() - x64) <= eps).all() and ((x64 - down.double()) <= eps).all(), "a face lies outside"
    past_up = torch.nextafter(up, torch.full_like(up, 2.0)).double() - x64
    past_down = x64 - torch.nextafter(down, torch.full_like(down, -2.0)).double()
    assert (past_up > eps).all(), f"{int((past_up <= eps).sum())} upper faces are a unit (or more) inside the ball"
    assert (past_down > eps).all(), f"{int((past_down <= eps).sum())} lower faces are a unit (or more) inside"

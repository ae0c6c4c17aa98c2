"""dwq.attacks.pgd with restart_select="misclassified" (the default) replaces its kept restart only by a
strictly better one: on an exact tie (as many models wrong, the same loss) the *first* restart stays,
unlike "loss", which keeps the later on ties. With steps=0 each restart is its random start, drawn here
with the same generator."""
import pytest
import torch

import dwq.attacks as A

EPS = 0.1


@pytest.mark.parametrize("label", [0, 1], ids=["all_correct", "all_wrong"])
def test_tied_restarts_keep_the_first(label):
    """A model with constant logits [1, 0]: every restart ties on both counts (label 0: all correct, label
    1: all misclassified); the first random start comes back, not a later one."""
    x = torch.rand(8, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    y = torch.full((8,), label, dtype=torch.long)
    flat = lambda z: torch.tensor([[1.0, 0.0]]).expand(z.shape[0], 2)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    starts = [A.draw_random_start(x, EPS, g) for _ in range(3)]
    got = A.pgd(flat, x, y, EPS, 0.02, 0, restarts=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, starts[0]), "a tie replaced the first restart with a later one"
    by_loss = A.pgd(flat, x, y, EPS, 0.02, 0, restarts=3, restart_select="loss",
                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(by_loss, starts[-1])  # (the other rule, for contrast: the later on ties)

"""dwq.attacks.pgd's early_stop stops moving a sample once it is misclassified, for good: a randomized
model (or train-mode BN over a moving batch) that classifies it correctly again at a later step does not
set it moving again."""
import torch

import dwq.attacks as A


class _FlakyModel:
    """A linear classifier that misclassifies sample 0 at its first call only."""

    def __init__(self):
        self.w = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        z = x.flatten(1) @ self.w
        if self.calls == 1:
            z = z.clone()
            z[0] = -z[0]
        return z


def test_a_sample_once_misclassified_stays_where_it_was():
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    m = _FlakyModel()
    y = (x.flatten(1) @ m.w).argmax(1)
    flipped = (-(x[:1].flatten(1) @ m.w)).argmax(1)
    assert flipped.item() != y[0].item()  # the first call does misclassify sample 0
    xa = A.pgd(m, x, y, 0.1, 0.02, 4, random_start=False, early_stop=True)
    assert m.calls == 4
    assert torch.equal(xa[0], x[0])
    assert not torch.equal(xa[1], x[1])

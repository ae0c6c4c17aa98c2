"""dwq.data.train_val_split: a fraction rounds to the nearest count, and a negative count is refused."""
import pytest
import torch

from dwq.data import train_val_split


def _ds(n=10):
    return torch.utils.data.TensorDataset(torch.arange(n))


@pytest.mark.parametrize("frac, n, k", [(0.29, 10, 3), (0.26, 10, 3), (0.24, 10, 2), (0.999, 1000, 999)])
def test_a_fraction_rounds_to_the_nearest_count(frac, n, k):
    fit, val = train_val_split(_ds(n), frac, seed=0)
    assert len(val) == k and len(fit) == n - k
    assert sorted(fit.indices + val.indices) == list(range(n))


@pytest.mark.parametrize("bad", [-1, -3])
def test_a_negative_count_is_refused(bad):
    """A negative count sliced from the end: val got n - |k| examples and training |k|."""
    with pytest.raises(ValueError, match=f"val_size must leave some training data: got {bad} for 10 examples"):
        train_val_split(_ds(), bad)

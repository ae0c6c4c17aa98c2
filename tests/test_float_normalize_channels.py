"""dwq.deploy.layers.FloatNormalize refuses an input with another channel count, naming the expected
shape, instead of broadcasting a one-channel mean and std over it (found by mutation)."""
import pytest
import torch

from dwq.deploy.layers import FloatNormalize


def test_an_input_with_another_channel_count_is_refused():
    norm = FloatNormalize({"kind": "normalize", "source": "normalize", "channels": 1},
                          {"mean": torch.tensor([0.5]), "std": torch.tensor([0.25])})
    x = torch.rand(2, 1, 3, 5)
    torch.testing.assert_close(norm(x), (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match=r"expected input \[N, 1, H, W\], got \(2, 3, 3, 5\)"):
        norm(torch.rand(2, 3, 3, 5))

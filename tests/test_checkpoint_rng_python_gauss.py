"""dwq.train.checkpoint.rng_state keeps Python's ``random`` state whole, its cached Gaussian (the third
element of random.getstate(), set by an odd number of random.gauss draws) included, through a file."""
import random

import torch

from dwq.train import load_checkpoint, save_checkpoint
from dwq.train.checkpoint import rng_state, set_rng_state


def test_pythons_cached_gaussian_round_trips_through_a_checkpoint(tmp_path):
    """random.gauss draws a pair and caches the second value: a restore without it draws another one."""
    random.seed(4)
    random.gauss(0.0, 1.0)
    assert random.getstate()[2] is not None  # (the case that needs the cached value kept)
    st = rng_state()
    want = [random.gauss(0.0, 1.0) for _ in range(3)]
    save_checkpoint(str(tmp_path / "last.pt"), {"model": {"w": torch.ones(1)}, "config": {}, "rng": st})
    random.seed(5)
    set_rng_state(load_checkpoint(str(tmp_path / "last.pt"))["rng"])
    assert [random.gauss(0.0, 1.0) for _ in range(3)] == want, "Python's cached Gaussian was not restored"

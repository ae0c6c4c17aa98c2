"""dwq.train.checkpoint.rng_state / set_rng_state: every RNG a run draws from comes back exactly, through
a checkpoint file as through memory, so that a resumed run draws what the uninterrupted one drew."""
import random

import numpy as np
import torch

from dwq.train import load_checkpoint, save_checkpoint
from dwq.train.checkpoint import rng_state, set_rng_state


def _draws(gen):
    return (torch.rand(5).tolist(), np.random.rand(3).tolist(), np.random.standard_normal(3).tolist(),
            [random.random() for _ in range(3)], torch.rand(4, generator=gen).tolist())


def _advance(gen):
    """Leaves every RNG mid-stream: numpy with a cached Gaussian (one of a pair drawn), the others past
    their start."""
    torch.rand(7)
    np.random.rand(5)
    np.random.standard_normal(1)  # the legacy polar method caches the pair's second value (has_gauss 1)
    random.random()
    torch.rand(3, generator=gen)


def test_every_rng_state_round_trips_through_a_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    _advance(gen)
    st = rng_state(gen)
    assert np.random.get_state()[3] == 1  # (the case that needs has_gauss and cached_gaussian kept)
    want = _draws(gen)
    save_checkpoint(str(tmp_path / "last.pt"), {"model": {"w": torch.ones(1)}, "config": {}, "rng": st})
    # another process's states: reseeded and moved on
    torch.manual_seed(99)
    np.random.seed(98)
    random.seed(97)
    gen2 = torch.Generator().manual_seed(96)
    _advance(gen2)
    set_rng_state(load_checkpoint(str(tmp_path / "last.pt"))["rng"], gen2)
    assert _draws(gen2) == want


def test_each_rng_is_restored_on_its_own():
    """Each state is put back, not only the first one's stream: changing one RNG after the save is undone."""
    gen = torch.Generator().manual_seed(5)
    st = rng_state(gen)
    want = _draws(gen)
    for disturb in (lambda: torch.rand(1), lambda: np.random.rand(1), lambda: np.random.standard_normal(1),
                    lambda: random.random(), lambda: torch.rand(1, generator=gen)):
        set_rng_state(st, gen)
        disturb()
        set_rng_state(st, gen)
        assert _draws(gen) == want

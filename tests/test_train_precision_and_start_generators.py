"""Precision draws come from the Trainer's seeded precision generator alone: the same on every DDP rank
and whatever the attack draws for its random starts, which come from a second generator of each rank.
(world=2 is built without a process group: DistributedDataParallel is replaced by the bare model.)"""
import torch

from dwq.models import small_cnn
from dwq.train import Trainer
from test_train import SET, cfg, tiny_data


def _draws(tr, batches=4):
    drawn, draw = [], tr._draw
    tr._draw = lambda: drawn.append(draw()) or drawn[-1]
    x, y = tiny_data(16).tensors
    for _ in range(batches):
        tr.train_batch(x, y)
    return drawn


def test_the_attack_s_random_starts_do_not_change_the_precision_draws(tmp_path):
    pgd = Trainer(small_cnn(precisions=SET, width=4), tiny_data(64), cfg(epochs=1, attack="pgd", attack_iters=1),
                  str(tmp_path / "a"))
    none = Trainer(small_cnn(precisions=SET, width=4), tiny_data(64), cfg(epochs=1, attack="none"), str(tmp_path / "b"))
    g = torch.Generator().manual_seed(0)  # the config's seed
    want = [SET[torch.randint(len(SET), (1,), generator=g).item()] for _ in range(4)]
    assert _draws(pgd) == _draws(none) == want


def test_ranks_draw_the_same_precisions_and_their_own_random_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda model, **kw: model)
    ranks = [Trainer(small_cnn(precisions=SET, width=4), tiny_data(64), cfg(epochs=1, attack="none"),
                     str(tmp_path / str(r)), rank=r, world=2) for r in (0, 1)]
    assert _draws(ranks[0]) == _draws(ranks[1])
    starts = [torch.rand(8, generator=tr.gen) for tr in ranks]
    assert not torch.equal(starts[0], starts[1])

"""Trainer.fit's epochs: each trains in train mode (whatever mode the model was given in), reads the
images in a new order; best.pt (and the reference's test-set checkpoint) is chosen on PGD accuracy,
the first epoch always written, even at 0 accuracy; the one-step attacks take the configured step
and the trainer's generator."""
import json

import pytest
import torch

import dwq
import dwq.train.loop as loop
from dwq.models import small_cnn
from dwq.train import Trainer, load_checkpoint
from test_train import cfg, tiny_data


def _lines(out):
    return [json.loads(line) for line in open(out / "metrics.jsonl")]


def test_a_model_given_in_eval_mode_trains_in_train_mode(tmp_path):
    model = small_cnn(precisions=[4], width=4).eval()
    bn = next(m for m in model.modules() if isinstance(m, dwq.SwitchableBatchNorm2d))
    before = [b.running_mean.clone() for b in bn.bn]
    Trainer(model, tiny_data(64), cfg(epochs=1, attack="none", precisions=[4], random_precision=False),
            str(tmp_path)).fit()
    assert model.training
    assert not all(torch.equal(a, b.running_mean) for a, b in zip(before, bn.bn))  # batch statistics kept


def test_each_epoch_reads_its_images_in_another_order(tmp_path):
    tr = Trainer(small_cnn(precisions=[4], width=4), tiny_data(128),
                 cfg(epochs=2, attack="none", precisions=[4], random_precision=False), str(tmp_path))
    seen, train = [], tr.train_batch
    tr.train_batch = lambda x, y, share=1.0: seen.append(x) or train(x, y, share)
    tr.fit()
    first, second = torch.cat(seen[:2]), torch.cat(seen[2:])
    assert len(seen) == 4 and not torch.equal(first, second)
    # the same images
    assert sorted(first.flatten(1).sum(1).tolist()) == pytest.approx(sorted(second.flatten(1).sum(1).tolist()))


def test_a_first_epoch_at_zero_accuracy_writes_both_best_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: (0.0, 0.0))
    Trainer(small_cnn(precisions=[4], width=4), tiny_data(64),
            cfg(epochs=1, attack="none", precisions=[4], random_precision=False, test_select=True), str(tmp_path),
            val_set=tiny_data(8), test_set=tiny_data(8)).fit()
    rec = _lines(tmp_path)[0]
    assert rec.get("best") and rec.get("best_test_reference")
    assert load_checkpoint(str(tmp_path / "best.pt"))["epoch"] == 1
    assert load_checkpoint(str(tmp_path / "best_test_reference.pt"))["epoch"] == 1


def test_best_pt_is_chosen_on_pgd_accuracy_not_clean(tmp_path, monkeypatch):
    scores = iter([(0.9, 0.1), (0.5, 0.3)])  # clean falls, PGD rises: epoch 2 is the best
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: next(scores))
    Trainer(small_cnn(precisions=[4], width=4), tiny_data(64),
            cfg(epochs=2, attack="none", precisions=[4], random_precision=False), str(tmp_path),
            val_set=tiny_data(8)).fit()
    assert [r.get("best", False) for r in _lines(tmp_path)] == [True, True]
    assert load_checkpoint(str(tmp_path / "best.pt"))["epoch"] == 2


@pytest.mark.parametrize("attack", ["fgsm", "fgsm-rs"])
def test_one_step_attacks_take_the_configured_step_and_the_trainer_s_generator(tmp_path, monkeypatch, attack):
    calls = []
    name = attack.replace("-", "_")
    real = getattr(loop, name)

    def recording(model, x, y, eps, alpha=None, **kw):
        calls.append((eps, alpha, kw.get("generator")))
        return real(model, x, y, eps, alpha, **kw)

    monkeypatch.setattr(loop, name, recording)
    tr = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64),
                 cfg(epochs=1, attack=attack, epsilon=0.1, alpha=0.05, precisions=[4], random_precision=False),
                 str(tmp_path))
    tr.train_batch(*tiny_data(16).tensors)
    assert calls == [(0.1, 0.05, None if attack == "fgsm" else tr.gen)]


class _Augmented(torch.utils.data.Dataset):
    """An augmented dataset: each item draws from torch's RNG, which the loader seeds per (seed, epoch, index)."""

    def __init__(self, n):
        self.x, self.y = tiny_data(n).tensors
        self.drawn = []

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        r = torch.rand(()).item()
        self.drawn.append((i, r))
        return self.x[i] * (0.5 + r / 2), int(self.y[i])


def test_each_epoch_draws_new_augmentations(tmp_path):
    data = _Augmented(64)
    Trainer(small_cnn(precisions=[4], width=4), data,
            cfg(epochs=2, attack="none", precisions=[4], random_precision=False), str(tmp_path)).fit()
    first, second = dict(data.drawn[:64]), dict(data.drawn[64:])
    assert len(data.drawn) == 128 and first.keys() == second.keys() == set(range(64))
    assert sum(first[i] != second[i] for i in first) > 60

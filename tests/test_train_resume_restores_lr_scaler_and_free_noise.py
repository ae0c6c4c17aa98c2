"""Trainer.state / load_state / resume: a resume takes the schedule's LR at the checkpoint's step (at a
milestone too), the step counter, the AMP GradScaler's scale, free training's carried noise, the run's id
and ("zero" zero_grad) the zero gradients of the parameters that had one; anything lost makes the
resumed run differ from the uninterrupted one. A finished run resumes with its own number of epochs."""
import json

import pytest
import torch

from dwq.models import small_cnn
from dwq.train import Trainer
from test_train import cfg, tiny_data


def test_a_resume_at_a_milestone_trains_at_the_milestone_s_lr(tmp_path):
    # 2 updates an epoch, 4 in all, milestones at steps 2 and 3: last.pt of epoch 1 is at step 2, the milestone
    c = cfg(epochs=2, attack="none", lr_schedule="multistep", precisions=[4], random_precision=False)
    Trainer(small_cnn(precisions=[4], width=4), tiny_data(128), c, str(tmp_path)).fit(stop_after_steps=3)
    res = Trainer(small_cnn(precisions=[4], width=4), tiny_data(128), c, str(tmp_path))
    assert res.resume() and res.epoch == 1 and res.step == 2
    assert res.opt.param_groups[0]["lr"] == pytest.approx(0.005)
    res.train_batch(*tiny_data(64).tensors)
    assert res.lr_used == pytest.approx(0.005) and res.step == 3
    assert res.opt.param_groups[0]["lr"] == pytest.approx(0.0005)


def test_the_amp_scaler_s_scale_comes_back_with_the_checkpoint(tmp_path):
    c = cfg(epochs=1, attack="none", precisions=[4], random_precision=False)
    tr = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path / "a"))
    tr.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)  # (amp itself is CUDA only)
    tr.train_batch(*tiny_data(64).tensors)
    assert tr.scaler.get_scale() == 2048.0  # a finite step grows it (growth_interval 1)
    res = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path / "b"))
    res.scaler = torch.amp.GradScaler("cpu", growth_interval=1)
    res.load_state(tr.state())
    assert res.scaler.get_scale() == 2048.0  # not the default 65536


def test_free_training_s_noise_comes_back_with_the_checkpoint(tmp_path):
    c = cfg(epochs=1, attack="free", free_replays=2, epsilon=0.3, alpha=0.1, precisions=[4], random_precision=False)
    tr = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path / "a"))
    tr.train_batch(*tiny_data(64).tensors)
    assert tr.free_delta.abs().max() > 0
    res = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path / "b"))
    res.load_state(tr.state())
    assert res.free_delta is not None and torch.equal(res.free_delta, tr.free_delta)


def test_a_resume_keeps_the_run_s_id_and_a_finished_run_resumes_with_its_own_epochs(tmp_path):
    c = cfg(epochs=2, attack="none", precisions=[4], random_precision=False)
    first = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path))
    first.fit(stop_after_steps=2)  # one update an epoch: last.pt of epoch 1, stopped inside epoch 2
    res = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path))
    assert res.resume() and res.run_id == first.run_id
    res.fit()
    assert json.load(open(tmp_path / "config.json"))["run_id"] == first.run_id
    done = Trainer(small_cnn(precisions=[4], width=4), tiny_data(64), c, str(tmp_path))
    assert done.resume() and done.epoch == 2 and done.run_id == first.run_id  # epochs == the epochs it trained
    done.fit()
    assert done.step == 2 and len(open(tmp_path / "metrics.jsonl").readlines()) == 2


def test_zero_grad_mode_gives_back_zero_gradients_only_to_parameters_that_had_one(tmp_path):
    # fixed precision 2 of a [2, 8] model: the 8-bit BN branch never had a gradient, and must not get one
    # (SGD's weight decay would then move it on every update after the resume)
    c = cfg(epochs=1, attack="none", precisions=[2], random_precision=False, zero_grad="zero")
    tr = Trainer(small_cnn(precisions=[2, 8], width=4), tiny_data(64), c, str(tmp_path / "a"))
    tr.train_batch(*tiny_data(64).tensors)
    had = [p.grad is not None for p in tr._opt_params()]
    assert any(had) and not all(had)
    res = Trainer(small_cnn(precisions=[2, 8], width=4), tiny_data(64), c, str(tmp_path / "b"))
    res.load_state(tr.state())
    assert [p.grad is not None for p in res._opt_params()] == had
    assert all(not p.grad.any() for p in res._opt_params() if p.grad is not None)

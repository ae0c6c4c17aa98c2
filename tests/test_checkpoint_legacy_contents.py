"""Checkpoints of older dwq versions still load: one saved before the digests (plain torch.save) with its
optimizer state, and RNG states without the loop's generator (which then keeps its own)."""
import torch

import dwq
from dwq.models import build_model
from dwq.train import load_checkpoint, load_trained_model
from dwq.train.checkpoint import rng_state, set_rng_state

EXTRA = {"network": "small_cnn", "dataset": "mnist5k", "switchable_bn": True, "width": 4}


def test_a_checkpoint_saved_before_the_digests_loads(tmp_path):
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    path = str(tmp_path / "old.pt")
    torch.save({"model": model.state_dict(), "config": {"extra": {**EXTRA, "model_precisions": [2, 4]}},
                "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3)}}}, "epoch": 1}, path)
    ck = load_checkpoint(path)
    assert "state_sha256" not in ck and torch.equal(ck["optimizer"]["state"][0]["momentum_buffer"], torch.ones(3))
    loaded, _ = load_trained_model(path)
    assert dwq.precision_set(loaded) == [2, 4]


def test_rng_states_without_a_generator_leave_the_generator_as_it_was():
    st = rng_state()  # (no generator: a checkpoint of before the loop kept its own)
    assert "generator" not in st
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    set_rng_state(st, gen)
    assert torch.equal(gen.get_state(), before)

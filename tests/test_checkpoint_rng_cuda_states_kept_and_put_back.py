"""rng_state keeps every GPU's RNG state where CUDA is available, and set_rng_state puts back as many of
them as the resuming machine has GPUs (CUDA stood in for by monkeypatch: this runs without a GPU)."""
import pytest
import torch

from dwq.train import load_checkpoint, save_checkpoint
from dwq.train.checkpoint import rng_state, set_rng_state


@pytest.mark.parametrize("gpus", [1, 2, 3])
def test_each_gpus_rng_state_goes_through_a_checkpoint_to_the_gpus_there_are(tmp_path, monkeypatch, gpus):
    states = [torch.arange(16, dtype=torch.uint8) + i for i in range(2)]  # saved on a machine with 2 GPUs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    save_checkpoint(str(tmp_path / "last.pt"), {"model": {"w": torch.ones(1)}, "config": {}, "rng": rng_state()})
    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", calls.append)
    set_rng_state(load_checkpoint(str(tmp_path / "last.pt"))["rng"])
    assert len(calls) == 1, "the GPUs' RNG states were not put back"
    assert [t.tolist() for t in calls[0]] == [s.tolist() for s in states[:gpus]], "not the first GPUs' saved states"

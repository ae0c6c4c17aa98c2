"""A checkpoint written on a machine without CUDA holds no CUDA RNG states: resumed on a GPU machine it
restores the others and leaves the GPUs' generators as they are (a KeyError 'cuda' otherwise)."""
import torch

from dwq.train.checkpoint import rng_state, set_rng_state


def test_a_cpu_checkpoints_rng_states_restore_on_a_gpu_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    st = rng_state()
    assert "cuda" not in st
    want = torch.rand(3)
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", calls.append)
    set_rng_state(st)
    assert calls == [] and torch.equal(torch.rand(3), want)

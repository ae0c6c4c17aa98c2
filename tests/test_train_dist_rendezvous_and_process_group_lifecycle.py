"""dwq.train.dist on one CPU process: launched() needs every rendezvous variable (each one missing on its own
leaves the process unlaunched), setup() inside a gloo group that is already initialized joins it rather than
initializing another and reads the rank from RANK, and cleanup() without a group does nothing, with a group
waits at a barrier only when asked to (a gloo barrier, not one on a CUDA device)."""
import pytest
import torch
import torch.distributed as dist

from conftest import RENDEZVOUS
from dwq.train import dist as D


@pytest.mark.parametrize("missing", RENDEZVOUS)
def test_launched_needs_each_rendezvous_variable(clean_env, missing):
    """With three of the four torchrun variables set the process is not launched (and setup() starts no group)."""
    values = dict(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    for k, v in values.items():
        if k != missing:
            clean_env.setenv(k, v)
    assert not D.launched(), f"launched() with {missing} unset"
    assert D.setup("cpu") == (0, 1, torch.device("cpu")) and not dist.is_initialized()
    clean_env.setenv(missing, values[missing])
    assert D.launched(), "launched() is False with all four variables set"


def test_setup_in_an_initialized_group_joins_it_with_the_rank_from_rank(clean_env, gloo_group):
    """A launched process whose group is already up: setup() keeps that group (a second init raised) and reports
    RANK (not LOCAL_RANK) and WORLD_SIZE, on the CPU whatever LOCAL_RANK says."""
    clean_env.setenv("RANK", "0")
    clean_env.setenv("WORLD_SIZE", "1")
    clean_env.setenv("LOCAL_RANK", "3")
    clean_env.setenv("MASTER_ADDR", "127.0.0.1")
    clean_env.setenv("MASTER_PORT", "29500")
    got = D.setup("cpu")
    assert got == (0, 1, torch.device("cpu")), f"setup() gave (rank, world, device) {got}; RANK is 0, LOCAL_RANK 3"
    assert dist.group.WORLD is gloo_group and dist.get_backend() == "gloo", "setup() replaced the process group"


def test_cleanup_without_a_group_does_nothing():
    """Outside a process group cleanup() (either way) neither raises nor waits."""
    assert not dist.is_initialized()
    D.cleanup()
    D.cleanup(synchronize=True)
    assert not dist.is_initialized()


@pytest.mark.parametrize("synchronize", [False, True])
def test_cleanup_waits_at_a_barrier_only_when_asked(gloo_group, monkeypatch, synchronize):
    """cleanup(synchronize=True) waits at one gloo barrier (no CUDA device ids) before leaving the group;
    cleanup() leaves it at once (after a failure a rank may never arrive)."""
    calls = []
    real = dist.barrier
    monkeypatch.setattr(dist, "barrier", lambda **kw: calls.append(kw) or real(**kw))
    D.cleanup(synchronize=synchronize)
    assert not dist.is_initialized(), "cleanup() left the process group up"
    assert calls == ([{"device_ids": None}] if synchronize else []), f"barrier calls {calls}"


def test_barrier_on_a_gloo_group_names_no_device(gloo_group, monkeypatch):
    """barrier() in a gloo group passes no device ids (asking for the current CUDA device is NCCL's alone)."""
    calls = []
    real = dist.barrier
    monkeypatch.setattr(dist, "barrier", lambda **kw: calls.append(kw) or real(**kw))
    D.barrier()
    assert calls == [{"device_ids": None}], f"barrier calls {calls}"

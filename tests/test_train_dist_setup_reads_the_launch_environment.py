"""dwq.train.dist.setup beyond the single-CPU defaults: outside torchrun the device asked for is returned as
it is (cuda included); launched, the rank is RANK's and the world WORLD_SIZE's (not 1), on CUDA the process
takes the GPU of LOCAL_RANK (0 when unset) with NCCL (the CUDA calls recorded, no GPU needed), and on the CPU
setup itself starts a gloo group from the rendezvous variables."""
import socket

import pytest
import torch
import torch.distributed as dist

from dwq.train import dist as D


def _launch(env, rank="0", world="1", port="29500"):
    for k, v in dict(RANK=rank, WORLD_SIZE=world, MASTER_ADDR="127.0.0.1", MASTER_PORT=port).items():
        env.setenv(k, v)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "cpu"])
def test_outside_torchrun_the_device_asked_for_is_returned(clean_env, device):
    """Not launched: (0, 1, the device asked for), whatever the machine has; no GPU is touched."""
    got = D.setup(device)
    assert got == (0, 1, torch.device(device)), f"setup({device!r}) outside torchrun gave {got}"
    assert not dist.is_initialized()


def test_rank_and_world_come_from_rank_and_world_size(clean_env, gloo_group):
    """In a group already up, setup() reports RANK and WORLD_SIZE as the launcher set them (rank 1 of 2 here),
    not LOCAL_RANK nor a world of 1."""
    _launch(clean_env, rank="1", world="2")
    clean_env.setenv("LOCAL_RANK", "0")
    got = D.setup("cpu")
    assert got == (1, 2, torch.device("cpu")), f"setup() gave (rank, world, device) {got}; RANK 1, WORLD_SIZE 2"


@pytest.fixture
def cuda_calls(clean_env):
    """torch.cuda.set_device and the process group's start recorded instead of run (no GPU, no NCCL)."""
    calls = []
    clean_env.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    clean_env.setattr(dist, "is_initialized", lambda: False)
    clean_env.setattr(dist, "init_process_group", lambda backend=None, **kw: calls.append(("init", backend)))
    return calls


@pytest.mark.parametrize("local_rank, gpu", [(None, 0), ("2", 2)])
def test_on_cuda_the_process_takes_the_gpu_of_local_rank_with_nccl(clean_env, cuda_calls, local_rank, gpu):
    """Launched on CUDA: the current device is set to LOCAL_RANK's GPU (0 without LOCAL_RANK) before an NCCL
    group starts, and the device returned is that GPU whatever RANK says (rank 3 here)."""
    _launch(clean_env, rank="3", world="4")
    if local_rank is not None:
        clean_env.setenv("LOCAL_RANK", local_rank)
    got = D.setup("cuda")
    assert got == (3, 4, torch.device("cuda", gpu)), f"setup('cuda') with LOCAL_RANK={local_rank} gave {got}"
    assert cuda_calls == [("set_device", gpu), ("init", "nccl")], f"calls {cuda_calls}"


def test_on_the_cpu_setup_starts_a_gloo_group(clean_env):
    """Launched on the CPU with no group up: setup() starts one itself, with gloo, from the rendezvous
    variables (a world of one on a free local port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    _launch(clean_env, port=port)
    assert not dist.is_initialized()
    try:
        got = D.setup("cpu")
        assert dist.is_initialized() and dist.get_backend() == "gloo", "setup('cpu') did not start a gloo group"
        assert got == (0, 1, torch.device("cpu")) and D.active()
    finally:
        D.cleanup()
    assert not dist.is_initialized()

"""state_sha256 covers the tensors a checkpoint keeps inside lists too: each GPU's RNG state and, under
DDP, each rank's states; damage there was resumed from silently."""
import pytest
import torch

from dwq.train import CheckpointError, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("where", ["cuda", "rank_states"])
def test_a_changed_tensor_inside_a_list_is_refused(tmp_path, where):
    gpu_states = [torch.arange(16, dtype=torch.uint8) + i for i in range(2)]
    rank = {"rng": {"torch": torch.arange(40, dtype=torch.uint8)}, "free_delta": torch.zeros(3)}
    state = {"model": {"w": torch.ones(3)}, "config": {"extra": {}}, "epoch": 1,
             "rng": {"torch": torch.arange(40, dtype=torch.uint8), "cuda": gpu_states},
             "rank_states": [rank, {**rank, "free_delta": torch.ones(3)}]}
    path = tmp_path / "last.pt"
    save_checkpoint(str(path), state)
    assert load_checkpoint(str(path))["epoch"] == 1
    raw = torch.load(path, weights_only=True)
    if where == "cuda":
        raw["rng"]["cuda"][1][3] += 1
    else:
        raw["rank_states"][1]["free_delta"][2] += 1
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its tensors other than the model's"):
        load_checkpoint(str(tmp_path / "bad.pt"))

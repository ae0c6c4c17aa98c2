"""dwq.train.checkpoint's digests as a file format: state_sha256 is the digest of the tensors outside the
model, each named by its path in the state (``a.b`` in dicts, ``a[i]`` in lists and tuples), so that
checkpoints written by one dwq version load in the next; tensors inside tuples are covered; digests a
state already holds are kept, not computed again."""
import pytest
import torch

from dwq._digest import tensor_digest
from dwq.train import CheckpointError, load_checkpoint, save_checkpoint
from dwq.train.checkpoint import with_digests


def _state():
    return {"model": {"w": torch.ones(3)}, "config": {"extra": {}}, "epoch": 2,
            "optimizer": {"state": {0: {"momentum_buffer": torch.arange(4.0)}}},
            "rng": {"torch": torch.arange(8, dtype=torch.uint8), "cuda": [torch.zeros(2, dtype=torch.uint8)]},
            "pair": (torch.full((2,), 7.0), torch.ones(1))}


def test_state_sha256_is_the_digest_of_the_named_tensors_outside_the_model(tmp_path):
    """The names and the tensors digested are what every saved file holds: another spelling of the
    paths, or the model's tensors counted in, would call every older checkpoint corrupt."""
    s = _state()
    want = tensor_digest({"optimizer.state.0.momentum_buffer": s["optimizer"]["state"][0]["momentum_buffer"],
                          "rng.torch": s["rng"]["torch"], "rng.cuda[0]": s["rng"]["cuda"][0],
                          "pair[0]": s["pair"][0], "pair[1]": s["pair"][1]})
    save_checkpoint(str(tmp_path / "last.pt"), s)
    ck = load_checkpoint(str(tmp_path / "last.pt"))
    assert ck["state_sha256"] == want, "state_sha256 is not the digest of the path-named tensors outside the model"
    assert ck["model_sha256"] == tensor_digest(s["model"]), "model_sha256 is not the digest of the model alone"


def test_a_changed_tensor_inside_a_tuple_is_refused(tmp_path):
    save_checkpoint(str(tmp_path / "last.pt"), _state())
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    raw["pair"][0][1] += 1
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its tensors other than the model's"):
        load_checkpoint(str(tmp_path / "bad.pt"))


@pytest.mark.parametrize("held", [("state_sha256", "model_sha256"), ("model_sha256",)])
def test_digests_a_state_holds_are_kept(held):
    """A state with its digests (saved to best.pt and last.pt) is digested once; a model digest it
    holds (a checkpoint of before state_sha256) is kept as it was, not replaced by the current model's."""
    s = {**_state(), **{k: f"stored {k}" for k in held}}
    out = with_digests(s)
    for k in held:
        assert out[k] == f"stored {k}", f"with_digests replaced the {k} the state held"
    if "state_sha256" in held:
        assert out is s, "a state that has its digests was copied and digested again"
    else:
        assert out["state_sha256"] == with_digests(_state())["state_sha256"]

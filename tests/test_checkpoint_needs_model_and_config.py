"""load_checkpoint refuses a torch.save dict that lacks the 'model' or the 'config' entry of a dwq
checkpoint (a bare state_dict holding a 'model' key, another tool's file) by name, before any caller
reads ck["config"] (a bare KeyError: 'config' from load_trained_model or a resume)."""
import pytest
import torch

from dwq.train import CheckpointError, load_checkpoint, load_trained_model


@pytest.mark.parametrize("state", [{"model": {"w": torch.ones(2)}, "epoch": 1},
                                   {"config": {"extra": {}}, "epoch": 1}])
def test_a_dict_without_model_or_config_is_not_a_dwq_checkpoint(tmp_path, state):
    path = str(tmp_path / "x.pt")
    torch.save(state, path)
    for load in (load_checkpoint, load_trained_model):
        with pytest.raises(CheckpointError, match=r"x.pt is not a dwq checkpoint \(no 'model'/'config' entries"):
            load(path)


@pytest.mark.parametrize("config,what", [(["x"], "a list"), ({"extra": None}, "a dict whose 'extra' is a NoneType")])
def test_a_config_that_is_not_a_run_config_is_refused_in_one_line(tmp_path, capsys, config, what):
    """Every reader takes ck["config"] and its "extra" for dicts: a hand-made file with both keys gave an
    AttributeError traceback from dwq train --resume (load_trained_model alone checked)."""
    from dwq.cli.main import main
    from dwq.train import save_checkpoint

    path = str(tmp_path / "last.pt")
    save_checkpoint(path, {"model": {"w": torch.ones(1)}, "config": config, "epoch": 1})
    with pytest.raises(CheckpointError, match=f"its 'config' entry is {what}, not a run's config"):
        load_checkpoint(path)
    assert main(["train", "--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"its 'config' entry is {what}" in err and len(err.strip().splitlines()) == 1, err

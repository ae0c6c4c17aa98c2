"""dwq.train.run_folder on hand-made folders: which checkpoint belongs to the run recorded there, which
folder may take a new run, and the metrics line a resume reads."""
import json

import pytest

from dwq.train import CheckpointError
from dwq.train.run_folder import RunFolder, check_fresh_run_folder, check_run_checkpoint


def _ck(epoch, run_id="abc"):
    config = {"extra": {}}
    if run_id is not None:
        config["run_id"] = run_id
    return {"model": {}, "config": config, "epoch": epoch}


def _folder(tmp_path, epochs, config=None):
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    if epochs is not None:
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in epochs))
    return str(tmp_path)


def test_a_folder_holding_only_a_last_pt_takes_no_new_run(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"already holds a run \(last.pt\)"):
        check_fresh_run_folder(str(tmp_path))
    check_fresh_run_folder(str(tmp_path / "empty"))  # (a folder yet to be made takes one)


def test_a_config_json_without_run_id_refuses_a_checkpoint_with_one(tmp_path):
    out = _folder(tmp_path, [1], config={"extra": {}})
    with pytest.raises(CheckpointError, match=r"its run id is abc, config.json's is absent \(written before run ids\)"):
        check_run_checkpoint(out, _ck(1))
    check_run_checkpoint(out, _ck(1, run_id=None))  # both of before run ids: metrics.jsonl decides


def test_metrics_one_epoch_behind_is_accepted_only_for_a_checkpoint_of_before_run_ids(tmp_path):
    out = _folder(tmp_path, [1, 2], config={"run_id": "abc"})
    check_run_checkpoint(out, _ck(2))
    check_run_checkpoint(out, _ck(1))  # the line of epoch 2 was written, its last.pt not
    with pytest.raises(CheckpointError, match="it has trained 3 epochs, and metrics.jsonl ends at epoch 2"):
        check_run_checkpoint(out, _ck(3))  # a run id: its line is written before last.pt, never after
    check_run_checkpoint(out, _ck(3, run_id=None))  # dwq once wrote last.pt first


def test_an_empty_metrics_jsonl_ends_at_epoch_0(tmp_path):
    out = _folder(tmp_path, [], config={"run_id": "abc"})
    with pytest.raises(CheckpointError, match="it has trained 2 epochs, and metrics.jsonl ends at epoch 0"):
        check_run_checkpoint(out, _ck(2))
    check_run_checkpoint(out, _ck(0))


@pytest.mark.parametrize("text", ["[1, 2]", "7", "null"])
def test_a_config_json_that_is_no_object_is_a_checkpoint_error(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"config.json is not a run's config \(not a JSON object\)"):
        check_run_checkpoint(str(tmp_path), _ck(1))


def test_the_record_of_an_epoch_is_its_last_line(tmp_path):
    """A metrics.jsonl holding an epoch twice (a resume of before lines were trimmed): the later line is
    the epoch's, which decides whether a resume rewrites best.pt."""
    lines = [json.dumps(r) + "\n" for r in ({"epoch": 1, "best": True}, {"epoch": 2, "best": True},
                                            {"epoch": 2, "best": False})] + ['{"epoch": 3, "be']
    run = RunFolder(str(tmp_path), None, lines)
    assert run.record(2) == {"epoch": 2, "best": False} and run.record(1)["best"] is True
    assert run.record(3) is None

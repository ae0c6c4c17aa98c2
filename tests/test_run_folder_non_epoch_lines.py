"""dwq.train.run_folder on metrics.jsonl lines that are no epoch record: an ``"epoch"`` that is a bool (JSON
true/false: not a number of epochs) or a string, an object without an epoch (a note added by hand: it was
read as epoch 0, so the run refused its own last.pt), a line that is no object, a line cut short. None of
them counts as the epoch metrics.jsonl ends at, and a resume's trim drops them."""
import json

import pytest

from dwq.train import CheckpointError
from dwq.train.run_folder import RunFolder, check_run_checkpoint, read_metrics
from test_run_folder_checks import _ck, _folder

NOT_EPOCHS = ['{"epoch": true}\n', '{"epoch": false}\n', '{"epoch": "2"}\n', '{"note": "lr halved by hand"}\n',
              "7\n", "null\n", '{"epoch": 3, "lo\n']


@pytest.mark.parametrize("line", NOT_EPOCHS)
def test_a_line_that_is_no_epoch_record_does_not_end_metrics(tmp_path, line):
    """metrics.jsonl ends at its last epoch record: a trailing ``{"epoch": true}`` (True == 1) neither makes a
    checkpoint of epoch 2 look two epochs ahead nor one of epoch 1 look current."""
    out = _folder(tmp_path, [1, 2], config={"run_id": "abc"})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(line)
    check_run_checkpoint(out, _ck(2))
    with pytest.raises(CheckpointError, match="it has trained 4 epochs, and metrics.jsonl ends at epoch 2"):
        check_run_checkpoint(out, _ck(4))


@pytest.mark.parametrize("line", NOT_EPOCHS)
def test_the_trim_of_a_resume_drops_a_line_that_is_no_epoch_record(tmp_path, line):
    """trim_metrics(1) keeps the lines of epochs up to 1; a bool epoch (True == 1) is not epoch 1."""
    lines = [json.dumps({"epoch": 1}) + "\n", line, json.dumps({"epoch": 2}) + "\n"]
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    RunFolder(str(tmp_path), None, read_metrics(str(tmp_path))).trim_metrics(1)
    kept = read_metrics(str(tmp_path))
    assert kept == [lines[0]], f"trim_metrics(1) kept {kept!r} of {lines!r}; expected only epoch 1's line"

"""dwq.cli.train_resume on its own: the flags a resume gives compared with those its run recorded, and the
run's flags restored where none was given (what dwq train --resume does before it trains)."""
import json

import pytest
import torch

from dwq.cli.common import CLIError, given_flags
from dwq.cli.main import build_parser
from dwq.cli.train_flags import NOT_RECORDED, resolve_flags
from dwq.cli.train_resume import check_resume, differing_flags, load_run, restore_flags
from dwq.train import save_checkpoint

RUN = ["--num-bits-schedule", "2", "4", "--random-precision-training", "--width", "8", "--epochs", "1",
       "--device", "cpu"]


def _parse(out, argv):
    argv = ["train", "--out", str(out)] + argv
    return build_parser().parse_args(argv), given_flags(build_parser(), argv) - set(NOT_RECORDED)


def _recorded(out):
    f, _ = resolve_flags(*_parse(out, RUN))
    assert f["precisions"] == ["2", "3", "4"] and f["free_replays"] is None  # (free_replays: played no part)
    return f


def test_the_num_bits_schedule_spelling_is_compared_as_the_set_it_spans(tmp_path):
    recorded = _recorded(tmp_path)
    check_resume(*_parse(tmp_path, ["--resume", "--epochs", "2", "--num-bits-schedule", "2", "4"]), recorded, 1)
    with pytest.raises(CLIError, match=r"--num-bits-schedule 2 5 \(run: --precisions 2 3 4\)"):
        check_resume(*_parse(tmp_path, ["--resume", "--epochs", "2", "--num-bits-schedule", "2", "5"]), recorded, 1)


def test_restore_flags_keeps_the_device_the_parser_defaults_and_the_given_spelling(tmp_path):
    recorded = {**_recorded(tmp_path), "device": "cuda:1"}
    default = build_parser().parse_args(["train", "--out", "x"])
    a = restore_flags(*_parse(tmp_path, ["--resume", "--epochs", "2"]), recorded)
    assert a.device == default.device  # this machine's default, not the run's
    assert a.free_replays == default.free_replays  # a recorded null keeps the parser's default
    assert a.width == 8 and a.precisions == [2, 3, 4] and a.num_bits_schedule is None and a.epochs == 2
    a = restore_flags(*_parse(tmp_path, ["--resume", "--num-bits-schedule", "2", "4"]), recorded)
    assert a.num_bits_schedule == [2, 4] and a.precisions is None  # given in the other spelling: not restored


def test_a_flag_newer_than_the_run_differs_only_where_given():
    recorded = {"epochs": 1, "width": 8}
    values = {"epochs": 1, "width": 8, "cuda_graphs": False}
    assert differing_flags(recorded, values, set()) == {}
    assert differing_flags(recorded, values, {"cuda_graphs"}) == {"cuda_graphs": (None, False)}
    assert differing_flags(recorded, {**values, "width": 16}, set()) == {"width": (8, 16)}


@pytest.mark.parametrize("flags", [["--width", "8"], "--width 8", 7])
def test_a_checkpoint_whose_flags_are_no_dict_is_refused(tmp_path, flags):
    save_checkpoint(str(tmp_path / "last.pt"), {"model": {"w": torch.ones(1)}, "epoch": 1,
                                                "config": {"run_id": "a", "extra": {"flags": flags}}})
    with pytest.raises(CLIError, match="does not record its run's flags"):
        load_run(str(tmp_path))


def _legacy_run(tmp_path, flags, config_flags, command="dwq train --out r", config_command="dwq train --out r"):
    """A run folder of before run ids: last.pt (epoch 2) and config.json record flags and history, no run id."""
    save_checkpoint(str(tmp_path / "last.pt"), {"model": {"w": torch.ones(1)}, "epoch": 2, "config": {
        "extra": {"flags": flags, "history": [{"started": "then", "command": command}]}}})
    (tmp_path / "config.json").write_text(json.dumps(
        {"extra": {"flags": config_flags, "history": [{"started": "then", "command": config_command},
                                                      {"resumed_at_epoch": 2, "command": "dwq train --resume"}]}}))
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    return str(tmp_path)


def test_a_checkpoint_of_before_run_ids_is_checked_on_the_flags_a_resume_may_not_change(tmp_path):
    """config.json of a resume with --epochs 3 killed before its first last.pt: the run's own last.pt
    (epochs 2) resumes; one whose width or starting command differ is another run's."""
    for name in "abc":
        (tmp_path / name).mkdir()
    out = _legacy_run(tmp_path / "a", {"epochs": 2, "width": 8}, {"epochs": 3, "width": 8})
    ck, flags, _ = load_run(out)
    assert ck["epoch"] == 2 and flags["epochs"] == 2
    out = _legacy_run(tmp_path / "b", {"epochs": 2, "width": 8}, {"epochs": 3, "width": 16})
    with pytest.raises(CLIError, match=r"is not the checkpoint of the run in .*: --width 8 \(config.json: 16\)"):
        load_run(out)
    out = _legacy_run(tmp_path / "c", {"epochs": 2, "width": 8}, {"epochs": 2, "width": 8},
                      config_command="dwq train --out r --width 8")
    with pytest.raises(CLIError, match=r"started by `dwq train --out r` \(config.json: `dwq train --out r --width 8`"):
        load_run(out)

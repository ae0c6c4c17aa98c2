"""dwq.cli.train_resume on folders made in the test (found by a second mutation audit): a checkpoint of
before run ids beside a config.json that is missing, records more or fewer flags, or records a fixed
full-precision run as null; the --epochs a resume falls back to; the recorded nulls a resume leaves at the
parser's default; a given flag the run never recorded; a relative --pretrained."""
import json
import os

import pytest
import torch

from dwq.cli.common import CLIError, given_flags
from dwq.cli.main import build_parser
from dwq.cli.train_flags import NOT_RECORDED
from dwq.cli.train_resume import check_resume, load_run, restore_flags
from dwq.train import save_checkpoint


def _parse(out, argv):
    argv = ["train", "--out", str(out)] + argv
    return build_parser().parse_args(argv), given_flags(build_parser(), argv) - set(NOT_RECORDED)


def _legacy(folder, flags, config_extra=None, command="dwq train --out r"):
    """last.pt of before run ids (epoch 2, no run id) and, unless config_extra is None, a config.json."""
    folder.mkdir()
    save_checkpoint(str(folder / "last.pt"), {"model": {"w": torch.ones(1)}, "epoch": 2, "config": {
        "extra": {"flags": flags, "history": [{"started": "then", "command": command}]}}})
    if config_extra is not None:
        (folder / "config.json").write_text(json.dumps({"extra": config_extra}))
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    return str(folder)


def _history(command="dwq train --out r"):
    return [{"started": "then", "command": command}]


def test_a_legacy_checkpoint_without_config_json_resumes(tmp_path):
    ck, flags, run = load_run(_legacy(tmp_path / "r", {"epochs": 2, "width": 8}))
    assert ck["epoch"] == 2 and flags == {"epochs": 2, "width": 8} and run.config is None


def test_a_legacy_checkpoint_recording_more_flags_than_config_json_resumes(tmp_path):
    """A later dwq records more flags; those recorded on one side only are not compared."""
    out = _legacy(tmp_path / "r", {"epochs": 2, "width": 8, "threads": 1, "cuda_graphs": False},
                  {"flags": {"epochs": 2, "width": 8}, "history": _history()})
    assert load_run(out)[1]["width"] == 8
    out = _legacy(tmp_path / "s", {"epochs": 2}, {"flags": {"epochs": 2, "width": 8}, "history": _history()})
    assert load_run(out)[1] == {"epochs": 2}


def test_a_legacy_config_json_without_flags_compares_the_starting_command_only(tmp_path):
    out = _legacy(tmp_path / "r", {"epochs": 2, "num_bits": None}, {"history": _history()})
    assert load_run(out)[1] == {"epochs": 2, "num_bits": "fp"}
    out = _legacy(tmp_path / "s", {"epochs": 2}, {"history": _history("dwq train --out s")})
    with pytest.raises(CLIError, match=r"started by `dwq train --out r` \(config.json: `dwq train --out s`\)"):
        load_run(out)


def test_a_legacy_fixed_full_precision_run_recorded_null_on_both_sides_resumes(tmp_path):
    flags = {"epochs": 2, "num_bits": None, "random_precision_training": False}
    out = _legacy(tmp_path / "r", flags, {"flags": dict(flags), "history": _history()})
    assert load_run(out)[1]["num_bits"] == "fp"
    out = _legacy(tmp_path / "s", flags, {"flags": {**flags, "num_bits": 4}, "history": _history()})
    with pytest.raises(CLIError, match=r"--num-bits fp \(config.json: 4\)"):
        load_run(out)


def test_without_epochs_given_a_resume_of_a_finished_run_is_refused(tmp_path):
    """The run's own --epochs, not the parser's default (10), says whether there is more to train."""
    recorded = {"epochs": 2, "width": 8}
    with pytest.raises(CLIError, match=r"has trained 2 epochs and --epochs is 2: nothing to do; give --epochs N "
                                       r"with N > 2"):
        check_resume(*_parse(tmp_path, ["--resume"]), recorded, 2)
    check_resume(*_parse(tmp_path, ["--resume"]), recorded, 1)
    check_resume(*_parse(tmp_path, ["--resume", "--epochs", "3"]), recorded, 2)


def test_a_given_flag_the_run_did_not_record_is_refused(tmp_path):
    with pytest.raises(CLIError, match=r"--width 8 \(run: not used\)"):
        check_resume(*_parse(tmp_path, ["--resume", "--epochs", "3", "--width", "8"]), {"epochs": 2}, 1)


def test_a_relative_pretrained_path_is_the_run_s_absolute_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recorded = {"epochs": 2, "pretrained": os.path.join(str(tmp_path), "w.pt")}
    check_resume(*_parse(tmp_path, ["--resume", "--epochs", "3", "--pretrained", "w.pt"]), recorded, 1)
    with pytest.raises(CLIError, match=r"--pretrained"):
        check_resume(*_parse(tmp_path, ["--resume", "--epochs", "3", "--pretrained", "v.pt"]), recorded, 1)


@pytest.mark.parametrize("dest", ["width", "attack_iters", "free_replays", "lr_milestones", "val_pgd_steps",
                                  "val_every"])
def test_a_flag_recorded_null_keeps_the_parser_default(tmp_path, dest):
    """A null recorded for these flags means "played no part in the run": the parser's default stands in."""
    default = getattr(build_parser().parse_args(["train", "--out", "x"]), dest)
    assert default is not None
    a = restore_flags(*_parse(tmp_path, ["--resume"]), {"epochs": 2, dest: None})
    assert getattr(a, dest) == default and a.epochs == 2


def test_a_folder_without_last_pt_is_named_an_unfinished_run_only_with_its_config_json(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(CLIError, match=r"last.pt does not exist$"):
        load_run(str(tmp_path / "r"))
    (tmp_path / "r" / "config.json").write_text("{}")
    with pytest.raises(CLIError, match=r"has no last.pt \(no epoch was completed\); start it again with a new --out"):
        load_run(str(tmp_path / "r"))

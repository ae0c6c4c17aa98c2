"""dwq.cli.train_flags on its own (no training), the parts its other tests leave open: which flags a --resume may
give with another value (and that any other is refused), the values recorded for a flag that plays no part
(width of a fixed-width network, milestones of a non-multistep schedule) and torch's thread count when
--threads is not given, the training-precision note only where the set has a choice, --reference's own step
at any radius and its refusal of a PGD step only, a resume's own words for a flag it cannot take,
--cuda-graphs refused on CUDA where it replays nothing, the default device, and show_value beside an equal
value."""
import re

import pytest
import torch

from dwq.cli.common import CLIError, given_flags
from dwq.cli.main import build_parser
from dwq.cli.train_flags import (RESUME_MAY_CHANGE, apply_reference_defaults, device_arg,
                                 resolve_flags, show_value)
from dwq.cli.train_resume import check_resume
from test_train_flags_resolved_defaults_and_bounds import _resolve
from test_train_resume_flags import _parse, _recorded

# another value than the run's for every flag a resume may change (the run: _recorded's, with threads 7 and a
# CUDA device so that --threads 1 and --device cpu differ from it)
CHANGES = {"epochs": ["--epochs", "3"], "workers": ["--workers", "2"], "threads": ["--threads", "1"],
           "no_progress": ["--no-progress"], "device": ["--device", "cpu"], "data_dir": ["--data-dir", "elsewhere"],
           "val_every": ["--val-every", "2"], "compile": ["--compile"], "deterministic": ["--deterministic"],
           "cuda_graphs": ["--cuda-graphs"]}


def test_every_flag_a_resume_may_change_is_listed_with_a_reason():
    assert set(RESUME_MAY_CHANGE) == set(CHANGES), sorted(set(RESUME_MAY_CHANGE) ^ set(CHANGES))
    assert all(isinstance(why, str) and why for why in RESUME_MAY_CHANGE.values())


@pytest.mark.parametrize("dest", sorted(CHANGES))
def test_a_resume_may_give_this_flag_another_value(tmp_path, dest):
    """check_resume lets the flag through with a value other than the recorded one."""
    recorded = {**_recorded(tmp_path), "threads": 7, "device": "cuda:0"}
    a, given = _parse(tmp_path, ["--resume", *CHANGES[dest]])
    assert dest in given and getattr(a, dest) != recorded[dest]
    check_resume(a, given, recorded, 0)


def test_a_resume_that_changes_another_flag_is_refused(tmp_path):
    with pytest.raises(CLIError, match=re.escape("was trained with other flags: --seed 5 (run: 0)")):
        check_resume(*_parse(tmp_path, ["--resume", "--epochs", "3", "--seed", "5"]), _recorded(tmp_path), 1)


def test_a_fixed_run_of_one_precision_has_no_training_precision_note():
    """The note says which of several precisions trains; with one there is nothing to choose."""
    f, notes = _resolve("--precisions", "4")
    assert f["num_bits"] == "4" and not any("training precision" in text for _, text in notes), notes


@pytest.mark.parametrize("argv, key, value", [
    (["--network", "preact_resnet18"], "width", None),
    (["--network", "small_cnn", "--width", "8"], "width", 8),
    (["--lr-schedule", "constant"], "lr_milestones", None),
])
def test_a_flag_that_plays_no_part_is_recorded_as_null_and_one_that_does_as_given(argv, key, value):
    f, _ = _resolve(*argv)
    assert f[key] == value, (key, f[key])


def test_threads_not_given_are_recorded_as_torch_s_count(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    f, _ = _resolve()
    assert f["threads"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--resume", "--data-dir", "d"], "mnist5k is embedded: this run trains on mnist5k, drop --data-dir"),
    (["--resume", "--val-size", "0", "--val-every", "2"], "--val-every sets when validation runs, and --val-size 0 "
                                                          "disables"),
])
def test_a_flag_that_cannot_take_effect_is_refused_in_its_own_words(argv, message):
    with pytest.raises(CLIError, match=re.escape(message)):
        _resolve(*argv)


def test_a_resumed_amp_run_on_a_machine_without_cuda_is_told_where_to_resume(tmp_path):
    """--amp recorded by the run (restored, not given): the message is the resume's."""
    a, given = _parse(tmp_path, ["--resume", "--device", "cpu"])
    a.amp = True
    with pytest.raises(CLIError, match=re.escape("--resume: ") + ".*" + re.escape("was trained with --amp")):
        resolve_flags(a, given)


@pytest.fixture
def cuda_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("argv, why", [
    (["--attack", "fgsm"], "replays the PGD attack only"),
    (["--attack", "none"], "replays the PGD attack only"),
    (["--compile"], "is another way of cutting the attack's launches than --compile"),
])
def test_cuda_graphs_on_cuda_are_refused_where_they_replay_nothing(cuda_machine, argv, why):
    with pytest.raises(CLIError, match=re.escape(f"--cuda-graphs (the attack replayed from CUDA graphs) {why}")):
        _resolve("--device", "cuda", "--cuda-graphs", *argv)
    f, _ = _resolve("--device", "cuda", "--cuda-graphs")
    assert f["cuda_graphs"] is True and f["device"] == "cuda"


def test_an_unnamed_device_is_cuda_where_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_arg(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_arg(None) == "cuda"


def _reference(*argv):
    argv = ["train", "--out", "x", "--reference", *argv]
    p = build_parser()
    a = p.parse_args(argv)
    ((_, note),) = apply_reference_defaults(a, given_flags(p, argv))
    return a, note


def test_reference_fgsm_rs_steps_its_own_10_over_255_at_any_radius():
    """Not 1.25ε: at ε 16/255 that would be 20/255."""
    a, note = _reference("--epsilon", str(16 / 255))
    assert a.attack == "fgsm-rs" and a.alpha == 10 / 255 and f"--alpha {10 / 255:.6g}" in note, note


def test_reference_keeps_a_given_fgsm_step_and_refuses_only_a_pgd_one_other_than_2_over_255():
    a, _ = _reference("--attack", "fgsm", "--alpha", "0.05")
    assert a.alpha == 0.05
    with pytest.raises(CLIError, match=r"--reference: the reference's PGD training always steps 2/255"):
        _reference("--attack", "pgd", "--alpha", "0.05")


def test_show_value_beside_an_equal_float_is_short():
    """Only a different value alike to 6 digits is shown in full."""
    assert show_value(8 / 255, against=8 / 255) == "0.0313725"

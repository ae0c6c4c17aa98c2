"""dwq.cli.train_flags on its own (build_parser + resolve_flags, no training): the defaults a run resolves
to (every flag's, as --help states them; its training precision, a null num_bits for RPT), the bounds of
its checks, and show_value."""
import re

import pytest
import torch

from dwq.cli.common import CLIError, given_flags
from dwq.cli.main import build_parser
from dwq.cli.train_flags import apply_reference_defaults, device_arg, resolve_flags, show_value


def _resolve(*argv):
    argv = ["train", "--out", "x", "--device", "cpu", *argv]
    return resolve_flags(build_parser().parse_args(argv), given_flags(build_parser(), argv))


def test_a_run_given_no_flag_records_the_documented_defaults():
    f, notes = _resolve()
    expected = {"dataset": "mnist5k", "data_dir": None, "val_size": 0.1, "train_subset": None, "network": "small_cnn",
                "width": 32, "pretrained": None, "reference": False, "precisions": ["fp"],
                "random_precision_training": False, "num_bits": "fp", "switchable_bn": False, "attack": "pgd",
                "epsilon": 8 / 255, "alpha": 2 / 255, "attack_iters": 7, "free_replays": None, "epochs": 10,
                "batch_size": 128, "lr": 0.1, "lr_schedule": "multistep", "lr_milestones": [0.5, 0.75],
                "momentum": 0.9, "weight_decay": 5e-4, "seed": 0, "val_pgd_steps": 10, "val_every": 1,
                "device": "cpu", "amp": False, "compile": False, "cuda_graphs": False, "deterministic": False,
                "workers": None, "no_progress": False}
    assert {k: f[k] for k in expected} == expected
    assert any("attack step 0.007843" in text for _, text in notes), notes


def test_the_free_attack_s_replays_default_to_four():
    f, _ = _resolve("--attack", "free")
    assert f["free_replays"] == 4 and f["attack_iters"] is None and f["alpha"] == 8 / 255


def test_a_fixed_run_without_num_bits_trains_at_the_last_of_the_set_or_at_fp_in_it():
    f, notes = _resolve("--precisions", "2", "4", "8")
    assert f["num_bits"] == "8" and f["precisions"] == ["2", "4", "8"]
    assert any("training precision 8" in text and "the last of the set" in text for _, text in notes), notes
    f, notes = _resolve("--precisions", "fp", "4", "8")  # fp anywhere in the set: full precision
    assert f["num_bits"] == "fp"
    assert any("training precision fp" in text for _, text in notes), notes


def test_a_random_precision_run_records_num_bits_as_playing_no_part():
    f, _ = _resolve("--random-precision-training", "--precisions", "2", "4")
    assert f["num_bits"] is None and f["random_precision_training"]


def test_an_attack_step_of_exactly_one_is_inside_the_unit_interval():
    f, _ = _resolve("--attack", "fgsm", "--epsilon", "1")  # FGSM's default step is ε
    assert f["alpha"] == 1.0
    with pytest.raises(CLIError, match=r"the attack step 1\.25 \(1\.25ε\) is outside \[0, 1\]"):
        _resolve("--attack", "fgsm-rs", "--epsilon", "1")


def test_a_milestone_at_the_start_of_the_run_is_refused():
    with pytest.raises(CLIError, match=r"--lr-milestones are fractions of the run in \(0, 1\), got 0\.0 0\.5"):
        _resolve("--lr-milestones", "0", "0.5")


def test_the_first_device_index_beyond_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_arg("cuda:1") == "cuda:1"
    with pytest.raises(CLIError, match=re.escape("--device cuda:2: this machine has 2 CUDA devices")):
        device_arg("cuda:2")


def test_reference_note_does_not_list_amp_which_it_cannot_take():
    argv = ["train", "--out", "x", "--reference"]
    a = build_parser().parse_args(argv)
    ((_, note),) = apply_reference_defaults(a, given_flags(build_parser(), argv))
    assert "--epochs 160" in note and "--amp" not in note, note


def test_show_value_prints_floats_short_unless_beside_one_alike_to_6_digits():
    assert show_value(1 / 3) == "0.333333"
    assert show_value(1 / 3, against=0.5) == "0.333333"
    assert show_value(8 / 255, against=0.0313725) == repr(8 / 255)
    assert show_value(None) == "not used" and show_value([2, 4]) == "2 4" and show_value(3) == "3"

"""dwq train's parser defaults, as a run given no flag but --out records them (resolved by
dwq.cli.train_flags.resolve_flags; no training): the values its --help states."""
from dwq.cli.common import given_flags
from dwq.cli.main import build_parser
from dwq.cli.train_flags import resolve_flags


def test_a_run_given_no_flag_records_the_documented_defaults():
    argv = ["train", "--out", "x", "--device", "cpu"]
    f, notes = resolve_flags(build_parser().parse_args(argv), given_flags(build_parser(), argv))
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
    argv = ["train", "--out", "x", "--device", "cpu", "--attack", "free"]
    f, _ = resolve_flags(build_parser().parse_args(argv), given_flags(build_parser(), argv))
    assert f["free_replays"] == 4 and f["attack_iters"] is None and f["alpha"] == 8 / 255

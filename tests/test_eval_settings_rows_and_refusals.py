"""dwq.cli.main._eval_settings called on a checkpoint's config made in the test: the settings dwq eval
records (report.json's "settings", the header), where each came from, and the flags it refuses because the
chosen attack and protocols would not use them (or accepts because they would)."""
import pytest

from dwq.cli.common import CLIError, given_flags
from dwq.cli.main import _eval_settings, build_parser

SET = [2, 4, 8]


def _ck(dataset="mnist5k", attack="pgd", epsilon=0.1, alpha=0.05, flags=None):
    return {"config": {"epsilon": epsilon, "attack": attack, "alpha": alpha,
                       "extra": {"network": "small_cnn", "dataset": dataset, "flags": flags or {}}}}


def _settings(argv, ck=None):
    argv = ["eval", "--checkpoint", "c.pt", "--out", "o"] + argv
    a = build_parser().parse_args(argv)
    a._given = given_flags(build_parser(), argv)
    rows = _eval_settings(a, ck or _ck(), SET, "cpu")
    return a, {name: (value, source) for name, value, source in rows}


def test_a_folder_dataset_reads_the_runs_data_dir_unless_given():
    ck = _ck("cifar10", flags={"data_dir": "/data/cifar"})
    a, rows = _settings([], ck)
    assert a.data_dir == "/data/cifar"
    assert rows["dataset"] == ("cifar10 from /data/cifar", "checkpoint: the run's --data-dir")
    a, rows = _settings(["--data-dir", "/elsewhere"], ck)
    assert a.data_dir == "/elsewhere"
    assert rows["dataset"] == ("cifar10 from /elsewhere", "checkpoint; --data-dir given")


@pytest.mark.parametrize("argv, flag", [
    (["--attack", "cw-l2", "--cw-tau", "0.1"], "--cw-tau"),  # τ is CW-L∞'s alone
    (["--bandits-queries", "200"], "--bandits-queries"),
    (["--attack", "fgsm", "--bandits-tile", "2"], "--bandits-tile"),
    (["--protocols", "paper", "--paper-batch", "10"], "--paper-batch"),  # the paper-sampled replica's alone
    (["--eot-iter", "5"], "--eot-iter"),
    (["--protocols", "autoattack-standard", "--autoattack-n", "4"], "--autoattack-n"),
    (["--attack", "fgsm", "--protocols", "paper", "--restarts", "3"], "--restarts"),
])
def test_flags_the_attack_and_protocols_would_not_use_are_refused(argv, flag):
    with pytest.raises(CLIError, match=f"^{flag} is for "):
        _settings(argv)


@pytest.mark.parametrize("argv", [
    ["--attack", "cw-l2", "--protocols", "adaptive", "--epsilon", "0.2"],  # ε bounds the adaptive EOT-PGD
    ["--attack", "fgsm", "--protocols", "adaptive", "--steps", "3", "--alpha", "0.01"],  # its EOT-PGD
    ["--attack", "cw-linf", "--protocols", "paper", "--cw-tau", "0.1", "--cw-steps", "5"],
    ["--attack", "bandits", "--protocols", "paper", "--bandits-queries", "200", "--bandits-tile", "2"],
    ["--protocols", "paper-sampled", "--paper-batch", "10"],
    ["--protocols", "autoattack-rand", "--eot-iter", "5", "--autoattack-steps", "3", "--autoattack-n", "4"],
])
def test_flags_the_attack_or_a_protocol_uses_are_taken(argv):
    _settings(argv)


def test_a_run_trained_with_fgsm_evaluates_with_a_quarter_of_epsilon():
    """The recorded step of an FGSM run is FGSM's (often 1.25 ε), not a PGD step."""
    a, rows = _settings([], _ck(attack="fgsm-rs", alpha=0.125))
    assert a.alpha == pytest.approx(0.025)
    assert rows["step"] == ("0.025", "default: ε/4 (the run trained with fgsm-rs, not PGD)")


def test_rows_name_only_the_settings_that_play_a_part():
    _, rows = _settings(["--attack", "fgsm", "--protocols", "paper", "transfer"])
    assert not {"step", "steps", "restarts", "cw-tau", "cw-steps", "bandits", "paper batch", "autoattack"} & set(rows)
    _, rows = _settings(["--attack", "cw-l2", "--protocols", "paper"])
    assert rows["cw-steps"] == ("100", "default") and "cw-tau" not in rows
    _, rows = _settings(["--attack", "cw-linf", "--protocols", "paper"])
    assert rows["cw-tau"] == ("0.05", "default") and rows["cw-steps"] == ("100", "default")
    _, rows = _settings([])  # pgd, paper adaptive transfer
    assert rows["step"] == ("0.05", "checkpoint: the training PGD step")
    assert rows["steps"] == ("20", "default") and rows["restarts"] == ("1", "default")


@pytest.mark.parametrize("flag, value", [("--bandits-queries", "200"), ("--bandits-tile", "2")])
def test_either_bandits_flag_given_makes_the_row_given(flag, value):
    _, rows = _settings(["--attack", "bandits", "--protocols", "paper", flag, value])
    assert rows["bandits"][1] == "given"
    _, rows = _settings(["--attack", "bandits", "--protocols", "paper"])
    assert rows["bandits"] == ("1000 queries, tile 4", "default")


def test_autoattack_row_says_how_many_images_it_attacks():
    _, rows = _settings(["--protocols", "autoattack-rand", "--autoattack-n", "4"])
    assert rows["autoattack"] == ("100 steps, 20 EOT samples, first 4 images", "given")
    _, rows = _settings(["--protocols", "autoattack-rand"])
    assert rows["autoattack"] == ("100 steps, 20 EOT samples", "default (the original's)")


def test_seed_batch_size_and_device_say_whether_they_were_given():
    _, rows = _settings(["--seed", "0", "--batch-size", "250", "--device", "cpu"])  # given, even at the default
    assert rows["seed"] == ("0", "given") and rows["batch size"] == ("250", "given")
    assert rows["device"] == ("cpu", "given")
    _, rows = _settings([])
    assert rows["seed"] == ("0", "default") and rows["batch size"] == ("250", "default")
    assert rows["device"] == ("cpu", "default")

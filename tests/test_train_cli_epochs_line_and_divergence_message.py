"""dwq train's console through main() on tiny mnist5k runs (dwq.cli.train.cmd_train): what a resume that raises
--epochs prints about the LR (the "(LR a -> b from here)" part only when the longer schedule changes the LR
at the step the run resumes at: a constant schedule's never does), and the one-line error of a quantized run
that diverges, which names the step and the 1-based epoch it stopped in."""
import re

from test_train_cli_config_and_resume_console import TINY

from dwq.cli.main import main


def test_a_constant_schedule_resumed_with_more_epochs_names_no_lr_change(tmp_path, capsys):
    """--lr-schedule constant, 1 epoch, then --resume --epochs 2: the epochs line ends at the new count."""
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--lr-schedule", "constant",
                 "--no-progress"] + TINY) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  --epochs")]
    assert lines == ["  --epochs   1 -> 2: the constant LR schedule now spans 2 epochs"], (
        f"a constant LR does not change with --epochs, yet the resume printed {lines}")


def test_a_diverged_quantized_run_names_its_step_and_1_based_epoch(tmp_path, capsys):
    """--lr 1e30 at 4 bits stops in the first epoch: the error says "(epoch 1)", not "(epoch 0)"."""
    argv = ["train", "--out", str(tmp_path / "q"), "--attack", "none", "--epochs", "1", "--lr", "1e30",
            "--num-bits", "4", "--no-progress"] + TINY + ["--batch-size", "8"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(r"^dwq train: error: the training diverged at step \d+ \(epoch 1\): ", err), err

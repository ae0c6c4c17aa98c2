"""Found by driving the commands: --lr 1e308 passed the flag check, the first SGD step raised a
traceback and the config.json it left made the same command refuse the folder; a full-precision run
whose loss went NaN wrote that epoch as best.pt, and dwq eval then reported its constant class as an
accuracy; a second Ctrl-C at the exit printed a traceback after the interrupt's message."""
import json
import os
import signal
import sys

import pytest
import torch

from dwq.cli.main import main
from dwq.models import small_cnn

TINY = ["--attack", "none", "--val-size", "16", "--val-pgd-steps", "0", "--train-subset", "32", "--batch-size", "16",
        "--width", "4", "--no-progress", "--workers", "0"]


@pytest.mark.parametrize("flag, value", [("--lr", "1e308"), ("--lr", "3.5e38"), ("--weight-decay", "1e39")])
def test_a_rate_beyond_float32_is_refused_before_anything_is_written(tmp_path, capsys, flag, value):
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(out), "--epochs", "1", flag, value] + TINY)
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert f"argument {flag}: must be at most 3.403e+38 (the largest float32), got {value}" in err, err


@pytest.mark.parametrize("error", [RuntimeError("a library's own failure"), TypeError("a bug of ours")])
def test_an_unexpected_error_before_the_first_epoch_leaves_no_run_behind(tmp_path, monkeypatch, error):
    from dwq.train.loop import Trainer

    def fail(self, stop_after_steps):
        assert os.path.exists(os.path.join(self.out_dir, "config.json"))  # (written before the first step)
        raise error

    monkeypatch.setattr(Trainer, "_fit", fail)
    out = tmp_path / "r"
    with pytest.raises(type(error), match=str(error)):
        main(["train", "--out", str(out), "--epochs", "1"] + TINY)
    assert not out.exists() or os.listdir(out) == []  # the same command starts afresh
    monkeypatch.undo()
    assert main(["train", "--out", str(out), "--epochs", "1"] + TINY) == 0


def test_a_diverged_full_precision_epoch_is_never_best(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--epochs", "1", "--lr", "1e38"] + TINY) == 0
    rec = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert rec[0]["train_loss"] == "nan" and "best" not in rec[0]  # (strict JSON spells NaN "nan")
    assert not (out / "best.pt").exists() and (out / "last.pt").exists()
    printed = capsys.readouterr().out
    assert "diverged: the loss is not finite" in printed and "next: dwq eval" not in printed


@pytest.mark.parametrize("command", ["eval", "deploy"])
def test_a_checkpoint_with_nan_weights_is_refused_in_one_line(tmp_path, capsys, monkeypatch, command):
    m = small_cnn(precisions=[4, None], width=4)
    with torch.no_grad():
        m.fc.weight[0, 0] = float("nan")
    ck = {"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k"}}}
    monkeypatch.setattr("dwq.train.load_trained_model", lambda p, device="cpu": (m, ck))
    (tmp_path / "c.pt").write_bytes(b"stand-in")
    capsys.readouterr()
    assert main([command, "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == (f"dwq {command}: error: --checkpoint {tmp_path / 'c.pt'}: 1 parameter tensor(s) hold NaN or inf, "
                   f"first fc.weight (the run diverged); give a checkpoint of an epoch before it\n")
    assert not (tmp_path / "o").exists()


def test_the_dwq_program_ignores_ctrl_c_once_its_command_ended(tmp_path, monkeypatch, capsys):
    before = signal.getsignal(signal.SIGINT)
    try:
        argv = ["deploy", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.safetensors")]
        assert main(argv) == 2  # a caller in Python: its Ctrl-C keeps working
        assert signal.getsignal(signal.SIGINT) is before
        monkeypatch.setattr(sys, "argv", ["dwq"] + argv)
        assert main() == 2  # the program: what remains is the exit's clean-up
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)

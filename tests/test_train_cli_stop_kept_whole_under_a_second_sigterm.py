"""A training run that is already stopping (its own error, a first SIGTERM) finishes its clean-up and says
why it stopped when a SIGTERM arrives meanwhile. In a clean-clone CI run, torchrun's agent, having seen
rank 1 fail, sent rank 0 SIGTERM while rank 0 handled the lost peer: rank 0 printed only "dwq train:
terminated (SIGTERM)", not the reason, and its removal of the run's files could be cut short; once the
command had returned, the default handler was back before main() printed its outcome."""
import os
import signal
import time

import pytest

from dwq.cli import common
from dwq.cli.common import CLIError
from dwq.cli.main import main
from dwq.data import DatasetError
from dwq.train import Trainer, run_folder
from dwq.train import dist as train_dist

TINY = ["--attack", "none", "--val-size", "16", "--train-subset", "32", "--batch-size", "32", "--width", "8",
        "--no-progress", "--workers", "0", "--epochs", "1"]


def _sigterm_self():
    # (without dwq's handler installed SIGTERM would end pytest itself)
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "no SIGTERM handler installed"
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # (a handler that raises does so here)


@pytest.fixture
def sigterm_in_clean_up(monkeypatch):
    """A SIGTERM sent while the run removes its files and again while it leaves its process group."""
    remove = run_folder.remove_run_files

    def removing(out):
        _sigterm_self()
        return remove(out)

    def leaving(*args, **kwargs):
        _sigterm_self()

    monkeypatch.setattr(run_folder, "remove_run_files", removing)
    monkeypatch.setattr(train_dist, "cleanup", leaving)


def test_a_run_stopped_by_its_own_error_says_why_and_is_cleaned_despite_a_sigterm(
        tmp_path, capsys, monkeypatch, sigterm_in_clean_up):
    def unreadable(self, *args, **kwargs):
        raise DatasetError("mnist5k: an unreadable image (injected)")

    monkeypatch.setattr(Trainer, "_fit", unreadable)
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 2
    err = capsys.readouterr().err
    assert err == ("dwq train: error: mnist5k: an unreadable image (injected); no epoch completed, so there is "
                   "nothing to resume (once fixed, the same command starts afresh)\n"), err
    assert list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and common._stopping is False


def test_a_run_stopped_by_a_sigterm_is_cleaned_despite_a_second_one_and_the_next_command_is_stoppable(
        tmp_path, capsys, monkeypatch, sigterm_in_clean_up):
    def terminated(self, *args, **kwargs):
        _sigterm_self()

    monkeypatch.setattr(Trainer, "_fit", terminated)
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 143
    err = capsys.readouterr().err
    assert err == (f"dwq train: terminated (SIGTERM) before the first epoch completed; nothing to resume, and what "
                   f"the run wrote in {out} was removed (the same command starts afresh)\n"), err
    assert list(out.iterdir()) == []
    # the SIGTERMs ignored while that run stopped are not ignored in the next command's run
    monkeypatch.setattr(train_dist, "cleanup", lambda *args, **kwargs: None)
    assert main(["train", "--out", str(out)] + TINY) == 143
    assert "terminated (SIGTERM) before the first epoch completed" in capsys.readouterr().err


class _SaidUnderSigterm(CLIError):
    """A user error whose message is built while a SIGTERM arrives: main() is printing it."""

    def __str__(self):
        _sigterm_self()
        return "--data-dir gone (injected)"


def test_the_error_is_said_when_a_sigterm_comes_while_main_prints_it(tmp_path, capsys, monkeypatch):
    """The SIGTERM handler was put back to the default one before main() printed the outcome: a SIGTERM in
    between (torchrun's agent, once another process had failed) ended the process without a word."""
    def fails(self, *args, **kwargs):
        raise _SaidUnderSigterm()

    monkeypatch.setattr(Trainer, "_fit", fails)
    assert main(["train", "--out", str(tmp_path / "r")] + TINY) == 2
    err = capsys.readouterr().err
    assert err == "dwq train: error: --data-dir gone (injected)\n", err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and common._stopping is False

"""dwq train through main() on tiny mnist5k runs: the flags that reach the training config (config.json's
own fields, beside extra.flags), what a resume prints about --epochs, a --reference run that resumes,
the --workers note only for a given count, a single process's RuntimeError or a foreign OSError left as
it is, and an ImageNet resume refused for other class folders."""
import json

import pytest
from test_cli import _rewrite_recorded

from dwq.cli.main import main

TINY = ["--val-size", "16", "--val-pgd-steps", "0", "--train-subset", "32", "--batch-size", "32", "--width", "8",
        "--workers", "0"]


def _config(out):
    return json.load(open(out / "config.json"))


def _set_recorded_epochs(out, n):
    """last.pt and config.json of the run as if it had been started with --epochs n."""
    def started_with(config):
        config["extra"]["flags"]["epochs"] = config["epochs"] = n

    _rewrite_recorded(out, started_with)


def test_free_replays_milestones_and_progress_reach_the_training_config(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "free", "--free-replays", "2", "--lr-milestones", "0.3",
                 "0.6", "--epochs", "1", "--no-progress"] + TINY) == 0
    cfg = _config(out)
    assert cfg["free_replays"] == 2 and cfg["extra"]["flags"]["free_replays"] == 2
    assert cfg["lr_milestones"] == [0.3, 0.6] and cfg["progress"] is False
    out = tmp_path / "p"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1"] + TINY) == 0
    assert _config(out)["progress"] is True  # (progress bars unless --no-progress)


def test_a_resume_prints_the_epochs_line_only_for_a_new_count_with_the_lr_it_changes(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress"] + TINY
    assert main(argv) == 0
    capsys.readouterr()
    # multistep at 0.5 and 0.75: the end of a 1-epoch run is at LR 0.001, a quarter of a 4-epoch one at 0.1
    assert main(["train", "--resume", "--out", str(out), "--epochs", "4"]) == 0
    console = capsys.readouterr().out
    assert "--epochs   1 -> 4: the multistep LR schedule now spans 4 epochs (LR 0.001 -> 0.1 from here)" in console
    _set_recorded_epochs(out, 6)  # as if started with --epochs 6 and stopped after epoch 4
    assert main(["train", "--resume", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    assert "resumed at epoch 4" in console and "--epochs" not in console, console
    assert _config(out)["extra"]["history"][-1]["changed"] == {}


def test_a_resume_records_the_epoch_it_resumed_at(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress"] + TINY) == 0
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
    history = _config(out)["extra"]["history"]
    assert [h.get("resumed_at_epoch") for h in history] == [None, 1]
    assert history[1]["command"] == f"dwq train --resume --out {out} --epochs 2"


def test_a_reference_run_resumes_with_its_own_flags_not_the_reference_defaults(tmp_path, capsys, monkeypatch):
    """--reference's CIFAR defaults fill the flags a new run does not give; on --resume the run's recorded
    flags stand (a resume does not give them again)."""
    import dwq.train.loop as loop

    # (the reference's test-set PGD-20 over all 1000 mnist5k test images: a fixed figure instead)
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *args, **kwargs: (0.5, 0.25))
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--reference", "--attack", "none", "--epochs", "1", "--no-progress",
                 "--train-subset", "32", "--batch-size", "32", "--width", "8", "--workers", "0",
                 "--precisions", "fp"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0, capsys.readouterr().err
    flags = _config(out)["extra"]["flags"]
    assert flags["batch_size"] == 32 and flags["epochs"] == 2 and flags["reference"]


def test_the_workers_note_is_only_for_a_count_given_on_mnist5k(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress", "--val-size", "0",
                 "--train-subset", "32", "--batch-size", "32", "--width", "8"]) == 0
    assert "has no effect on mnist5k" not in capsys.readouterr().out


def test_a_single_process_runtime_error_naming_a_reset_connection_is_not_a_lost_peer(tmp_path, capsys,
                                                                                     monkeypatch):
    """Only a DDP run (more than one process) has peers to lose: one process's own RuntimeError is
    reported as it is, not as "another process of this run stopped"."""
    from dwq.train import Trainer

    def reset(self, *args, **kwargs):
        raise RuntimeError("reading the data: Connection reset by peer")

    monkeypatch.setattr(Trainer, "_fit", reset)
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="^reading the data: Connection reset by peer$"):
        main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress"] + TINY)


def test_an_os_error_that_is_no_failed_write_of_the_run_is_raised_as_it_is(tmp_path, capsys, monkeypatch):
    """A full disk or a vanished folder is one line saying where the run stands; another OSError (no file
    named, not a disk's errno) is a bug to show in full, not "None; no epoch completed"."""
    import errno

    from dwq.train import Trainer

    def bad_fd(self, *args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(Trainer, "_fit", bad_fd)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["train", "--out", str(tmp_path / "r"), "--attack", "none", "--epochs", "1", "--no-progress"] + TINY)


def test_a_resume_refuses_an_imagenet_folder_with_other_class_folders(tmp_path, capsys):
    """--data-dir may point a resume at another copy of the run's data: one as large but with other class
    folders would give label 0 to another class than in training."""
    import numpy as np
    from PIL import Image

    from conftest import torchvision_or_skip

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    for data, classes in (("data", ("n01", "n02")), ("other", ("n01", "n03"))):
        for split in ("train", "val"):
            for c in classes:
                (tmp_path / data / split / c).mkdir(parents=True)
                Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / data / split / c / "0.JPEG")
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--dataset", "imagenet", "--data-dir", str(tmp_path / "data"),
                 "--network", "PreActResNet18", "--attack", "none", "--val-size", "0", "--train-subset", "1",
                 "--batch-size", "1", "--epochs", "1", "--workers", "0", "--no-progress"]) == 0
    assert _config(out)["extra"]["classes"] == ["n01", "n02"]
    capsys.readouterr()
    before = (out / "last.pt").read_bytes()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--data-dir", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "--resume: " in err and "has other class folders than the run's" in err, err
    assert (out / "last.pt").read_bytes() == before

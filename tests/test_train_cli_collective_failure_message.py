"""dwq train's one-line error when a collective operation fails in a run of several processes
(dwq.cli.train.cmd_train), on rank 0 of a stand-in two-process run (the process group, DDP and the training
itself replaced in the test): a lost peer or this rank's own backend failure is said, the detail in brackets
is the error's first sentence without gloo's "[file:line]" prefix, and the run's files go (no epoch completed)."""
import pytest
import torch

import dwq.train.dist
from dwq.cli.main import main
from dwq.train import Trainer
from test_train_cli_config_and_resume_console import TINY


@pytest.mark.parametrize("exc, said", [
    (RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer "
                  "[127.0.0.1]:29500. Retry later"),
     "another process of this run stopped, so this one lost its peers (Connection closed by peer [127.0.0.1]:29500)"),
    (torch.distributed.DistBackendError("NCCL error in: ProcessGroupNCCL.cpp:3356, unhandled cuda error. Last "
                                        "error: an illegal memory access"),
     "a collective operation between the processes of this run failed (NCCL error in: ProcessGroupNCCL.cpp:3356, "
     "unhandled cuda error)"),
])
def test_a_failed_collective_of_a_two_process_run_is_one_line(tmp_path, capsys, monkeypatch, exc, said):
    """The error names what failed with the first sentence of the backend's message, prefix stripped."""
    def fit(self, *args, **kwargs):
        raise exc

    monkeypatch.setattr(dwq.train.dist, "setup", lambda device=None: (0, 2, torch.device("cpu")))
    monkeypatch.setattr(dwq.train.dist, "cleanup", lambda synchronize=False: None)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda model, **kwargs: model)
    monkeypatch.setattr(Trainer, "fit", fit)
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress"] + TINY) == 2
    err = capsys.readouterr().err
    assert err == (f"dwq train: error: {said}; no epoch completed, so there is nothing to resume (once fixed, the "
                   f"same command starts afresh)\n"), err
    assert not out.exists() or list(out.iterdir()) == [], "the run's files were left behind"

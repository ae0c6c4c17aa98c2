"""dwq.cli.train's own helpers called directly: the continuation command a stopped resume prints (its
switches typed by value, flags not given left out), which RuntimeError is a lost DDP peer, which
ValueError says the run diverged, which folder is resumable (and what is removed when it is not), and
the hint a non-empty --out gets."""
import os

import pytest
import torch

from dwq.cli.train import _diverged, _collective_failure, _resumable, _resume_command, _resume_hint


def test_the_continuation_command_types_switches_by_their_value_and_leaves_out_flags_not_given():
    changed = {"epochs": [1, 3], "compile": [True, False], "deterministic": [False, True],
               "no_progress": [True, False], "cuda_graphs": [True, False], "threads": [1, 2]}
    given = {"epochs", "compile", "deterministic", "no_progress", "cuda_graphs"}  # (threads: not given)
    assert _resume_command("r", changed, given) == (
        "dwq train --resume --out r --epochs 3 --no-compile --deterministic --progress --no-cuda-graphs")
    assert _resume_command("r", {"no_progress": [False, True], "compile": [False, True]},
                           {"no_progress", "compile"}) == "dwq train --resume --out r --no-progress --compile"
    assert _resume_command("my run", {"device": ["cpu", "cuda"]}, set()) == "dwq train --resume --out 'my run'"


@pytest.mark.parametrize("msg, lost", [
    ("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1234", "lost"),
    ("[../gloo/transport/tcp/pair.cc:598] Connection reset by peer", "lost"),
    ("CUDA error: out of memory", None),
    ("Connection refused", None)])
def test_a_lost_peer_is_recognised_by_gloo_s_message(msg, lost):
    assert _collective_failure(RuntimeError(msg)) == lost


@pytest.mark.parametrize("msg, how", [
    ("NCCL error in: ProcessGroupNCCL.cpp:3356, remote process exited or there was a network error, NCCL "
     "version 2.27.5", "lost"),
    ("NCCL error in: ProcessGroupNCCL.cpp:1191, unhandled system error (run with NCCL_DEBUG=INFO for details), "
     "NCCL version 2.27.5\nncclSystemError: System call (e.g. socket, malloc) or external library call failed or "
     "device error. It can be also caused by unexpected exit of a remote peer.", "lost"),
    ("NCCL communicator was aborted on rank 0.", "lost"),
    # this rank's own failure inside NCCL: not said to be another process's stop
    ("NCCL error in: ProcessGroupNCCL.cpp:3356, unhandled cuda error (run with NCCL_DEBUG=INFO for details)",
     "failed")])
def test_nccl_errors_say_a_lost_peer_only_where_nccl_says_so(msg, how):
    assert _collective_failure(torch.distributed.DistBackendError(msg)) == how


def test_a_diverged_step_names_the_first_bad_parameter_or_the_error_s_own_words():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    assert _diverged(model, ValueError("input holds NaN")) == "input holds NaN"
    assert _diverged(model, ValueError("the scale is inf")) == "the scale is inf"
    assert _diverged(model, ValueError("a range that is not finite")) == "a range that is not finite"
    assert _diverged(model, ValueError("shapes (2, 3) and (4,) do not match")) is None
    assert _diverged(model, ValueError("an informal name")) is None  # (whole words only: not "inf"ormal)
    with torch.no_grad():
        model[1].bias.fill_(float("nan"))
        model[1].weight[0, 0] = float("inf")
    assert _diverged(model, ValueError("shapes do not match")) == \
        "2 parameter tensor(s) hold NaN or inf, first 1.weight"


def test_only_a_folder_with_last_pt_is_resumable_and_only_rank_0_removes_the_rest(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("{}\n")
    assert not _resumable(str(run), say=False)  # another rank: leaves the folder to rank 0
    assert sorted(os.listdir(run)) == ["config.json", "metrics.jsonl"]
    assert not _resumable(str(run), say=True)
    assert os.listdir(run) == []
    (run / "config.json").write_text("{}")
    (run / "last.pt").write_bytes(b"")
    assert _resumable(str(run), say=True)
    assert sorted(os.listdir(run)) == ["config.json", "last.pt"]  # nothing removed


def test_the_hint_for_a_non_empty_out_offers_resume_only_where_last_pt_is(tmp_path):
    assert _resume_hint(str(tmp_path)) == ""
    (tmp_path / "best.pt").write_bytes(b"")
    assert _resume_hint(str(tmp_path)) == ""
    (tmp_path / "config.json").write_text("{}")
    assert "stopped before its first epoch completed, which cannot resume" in _resume_hint(str(tmp_path))
    (tmp_path / "last.pt").write_bytes(b"")
    assert _resume_hint(str(tmp_path)) == " (or --resume to continue the training run there)"

"""The continuation command a stopped dwq train prints (dwq.cli.train._resume_command and _launched): a flag
given on the resume that resolved to None (it plays no part in the run) is left out rather than typed as
"None", and every run of more than one process (two included) is told to go on under torchrun."""
import shlex

import pytest

from dwq.cli.train import _launched, _resume_command

BASE = "dwq train --resume --out r"


@pytest.mark.parametrize("changed, given, want", [
    ({"workers": [2, None]}, {"workers"}, BASE),  # given, but no part in the run: nothing to carry over
    ({"workers": [2, None], "epochs": [1, 3]}, {"workers", "epochs"}, BASE + " --epochs 3"),
    ({"threads": [1, None], "val_every": [1, 2]}, {"threads", "val_every"}, BASE + " --val-every 2"),
])
def test_a_given_flag_resolved_to_none_is_left_out(changed, given, want):
    """Only changes with a value are typed into the command; the result parses back as shell words."""
    got = _resume_command("r", changed, given)
    assert got == want and "None" not in shlex.split(got), got


@pytest.mark.parametrize("world", [2, 3, 8])
def test_every_run_of_several_processes_continues_under_torchrun(world):
    """world >= 2: the command says to launch it with torchrun with that many processes."""
    assert _launched(BASE, world) == f"{BASE}, launched by torchrun with {world} processes as this run was"

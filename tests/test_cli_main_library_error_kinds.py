"""Which exceptions raised by a command dwq.cli.main.main turns into one line with exit status 2: a missing
file (FileNotFoundError), a dataset or checkpoint error and any ValueError, unless DWQ_TRACEBACK=1; a
RuntimeError or TypeError (a bug, not the user's input) keeps its traceback."""
import pytest

from dwq.cli import deploy
from dwq.cli.main import main
from dwq.data import DatasetError
from dwq.train import CheckpointError

ARGV = ["bench", "--model", "m.safetensors"]


def _raising(monkeypatch, exc):
    def fail(a):
        raise exc

    monkeypatch.setattr(deploy, "COMMANDS", dict(deploy.COMMANDS, bench=fail))


@pytest.mark.parametrize("exc, line", [
    (FileNotFoundError(2, "No such file or directory", "x.pt"), "[Errno 2] No such file or directory: 'x.pt'"),
    (DatasetError("the folder holds no images"), "the folder holds no images"),
    (CheckpointError("x.pt is no checkpoint"), "x.pt is no checkpoint"),
    (ValueError("bad value\nsecond line"), "bad value"),
])
def test_user_facing_library_errors_are_one_line_with_status_2(monkeypatch, capsys, exc, line):
    """Each kind is printed as "dwq bench: error: <its first line>" and main returns 2; DWQ_TRACEBACK=1 raises."""
    _raising(monkeypatch, exc)
    monkeypatch.delenv("DWQ_TRACEBACK", raising=False)
    assert main(ARGV) == 2, f"{type(exc).__name__} did not end in exit status 2"
    assert capsys.readouterr().err == f"dwq bench: error: {line}\n"
    monkeypatch.setenv("DWQ_TRACEBACK", "1")
    with pytest.raises(type(exc)):
        main(ARGV)


@pytest.mark.parametrize("exc", [RuntimeError("an internal failure"), TypeError("an internal mistake")])
def test_runtime_and_type_errors_keep_their_traceback(monkeypatch, capsys, exc):
    """A RuntimeError or TypeError is raised out of main (its traceback shown), not reduced to one line."""
    _raising(monkeypatch, exc)
    monkeypatch.delenv("DWQ_TRACEBACK", raising=False)
    with pytest.raises(type(exc)):
        main(ARGV)
    assert "error:" not in capsys.readouterr().err

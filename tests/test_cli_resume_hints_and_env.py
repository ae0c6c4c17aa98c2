"""dwq.cli.main's helpers called directly on folders made in the test: which eval or demo folder is
resumable (and so named in the interrupt and broken-pipe messages), the eval --resume folder check, the
exit statuses of Ctrl-C and SIGTERM, and every DWQ_CPU_ISA of this CPU accepted at start."""
import argparse
import os

import pytest

from dwq.cli import main as cli_main
from dwq.cli.common import CLIError, Terminated, interrupt_outcome
from dwq.cli.main import _check_eval_resumable, main, resumable_run

HINT = "; the same command with --resume continues it"


def _ns(command, out):
    return argparse.Namespace(command=command, out=None if out is None else str(out))


def test_which_folders_a_resume_continues(tmp_path):
    ev, demo, done, plain = (tmp_path / n for n in ("e", "d", "done", "plain"))
    (ev / "stages").mkdir(parents=True)
    demo.mkdir()
    (demo / "demo_run.json").write_text("{}")
    (done / "stages").mkdir(parents=True)
    (done / "demo_run.json").write_text("{}")
    (done / "report.json").write_text("{}")
    plain.mkdir()
    (plain / "fp").mkdir()
    for command in ("eval", "demo"):  # (either marker: the command is not asked which one it wrote)
        assert resumable_run(_ns(command, ev)) and resumable_run(_ns(command, demo))
        assert not resumable_run(_ns(command, done)) and not resumable_run(_ns(command, plain))
        assert not resumable_run(_ns(command, tmp_path / "missing")) and not resumable_run(_ns(command, None))
    assert not resumable_run(_ns("train", ev)) and not resumable_run(_ns("bench", demo))


def test_an_eval_resume_takes_an_empty_folder_or_one_with_stages_only(tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    _check_eval_resumable(str(out), str(out / "stages"))  # killed before its first stage
    (out / "header.txt").write_text("")
    with pytest.raises(CLIError, match=rf"^--resume: {out} is not an interrupted dwq eval \(no stages folder\)$"):
        _check_eval_resumable(str(out), str(out / "stages"))
    (out / "stages").mkdir()
    _check_eval_resumable(str(out), str(out / "stages"))
    (out / "report.json").write_text("{}")
    with pytest.raises(CLIError,
                       match=r"holds a finished evaluation \(report.json\); nothing to resume \(removed stages"):
        _check_eval_resumable(str(out), str(out / "stages"))
    assert sorted(os.listdir(out)) == ["header.txt", "report.json"]


def test_ctrl_c_and_sigterm_have_their_own_exit_status():
    assert interrupt_outcome(KeyboardInterrupt()) == ("interrupted", 130)
    assert interrupt_outcome(Terminated()) == ("terminated (SIGTERM)", 143)


@pytest.mark.parametrize("exc, status, how", [(KeyboardInterrupt, 130, "interrupted"),
                                              (Terminated, 143, "terminated (SIGTERM)")])
def test_an_interrupted_eval_or_demo_says_how_to_continue_only_when_its_folder_resumes(
        tmp_path, capsys, monkeypatch, exc, status, how):
    import dwq.cli.demo

    def stopped(a):
        raise exc

    monkeypatch.setenv("DWQ_MALLOC", "default")
    monkeypatch.setattr(cli_main, "cmd_eval", stopped)
    monkeypatch.setattr(dwq.cli.demo, "run_demo", stopped)
    ev, demo = tmp_path / "e", tmp_path / "d"
    (ev / "stages").mkdir(parents=True)
    demo.mkdir()
    (demo / "demo_run.json").write_text("{}")
    assert main(["eval", "--checkpoint", "c.pt", "--out", str(ev)]) == status
    assert capsys.readouterr().err == f"dwq eval: {how}{HINT}\n"
    assert main(["demo", "--out", str(demo)]) == status
    assert capsys.readouterr().err == f"dwq demo: {how}{HINT}\n"
    (demo / "report.json").write_text("{}")  # finished: nothing to continue
    assert main(["demo", "--out", str(demo)]) == status
    assert capsys.readouterr().err == f"dwq demo: {how}\n"
    assert main(["eval", "--checkpoint", "c.pt", "--out", str(tmp_path / "new")]) == status
    assert capsys.readouterr().err == f"dwq eval: {how}\n"


def test_a_closed_stdout_names_the_resume_only_of_a_resumable_folder(tmp_path, capsys, monkeypatch):
    def closed(a):
        raise BrokenPipeError

    monkeypatch.setenv("DWQ_MALLOC", "default")
    monkeypatch.setattr(cli_main, "cmd_eval", closed)
    monkeypatch.setattr(cli_main, "stdout_to_devnull", lambda: None)  # (pytest's capture owns stdout)
    ev = tmp_path / "e"
    (ev / "stages").mkdir(parents=True)
    assert main(["eval", "--checkpoint", "c.pt", "--out", str(ev)]) == 1
    assert capsys.readouterr().err == f"dwq eval: stdout was closed{HINT}\n"
    assert main(["eval", "--checkpoint", "c.pt", "--out", str(tmp_path / "new")]) == 1
    assert capsys.readouterr().err == ""


def test_every_kernel_path_of_this_cpu_is_accepted_as_dwq_cpu_isa(monkeypatch, capsys):
    from dwq.ops import HAS_EXT, supported_cpu_isas
    if not HAS_EXT:
        pytest.skip("dwq._C (the compiled extension) is not importable: no CPU kernel paths to choose")
    monkeypatch.setenv("DWQ_MALLOC", "default")
    for isa in supported_cpu_isas():
        monkeypatch.setenv("DWQ_CPU_ISA", isa)
        assert main(["bench", "--model", "/nonexistent/m.safetensors"]) == 2  # (a usage error after the check)
        err = capsys.readouterr().err
        assert "DWQ_CPU_ISA" not in err and "m.safetensors" in err, (isa, err)

"""dwq train --reference's header (dwq.cli.train.cmd_train): the note naming the reference defaults it took for
the flags not given is printed with the run's other settings when the run starts, and not on its --resume
(whose flags are the run's own, recorded)."""
import re

import dwq.train.loop as loop
from dwq.cli.main import main

NOTE = re.compile(r"^ +reference +the reference's semantics; its defaults for flags not given: .*--val-size 0",
                  re.MULTILINE)


def test_a_reference_run_prints_the_defaults_it_took_once(tmp_path, capsys, monkeypatch):
    """The header of the run's start holds the note (with --val-size 0 among the defaults); the resume's not."""
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *args, **kwargs: (0.5, 0.25))  # (test-set PGD-20)
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--reference", "--attack", "none", "--epochs", "1", "--no-progress",
                 "--train-subset", "32", "--batch-size", "32", "--width", "8", "--workers", "0",
                 "--precisions", "fp"]) == 0
    console = capsys.readouterr().out
    assert NOTE.search(console), f"no reference-defaults note in the header:\n{console}"
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
    console = capsys.readouterr().out
    assert "its defaults for flags not given" not in console, console

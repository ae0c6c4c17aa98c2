"""What dwq train prints (dwq.cli.train_console, found by mutation): the epoch line's numbers and
markers, and the summary's best epoch and next command, checked on records made in the test."""
import json
import math
import types

import pytest

from dwq.cli.train_console import epoch_line, print_summary


def _rec(**kw):
    rec = {"epoch": 3, "train_loss": 0.123456, "train_acc": 0.5, "val_clean": 0.875, "val_pgd": 0.25, "lr": 0.05,
           "precision_counts": {"2": 3, "4": 0, "8": 1}, "seconds": 12.34, "best": False}
    rec.update(kw)
    return rec


def test_the_epoch_line_says_each_number_in_its_format():
    line = epoch_line(_rec(), 10, 1)
    assert line == ("epoch  3/10  loss 0.1235  train acc  50.0%  val clean  87.5% PGD-1  25.0%  lr 0.05"
                    "  precisions 2:3 8:1  12.3 s"), line


def test_a_pgd_accuracy_of_zero_is_shown():
    """0.0 is a common PGD accuracy early in a run; it is a value, not a missing one."""
    assert "val clean  87.5% PGD-10   0.0%  lr" in epoch_line(_rec(val_pgd=0.0), 10, 10)
    assert "PGD" not in epoch_line(_rec(val_pgd=None), 10, 10)


def test_best_marker_and_divergence_note():
    assert epoch_line(_rec(best=True), 3, 1).endswith("12.3 s  -> best.pt")
    assert "best.pt" not in epoch_line(_rec(best=False), 3, 1)
    assert "best.pt" not in epoch_line({k: v for k, v in _rec().items() if k != "best"}, 3, 1)
    note = "(diverged: the loss is not finite; a lower --lr may help)"
    for loss in (math.inf, -math.inf, math.nan):
        assert epoch_line(_rec(train_loss=loss), 3, 1).endswith(note)
    assert "diverged" not in epoch_line(_rec(train_loss=1e30), 3, 1)


def _run_folder(tmp_path, records):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "last.pt", "best.pt"):
        (out / name).write_text("")
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def test_the_summary_names_the_last_best_epoch_and_a_pgd_accuracy_of_zero(tmp_path, capsys):
    out = _run_folder(tmp_path, [{"epoch": 1, "best": True, "val_clean": 0.5, "val_pgd": 0.3},
                                 {"epoch": 2, "best": True, "val_clean": 0.6, "val_pgd": 0.0},
                                 {"epoch": 3, "best": False, "val_clean": 0.7, "val_pgd": 0.0}])
    print_summary(str(out), types.SimpleNamespace(epoch=3), 61.4, {"epochs": 3, "val_pgd_steps": 1})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "done: epoch 3/3 in 61 s; best.pt is epoch 2 (validation PGD-1 0.0%)", lines
    assert lines[1] == f"wrote {out}/: config.json, last.pt, best.pt, metrics.jsonl"


@pytest.mark.parametrize("folder", [".", ".."])
def test_the_next_command_names_a_run_folder_given_as_dot_or_dot_dot(tmp_path, capsys, monkeypatch, folder):
    run = _run_folder(tmp_path, [{"epoch": 1, "best": True, "val_clean": 0.5}])
    (run / "sub").mkdir()
    monkeypatch.chdir(run if folder == "." else run / "sub")
    print_summary(folder, types.SimpleNamespace(epoch=1), 1.0, {"epochs": 1, "val_pgd_steps": 0})
    out = capsys.readouterr().out
    assert "best.pt is epoch 1 (validation clean 50.0%)" in out
    assert f"next: dwq eval --checkpoint {folder}/best.pt --out {run}-eval" in out, out

"""What dwq train prints (dwq.cli.train_console), the parts its other tests leave open: the header's training
line for each attack (its name, ε and step, the step being --alpha) and each switch (amp, torch.compile, CUDA
graphs, deterministic) in its place, the schedule's momentum and weight decay, the reference line; the summary's
list of the files written (best_test_reference.pt among them) and no next command without best.pt."""
import types

import pytest

from dwq.cli.train_console import print_header, print_summary
from test_train_console_header import F, _header


@pytest.mark.parametrize("attack, extra, said", [
    ("none", {}, "natural training (no attack)"),
    ("fgsm", {"alpha": 10 / 255}, "FGSM ε 0.03137 step 0.03922"),
    ("fgsm-rs", {"alpha": 1.25 * 8 / 255}, "FGSM-RS ε 0.03137 step 0.03922"),
    ("pgd", {"attack_iters": 3, "epsilon": 0.3, "alpha": 0.075}, "PGD-3 ε 0.3 step 0.075"),
    ("free", {"free_replays": 2, "epsilon": 0.3, "alpha": 0.3}, "free (2 replays) ε 0.3 step 0.3"),
])
def test_the_training_line_names_the_attack_its_radius_and_its_step(capsys, attack, extra, said):
    """Each attack by its name; ε then --alpha (not ε twice); --attack none says no ε or step at all."""
    lines = _header(capsys, {**F, "attack": attack, **extra}, None, 100, 10, [], "r")
    assert lines[3] == f"  training   RPT: a precision drawn from the set at every iteration; {said}", lines[3]


@pytest.mark.parametrize("switches, said", [
    ({}, ""),
    ({"amp": True}, "; amp"),
    ({"compile": True}, "; torch.compile"),
    ({"cuda_graphs": True}, "; CUDA graphs"),
    ({"deterministic": True}, "; deterministic"),
    ({"amp": True, "compile": True, "cuda_graphs": True, "deterministic": True},
     "; amp; torch.compile; CUDA graphs; deterministic"),
])
def test_the_training_line_ends_with_each_switch_that_is_on_and_no_other(capsys, switches, said):
    """Each switch is said by its own flag's value, in this order, and none is said when it is off."""
    lines = _header(capsys, {**F, **switches}, None, 100, 10, [], "r")
    assert lines[3].endswith(f"PGD-7 ε 0.03137 step 0.007843{said}"), lines[3]


def test_the_schedule_line_gives_momentum_and_weight_decay_each_its_own_value(capsys):
    lines = _header(capsys, {**F, "momentum": 0.85, "weight_decay": 1e-4, "lr": 0.02}, None, 100, 10, [], "r")
    assert lines[4] == ("  schedule   10 epochs, batch 128, lr 0.02 multistep (×0.1 at 0.5 0.75 of the run), momentum "
                        "0.85, weight decay 0.0001"), lines[4]


def test_a_reference_run_s_header_says_what_the_reference_changes(capsys):
    """The reference line stands after the training line, and only for a --reference run."""
    lines = _header(capsys, {**F, "reference": True}, None, 100, 10, [], "r")
    assert lines[4] == ("  reference  its quantizer (float zero point, shared range) and normalization, zeroed "
                        "gradients for undrawn BN branches; best_test_reference.pt by its test-set rule "
                        "(not best.pt)"), lines
    assert not any(line.startswith("  reference") for line in _header(capsys, F, None, 100, 10, [], "r"))


def _folder(tmp_path, name, files, records=()):
    out = tmp_path / name
    out.mkdir()
    for n in files:
        (out / n).write_text("")
    (out / "metrics.jsonl").write_text("".join(f"{r}\n" for r in records))
    return out


def test_a_reference_run_s_summary_lists_its_files_and_offers_no_next_command(tmp_path, capsys):
    """Without best.pt: the files in their order (best_test_reference.pt included), no best epoch, no next line."""
    out = _folder(tmp_path, "ref", ["best_test_reference.pt", "last.pt", "config.json"],
                  ['{"epoch": 1, "best": true, "val_clean": 0.5}'])
    print_summary(str(out), types.SimpleNamespace(epoch=2), 3.0, {"epochs": 2, "val_pgd_steps": 0})
    assert capsys.readouterr().out.splitlines() == [
        "done: epoch 2/2 in 3 s",
        f"wrote {out}/: config.json, last.pt, best_test_reference.pt, metrics.jsonl"]


def test_a_header_without_validation_has_no_validation_line(capsys):
    """--val-size 0: the data line says so, and no validation line follows the schedule."""
    print_header({**F, "val_pgd_steps": None, "val_every": None}, None, 100, 0, [("default", "x")], "r")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(", no validation (--val-size 0: no best.pt)"), lines[1]
    assert lines[5:] == ["  default    x"], lines

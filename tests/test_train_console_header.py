"""What dwq train prints at its start and in its epoch lines and summary (dwq.cli.train_console, found by a
second mutation audit): the header's lines for a new and a resumed run, word for word, on resolved flags made
in the test; the learning rate's four significant digits; the next command of a folder given with a slash."""
import types

from dwq._version import __version__
from dwq.cli.train_console import epoch_line, print_header, print_summary

F = {"device": "cpu", "seed": 0, "dataset": "cifar10", "data_dir": None, "train_subset": None,
     "network": "preact_resnet18", "width": None, "precisions": ["2", "4", "8"], "switchable_bn": True,
     "random_precision_training": True, "num_bits": None, "attack": "pgd", "attack_iters": 7, "free_replays": None,
     "epsilon": 8 / 255, "alpha": 2 / 255, "amp": False, "lr_schedule": "multistep", "lr_milestones": [0.5, 0.75],
     "epochs": 10, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "val_pgd_steps": 10,
     "val_every": 1}


def _header(capsys, f, resumed_at, n_train, n_val, defaults, out):
    print_header(f, resumed_at, n_train, n_val, defaults, out)
    return capsys.readouterr().out.splitlines()


def test_the_header_of_a_new_rpt_run_with_pgd_validation(capsys):
    assert _header(capsys, F, None, 45000, 5000, [("precisions", "2 4 8 (a default)")], "runs/a") == [
        f"dwq train {__version__}: runs/a (new run), cpu, seed 0",
        "  data       cifar10 (embedded): 45000 training images, 5000 held out for validation",
        "  model      preact_resnet18, precision set 2 4 8, switchable BN",
        "  training   RPT: a precision drawn from the set at every iteration; PGD-7 ε 0.03137 step 0.007843",
        "  schedule   10 epochs, batch 128, lr 0.1 multistep (×0.1 at 0.5 0.75 of the run), momentum 0.9, "
        "weight decay 0.0005",
        "  validation clean and PGD-10 (step ε/4) accuracy over the set after every epoch; best.pt keeps the best "
        "PGD accuracy",
        "  precisions 2 4 8 (a default)"]


def test_the_header_of_a_resumed_fixed_precision_free_run_without_validation(capsys):
    f = {**F, "width": 16, "switchable_bn": False, "random_precision_training": False, "num_bits": "4",
         "attack": "free", "attack_iters": None, "free_replays": 8, "amp": True, "lr_milestones": None,
         "lr_schedule": "cosine", "epochs": 1, "data_dir": "/d", "train_subset": 100}
    assert _header(capsys, f, 3, 100, 0, [], "runs/b") == [
        f"dwq train {__version__}: runs/b (resumed at epoch 3), cpu, seed 0",
        "  data       cifar10 from /d: the first 100 training images (--train-subset), no validation "
        "(--val-size 0: no best.pt)",
        "  model      preact_resnet18 width 16, precision set 2 4 8, one shared BN",
        "  training   fixed precision 4; free (8 replays) ε 0.03137 step 0.007843; amp",
        "  schedule   1 epoch, batch 128, lr 0.1 cosine, momentum 0.9, weight decay 0.0005"]


def test_the_header_of_clean_validation_every_second_epoch_of_an_adversarial_run(capsys):
    """best.pt follows the validation's accuracy (clean without --val-pgd-steps), not the training's attack."""
    lines = _header(capsys, {**F, "val_pgd_steps": 0, "val_every": 2, "lr_milestones": [0.3, 0.625]}, None, 100, 10,
                    [], "runs/c")
    assert "(×0.1 at 0.3 0.625 of the run)" in lines[4], lines[4]
    assert lines[5] == ("  validation clean accuracy over the set after every 2 epochs and the last; best.pt keeps the "
                        "best clean accuracy")


def test_the_epoch_line_gives_the_learning_rate_to_four_significant_digits():
    rec = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "lr": 0.0123456, "precision_counts": {"4": 1},
           "seconds": 1.0}
    assert "  lr 0.01235  precisions 4:1  " in epoch_line(rec, 1, 1)


def test_the_next_command_of_a_folder_given_with_a_trailing_slash(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "last.pt", "best.pt"):
        (out / name).write_text("")
    (out / "metrics.jsonl").write_text('{"epoch": 1, "best": true, "val_clean": 0.5}\n')
    print_summary(f"{out}/", types.SimpleNamespace(epoch=1), 1.0, {"epochs": 1, "val_pgd_steps": 0})
    said = capsys.readouterr().out
    assert f"next: dwq eval --checkpoint {out}/best.pt --out {out}-eval\n" in said, said


def test_a_clean_validation_accuracy_of_zero_is_shown():
    rec = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_clean": 0.0, "val_pgd": 0.0, "lr": 0.1,
           "precision_counts": {"4": 1}, "seconds": 1.0}
    assert "  val clean   0.0% PGD-3   0.0%  lr 0.1" in epoch_line(rec, 1, 3)

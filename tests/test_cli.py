"""dwq command line: help, bad input (clear message, exit 2, nothing overwritten), train -> eval, demo smoke."""
import json
import os
import subprocess
import sys

import pytest

from dwq.cli.main import build_parser, main

TRAIN = ["train", "--train-subset", "96", "--epochs", "1", "--attack-iters", "1", "--width", "8",
         "--precisions", "2", "4", "8", "--random-precision-training", "--switchable-bn", "--val-size", "48",
         "--val-pgd-steps", "1", "--epsilon", "0.1", "--alpha", "0.05", "--batch-size", "32", "--no-progress",
         "--workers", "0"]


def test_every_flag_has_help():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert set(subs) == {"train", "eval", "demo", "deploy", "bench"}
    for name, sp in subs.items():
        for act in sp._actions:
            assert act.help, f"dwq {name} {act.option_strings} has no help"
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0


def test_reference_flags_have_equivalents():
    a = build_parser().parse_args(["train", "--out", "x", "--num-bits-schedule", "4", "16",
                                   "--random-precision-training", "--switchable-bn", "--attack", "fgsm-rs",
                                   "--epsilon", "8/255", "--attack-iters", "7", "--lr-schedule", "cyclic"])
    assert a.num_bits_schedule == [4, 16] and abs(a.epsilon - 8 / 255) < 1e-12


@pytest.mark.parametrize("argv,msg", [
    (["train", "--out", "{tmp}/a", "--epsilon", "8"], "outside"),
    (["train", "--out", "{tmp}/a", "--attack", "bim"], "invalid choice"),
    (["train", "--out", "{tmp}/a", "--precisions", "1"], "bad precision"),
])
def test_argparse_errors_exit_2(tmp_path, capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        main([s.format(tmp=tmp_path) for s in argv])
    assert e.value.code == 2 and msg in capsys.readouterr().err


@pytest.mark.parametrize("argv,msg", [
    (["train", "--network", "resnet-9000"], "unknown network"),
    (["train", "--dataset", "cifar10"], "--data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/nothing", "--network", "preact_resnet18"],
     "cifar-10-batches-py"),
    (["train", "--num-bits-schedule", "4", "40"], "num-bits-schedule"),
    (["train", "--precisions", "2", "4", "--num-bits", "8"], "not in the precision set"),
])
def test_bad_input_gives_message_and_exit_2(tmp_path, capsys, argv, msg):
    rc = main(argv[:1] + ["--out", str(tmp_path / "o")] + [s.format(tmp=tmp_path) for s in argv[1:]])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # a failed start leaves nothing behind


def test_train_then_eval_and_refusals(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TRAIN + ["--out", str(out)]) == 0
    for f in ("config.json", "last.pt", "best.pt", "metrics.jsonl"):
        assert (out / f).is_file()
    before = (out / "last.pt").read_bytes()
    assert main(TRAIN + ["--out", str(out)]) == 2  # no overwriting
    assert "already exists" in capsys.readouterr().err and (out / "last.pt").read_bytes() == before
    ev = tmp_path / "ev"
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(ev), "--n-test", "40", "--steps", "2",
                 "--epsilon", "0.1", "--alpha", "0.05"]) == 0
    rep = json.load(open(ev / "report.json"))
    assert set(rep["clean_acc"]) == {"2", "4", "8"}
    assert {"clean", "pgd_paper", "pgd_adaptive", "pgd_adaptive_worst_case"} <= set(rep["rpi"])
    assert rep["transfer_matrix"]["attack_precisions"] == ["2", "4", "8"] and (ev / "transfer.png").is_file()
    assert rep["bitops"]["per_precision"]["2"] < rep["bitops"]["per_precision"]["8"]
    assert all(len(v["ci95"]) == 2 for v in rep["clean_acc"].values())
    capsys.readouterr()
    # a precision outside the checkpoint's set, a corrupt checkpoint, an existing output folder
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "e2"), "--precisions", "3"]) == 2
    assert "not in the checkpoint's precision set" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", "--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "e3")]) == 2
    assert "not a loadable dwq checkpoint" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(ev)]) == 2
    # resume continues the run in place
    assert main(TRAIN[:4] + ["2"] + TRAIN[5:] + ["--out", str(out), "--resume"]) == 0
    assert [json.loads(l)["epoch"] for l in open(out / "metrics.jsonl")] == [1, 2]


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    import torch
    out = tmp_path / "run"
    assert main(TRAIN + ["--out", str(out)]) == 0
    ck = torch.load(out / "last.pt", weights_only=True)
    ck["config"]["extra"]["width"] = 16  # claims another architecture than its weights
    torch.save(ck, tmp_path / "other.pt")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "other.pt"), "--out", str(tmp_path / "e")]) == 2
    assert "do not fit" in capsys.readouterr().err


def test_console_entry_point_runs_without_traceback():
    r = subprocess.run([sys.executable, "-m", "dwq.cli.main", "eval", "--checkpoint", "/nonexistent.pt",
                        "--out", "/tmp/dwq-never-written"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists("/tmp/dwq-never-written")


def test_demo_smoke(tmp_path, capsys):
    """The demo's plumbing on a tiny budget (its numbers are meaningless here; see docs/workflow.md)."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "128", "--n-test", "40",
                 "--no-progress"]) == 0
    rep = json.load(open(out / "report.json"))
    for key in ("clean_acc", "rpi", "transfer_matrix", "bitops", "seconds", "findings", "models"):
        assert key in rep
    assert {"clean", "pgd_paper", "pgd_adaptive"} <= set(rep["rpi"])
    assert set(rep["models"]) == {"fp", "fixed4", "rpt"}
    assert (out / "transfer_rpt.png").is_file()
    assert "RPI over" in capsys.readouterr().out


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """A real kill -9 of `dwq train` mid-run, then --resume: same final weights as a run never killed."""
    import signal
    import time

    import torch
    argv = [sys.executable, "-m", "dwq.cli.main"] + TRAIN[:4] + ["12"] + TRAIN[5:]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run(argv + ["--out", str(full)], capture_output=True, timeout=300).returncode == 0
    p = subprocess.Popen(argv + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while time.time() < deadline and not (cut / "metrics.jsonl").exists():
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sum(1 for _ in open(cut / "metrics.jsonl"))
    assert 1 <= done < 12, "the kill came too late to test anything"
    r = subprocess.run(argv + ["--out", str(cut), "--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a = torch.load(full / "last.pt", weights_only=True)["model"]
    b = torch.load(cut / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k

"""dwq command line: help, bad input (clear message, exit 2, nothing overwritten), train -> eval, demo smoke."""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import dwq
from dwq.cli.main import build_parser, main

TRAIN = ["train", "--train-subset", "96", "--epochs", "1", "--attack-iters", "1", "--width", "8",
         "--precisions", "2", "4", "8", "--random-precision-training", "--switchable-bn", "--val-size", "48",
         "--val-pgd-steps", "1", "--epsilon", "0.1", "--alpha", "0.05", "--batch-size", "32", "--no-progress",
         "--workers", "0"]


def _one_line(err):
    """One line of message besides dwq's one-line warnings (a tiny run's untrained switchable-BN branch)."""
    lines = [line for line in err.splitlines() if line.strip() and not re.match(r"dwq \w+: warning: ", line)]
    return len(lines) == 1 and "Traceback" not in err


def _train_once(tmp_path_factory, name, argv):
    out = tmp_path_factory.mktemp("shared") / name
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv + ["--out", str(out)]) == 0
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny RPT run (1 epoch) shared by the tests that read it; tests that change it copy it."""
    return _train_once(tmp_path_factory, "run", TRAIN)


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run[0], dst)
    return dst


FP = ["train", "--train-subset", "256", "--epochs", "1", "--attack-iters", "1", "--val-size", "64", "--val-pgd-steps",
      "1", "--width", "8", "--no-progress"]


@pytest.fixture(scope="module")
def fp_run(tmp_path_factory):
    """One tiny full-precision fixed run (1 epoch): another run than ``run``, with other flags."""
    return _train_once(tmp_path_factory, "fp", FP)


def test_every_flag_has_help_once_with_its_default():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert set(subs) == {"train", "eval", "demo", "deploy", "bench"}
    for name, sp in subs.items():
        for act in sp._actions:
            assert act.help, f"dwq {name} {act.option_strings} has no help"
        text = " ".join(sp.format_help().split())
        assert "(default: None)" not in text and "(default: False)" not in text
        for act in sp._actions:
            h = (sp._get_formatter()._get_help_string(act) or "") % {"default": act.default}
            assert h.count("default") <= 1, (name, act.option_strings, h)
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0


def test_train_help_loads_no_training_code():
    """dwq train --help stays fast: the parser's modules import no training, model, data, attack, eval or
    deploy code (torch itself comes with dwq's ops), which is why dwq.cli.train copies constants."""
    code = ("import sys\nfrom dwq.cli.main import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('dwq.'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.splitlines()[-1].split()  # after the help text
    assert "dwq.cli.train" in loaded and "dwq.cli.train_flags" in loaded
    heavy = ("dwq.train", "dwq.models", "dwq.data", "dwq.attacks", "dwq.eval", "dwq.deploy")
    assert not [m for m in loaded if ".".join(m.split(".")[:2]) in heavy], loaded


def test_train_cli_copies_agree_with_the_library():
    """dwq.cli.train keeps its own copies of the library's names (fast --help): the attack names, the LR
    schedules, the dataset names, and the flags a resume may change, which must cover the TrainConfig
    fields dwq.train lets a resume change (and no other field)."""
    from dataclasses import fields

    import dwq.cli.train as cli
    from dwq.data import DATASETS
    from dwq.train import TRAIN_ATTACKS, TrainConfig
    from dwq.train.config import RESUME_MAY_CHANGE, SCHEDULES

    assert cli.TRAIN_ATTACKS == TRAIN_ATTACKS
    assert set(cli.DATASET_NAMES) == set(DATASETS)
    train = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices["train"]
    assert tuple(next(a for a in train._actions if a.dest == "lr_schedule").choices) == SCHEDULES
    field_of = {"no_progress": "progress"}  # the flag that sets a TrainConfig field of another name
    config_fields = {f.name for f in fields(TrainConfig)}
    assert {field_of.get(d, d) for d in cli.RESUME_MAY_CHANGE} & config_fields == \
        set(RESUME_MAY_CHANGE) - {"run_id", "extra"}  # run_id: the checkpoint's; extra: the CLI's flags


def test_eval_cli_copies_agree_with_the_library():
    """dwq.cli.main keeps its own copies of dwq.eval's attack and protocol names (fast --help)."""
    import dwq.cli.main as cli
    from dwq.eval.attacks import EVAL_ATTACKS
    from dwq.eval.run import PROTOCOLS

    assert cli.EVAL_ATTACKS == EVAL_ATTACKS and cli.EVAL_PROTOCOLS == PROTOCOLS


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"dwq {dwq.__version__}"


def test_reference_flags_have_equivalents():
    a = build_parser().parse_args(["train", "--out", "x", "--num-bits-schedule", "4", "16",
                                   "--random-precision-training", "--switchable-bn", "--attack", "fgsm-rs",
                                   "--epsilon", "8/255", "--attack-iters", "7", "--lr-schedule", "cyclic"])
    assert a.num_bits_schedule == [4, 16] and abs(a.epsilon - 8 / 255) < 1e-12


@pytest.mark.parametrize("argv,msg", [
    (["train", "--out", "{tmp}/a", "--epsilon", "8"], "outside"),
    (["train", "--out", "{tmp}/a", "--attack", "bim"], "invalid choice"),
    (["train", "--out", "{tmp}/a", "--precisions", "1"], "bad precision"),
    (["train", "--out", "{tmp}/a", "--val-size", "1.5"], "--val-size: 1.5 is neither a fraction in [0, 1)"),
    (["train", "--out", "{tmp}/a", "--val-size", "-0.5"], "--val-size"),
    (["train", "--out", "{tmp}/a", "--lr", "0"], "--lr: must be > 0"),
    (["train", "--out", "{tmp}/a", "--lr", "inf"], "--lr: must be a finite number, got inf"),
    (["train", "--out", "{tmp}/a", "--weight-decay", "nan"], "--weight-decay: must be a finite number"),
    (["train", "--out", "{tmp}/a", "--epsilon", "0"], "--epsilon: 0 must be in (0, 1]"),
    (["train", "--out", "{tmp}/a", "--seed", str(2**70)], "--seed: must be below 2^63"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--seed", "-1"], "--seed: must be >= 0"),
    (["train", "--out", "{tmp}/a", "--alpha", "0"], "--alpha: 0 must be in (0, 1]"),
    (["train", "--out", "{tmp}/a", "--val-every", "0"], "argument --val-every: must be >= 1, got 0"),
    (["train"], "required: --out"),
    (["eval", "--out", "{tmp}/a"], "required: --checkpoint"),
    ([], "required"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--attack", "bim"], "invalid choice"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--eot-iter", "0"], "must be >= 1"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--bandits-queries", "1"],  # (one step is 2 queries)
     "argument --bandits-queries: must be >= 2, got 1"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--epsilon", "0"], "(0, 1]"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--epsilon", "1.5"], "outside [0, 1]"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--protocols", "papers"], "invalid choice"),
    # (checked by the library only after the header was printed and --out created, naming cw_tau)
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--attack", "cw-linf", "--cw-tau", "nan"],
     "argument --cw-tau: nan is outside [0, 1]"),
    (["eval", "--checkpoint", "c.pt", "--out", "{tmp}/a", "--attack", "cw-linf", "--cw-tau", "-1"],
     "argument --cw-tau: -1 is outside [0, 1]"),
    (["demo", "--out", "{tmp}/a", "--threads", "100000"], "--threads: 100000 threads, but this process may use"),
    # an empty path was "not given" for some flags (--json wrote nothing, said nothing), the current folder for others
    (["train", "--out", ""], "argument --out: an empty path"),
    (["train", "--out", "{tmp}/a", "--data-dir", " "], "argument --data-dir: an empty path"),
    (["bench", "--model", "m.safetensors", "--json", ""], "argument --json: an empty path"),
    (["eval", "--checkpoint", "", "--out", "{tmp}/a"], "argument --checkpoint: an empty path"),
])
def test_argparse_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        main([s.format(tmp=tmp_path) for s in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and _one_line(err), err
    assert "--help)" in err  # where to read more
    assert not (tmp_path / "a").exists()


CPU_ONLY = "--amp is valid where CUDA is available"


@pytest.mark.parametrize("argv,msg", [
    (["train", "--network", "resnet-9000"], "--network resnet-9000: unknown network"),
    (["train", "--dataset", "cifar10"], "--data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/nothing", "--network", "preact_resnet18"],
     "cifar-10-batches-py"),
    (["train", "--num-bits-schedule", "4", "40"], "num-bits-schedule"),
    (["train", "--precisions", "2", "4", "--num-bits", "8"], "--num-bits 8 is not in the precision set 2 4"),
    (["train", "--precisions", "fp", "4", "--num-bits", "8"], "precision set fp 4"),
    # flags that cannot take effect (issue 8: no silent no-ops)
    (["train", "--random-precision-training", "--precisions", "4"], "holds only 4: give at least two"),
    (["train", "--switchable-bn"], "--switchable-bn keeps one BatchNorm per precision, and the set holds only fp"),
    (["train", "--switchable-bn", "--num-bits", "4"], "holds only 4"),
    (["train", "--data-dir", "{tmp}"], "--data-dir is for --dataset"),
    pytest.param(["train", "--amp"], "--amp (float16 autocast) works on CUDA only",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason=CPU_ONLY)),
    (["train", "--cuda-graphs", "--device", "cpu"], "--cuda-graphs (the attack replayed from CUDA graphs) works "
                                                    "on CUDA only; this run has --device cpu --attack pgd"),
    (["train", "--cuda-graphs", "--attack", "fgsm", "--device", "cpu"], "works on CUDA only"),
    (["train", "--val-size", "0.0001"], "is no image"),
    (["train", "--val-size", "5000"], "--val-size 5000: the training set has 4000 images"),
    (["train", "--train-subset", "5000"], "--train-subset 5000: the training split has only 3600 images"),
    (["train", "--attack", "fgsm", "--attack-iters", "3"], "--attack-iters is for --attack pgd"),
    (["train", "--attack", "pgd", "--free-replays", "3"], "--free-replays is for --attack free"),
    (["train", "--attack", "none", "--alpha", "0.1"], "--attack none has no attack"),
    # ε played no part: no training attack and no PGD validation
    (["train", "--attack", "none", "--val-size", "0", "--epsilon", "0.3"], "--epsilon is the radius of the training"),
    (["train", "--attack", "none", "--val-pgd-steps", "0", "--epsilon", "0.3"], "nothing uses it"),
    (["train", "--lr-schedule", "cyclic", "--lr-milestones", "0.5"], "--lr-milestones is for --lr-schedule multistep"),
    # 1 is the run's end, after its last step: the x0.1 the header announced never came
    (["train", "--lr-milestones", "0.5", "1"], "--lr-milestones are fractions of the run in (0, 1), got 0.5 1.0"),
    (["train", "--val-size", "0", "--val-pgd-steps", "3"], "--val-size 0 disables validation"),
    (["train", "--reference", "--val-pgd-steps", "3"], "--val-size 0 (--reference's default: give --val-size N"),
    (["train", "--val-size", "0", "--val-every", "2"], "--val-every sets when validation runs, and --val-size 0"),
    # --num-bits fp parses to None, as a flag not given: it was ignored (trained at 8 bits), or allowed RPT
    (["train", "--precisions", "4", "8", "--num-bits", "fp"], "--num-bits fp is not in the precision set 4 8"),
    (["train", "--random-precision-training", "--precisions", "4", "8", "--num-bits", "fp"],
     "--num-bits is for fixed-precision training"),
    (["train", "--network", "preact_resnet18", "--width", "8"], "--width sets small_cnn's first conv"),
    (["train", "--pretrained", "{tmp}/w.pth"], "--pretrained loads torchvision ResNet-50 weights"),
    (["train", "--precisions", "2", "4", "--num-bits-schedule", "2", "4"], "--precisions or --num-bits-schedule"),
    (["train", "--precisions", "2", "fp", "2"], "repeats a precision: 2 fp 2"),
    (["train", "--resume"], "does not exist"),
    (["eval", "--checkpoint", "{tmp}"], "is a run folder; give a checkpoint file in it"),
    (["eval", "--checkpoint", "c.pt", "--protocols", "paper", "transfer", "paper"], "--protocols: paper given more than once"),
    (["train", "--device", "tpu"], "--device tpu: not a device"),
    (["train", "--device", "meta"], "--device meta: dwq runs on cpu or cuda, not meta"),
    (["train", "--device", "cpu:1"], "--device cpu:1: the CPU takes no index; use cpu"),
    # the demo ran on fewer images than asked, unsaid (small flags: a failure on old code ends soon)
    (["demo", "--n-test", "5000", "--epochs", "1", "--train-images", "64", "--autoattack-n", "0", "--no-progress"],
     "--n-test 5000: the mnist5k test split has 1000 images"),
    (["demo", "--train-images", "5000", "--epochs", "1", "--n-test", "8", "--autoattack-n", "0", "--no-progress"],
     "--train-images 5000: the demo's training split has 3600 images"),
    (["demo", "--n-test", "20", "--autoattack-n", "30", "--epochs", "1", "--train-images", "64", "--no-progress"],
     "--autoattack-n 30: more than the 20 test images evaluated (--n-test 20)"),
])
def test_bad_input_gives_message_and_exit_2(tmp_path, capsys, argv, msg):
    rc = main(argv[:1] + ["--out", str(tmp_path / "o")] + [s.format(tmp=tmp_path) for s in argv[1:]])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and _one_line(err), err
    assert not (tmp_path / "o").exists()  # a failed start leaves nothing behind


def test_interrupt_before_the_first_epoch_leaves_a_folder_the_same_command_reuses(tmp_path, capsys, monkeypatch):
    """Ctrl-C before last.pt exists: nothing to resume, so what the run wrote is removed (the folder
    was neither empty, for a plain rerun, nor resumable); the same command then starts."""
    from dwq.train.loop import Trainer

    def interrupted(self, stop_after_steps):
        with open(os.path.join(self.out_dir, "metrics.jsonl"), "a") as f:  # as if epoch 1 had just ended
            f.write("{}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_fit", interrupted)
    argv = ["train", "--out", str(tmp_path / "o"), "--train-subset", "64", "--epochs", "1", "--attack-iters", "1",
            "--val-size", "0", "--no-progress"]
    assert main(argv) == 130
    assert "before the first epoch completed; nothing to resume" in capsys.readouterr().err
    assert list((tmp_path / "o").iterdir()) == []
    monkeypatch.undo()
    assert main(argv) == 0 and (tmp_path / "o" / "last.pt").is_file()


KEPT_REPORT = os.path.join(os.path.dirname(__file__), "..", "docs", "demo", "report.json")  # the README's demo


def kept_report():
    with open(KEPT_REPORT) as f:
        return json.load(f)


TINY = ["--attack", "none", "--val-size", "16", "--train-subset", "32", "--batch-size", "32", "--width", "8",
        "--no-progress", "--workers", "0"]


def test_a_stopped_resume_says_how_to_continue_with_its_own_changes(tmp_path, capsys, monkeypatch):
    """Until an epoch of a resume completes, last.pt holds the run's old flags: the plain `--resume` the
    message gave went back to the old --epochs ("nothing to do", or training to the old count)."""
    import errno

    from dwq.train import Trainer

    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--epochs", "1"] + TINY) == 0

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_fit", interrupted)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--val-every", "2", "--no-compile"]) == 130
    hint = f"(continue with: dwq train --resume --out {out} --epochs 3 --val-every 2)"
    assert hint in capsys.readouterr().err
    monkeypatch.undo()

    def full(self, *args, **kwargs):  # restore() trims metrics.jsonl and may rewrite best.pt
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "metrics.jsonl"))

    monkeypatch.setattr(Trainer, "restore", full)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--val-every", "2"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "No space left on device" in err and \
        f"continue with: dwq train --resume --out {out} --epochs 3 --val-every 2)" in err, err


def test_sigterm_is_handled_as_ctrl_c(tmp_path, capsys, monkeypatch):
    """A scheduler's SIGTERM in the first epoch left config.json behind, and the requeued command was
    refused ("stopped before its first epoch ended"); after an epoch it now says how to continue."""
    import signal
    import time

    from dwq.train import Trainer

    def terminated(self, *args, **kwargs):
        # (without a handler SIGTERM would end pytest itself)
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "no SIGTERM handler installed"
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # (the handler raises here)

    out = tmp_path / "r"
    argv = ["train", "--out", str(out), "--epochs", "2"] + TINY
    monkeypatch.setattr(Trainer, "_fit", terminated)
    assert main(argv) == 143
    assert "terminated (SIGTERM) before the first epoch completed; nothing to resume" in capsys.readouterr().err
    assert list(out.iterdir()) == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.undo()
    assert main(argv[:4] + ["1"] + argv[5:]) == 0
    monkeypatch.setattr(Trainer, "_fit", terminated)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 143
    assert f"terminated (SIGTERM); the last complete epoch is in {out}/last.pt" in capsys.readouterr().err


def test_a_diverged_run_says_so_and_its_metrics_stay_strict_json(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--epochs", "1", "--lr", "1e30"] + TINY + ["--batch-size", "8"]) == 0
    assert "(diverged: the loss is not finite; a lower --lr may help)" in capsys.readouterr().out

    def strict(name):
        raise ValueError(f"not strict JSON: {name}")
    (rec,) = [json.loads(line, parse_constant=strict) for line in open(out / "metrics.jsonl")]
    assert rec["train_loss"] == "nan"


def test_a_diverged_quantized_run_says_so_and_leaves_no_folder_behind(tmp_path, capsys):
    """A quantized run stops where its quantizers meet NaN: that ended in the generic error handler,
    with config.json left behind, a folder the same command then refused."""
    out = tmp_path / "q"
    argv = ["train", "--out", str(out), "--epochs", "1", "--lr", "1e30", "--num-bits", "4"] + TINY
    argv += ["--batch-size", "8"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "the training diverged at step" in err and "a lower --lr may help" in err, err
    assert "no epoch completed, so there is nothing to resume" in err and list(out.iterdir()) == []


def test_threads_are_recorded_and_a_resume_takes_the_run_s(tmp_path, capsys):
    """A CPU run's numbers depend on the thread count (sums split by thread): a resume under another
    count was not the uninterrupted run, without a word."""
    out, before = tmp_path / "r", torch.get_num_threads()
    try:
        assert main(["train", "--out", str(out), "--epochs", "1", "--threads", "1"] + TINY) == 0
        assert json.load(open(out / "config.json"))["extra"]["flags"]["threads"] == 1
        torch.set_num_threads(2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (Trainer warns of a resume under another count)
            assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
        assert torch.get_num_threads() == 1
        assert json.load(open(out / "config.json"))["extra"]["history"][1]["changed"] == {"epochs": [1, 2]}
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("line", ["7", "null", '{"epoch": "x"}', '{"epoch": true}', "[1]"])
def test_a_metrics_line_that_is_no_epoch_record_does_not_end_a_resume_in_a_traceback(run, tmp_path, capsys, line):
    out = _copy(run, tmp_path)
    with open(out / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    rc = main(["train", "--resume", "--out", str(out), "--epochs", "2"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err, err


def test_reference_defaults_note_leaves_out_what_plays_no_part():
    from dwq.cli.common import given_flags
    from dwq.cli.train_flags import apply_reference_defaults

    argv = ["train", "--out", "x", "--reference", "--lr-schedule", "cyclic", "--attack", "fgsm-rs"]
    a = build_parser().parse_args(argv)
    ((_, note),) = apply_reference_defaults(a, given_flags(build_parser(), argv))
    assert "--lr-milestones" not in note and "--attack-iters" not in note and "--epochs 160" in note, note


def test_a_disk_that_fills_up_mid_run_is_one_line_saying_where_the_run_stands(tmp_path, capsys, monkeypatch):
    """An OSError while writing (disk full) was a raw traceback; it names the file and the reason, and
    says whether the run can resume (a last.pt) or was removed (none: the same command starts afresh)."""
    import errno

    import dwq.train.loop as loop

    save, fail_at = loop.save_checkpoint, {"n": 2}

    def save_until_full(path, state):
        if path.endswith("last.pt") and state["epoch"] == fail_at["n"]:
            raise OSError(errno.ENOSPC, "No space left on device", path + ".tmp")
        save(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", save_until_full)
    out = tmp_path / "o"
    argv = ["train", "--out", str(out), "--train-subset", "32", "--batch-size", "32", "--epochs", "2", "--attack",
            "none", "--val-size", "0", "--width", "8", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"last.pt.tmp: No space left on device; the last complete epoch is in {out}/last.pt" \
        in err and f"dwq train --resume --out {out}" in err, err
    fail_at["n"] = 1
    out = tmp_path / "p"
    assert main(argv[:2] + [str(out)] + argv[3:]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "no epoch completed, so there is nothing to resume" in err, err
    assert list(out.iterdir()) == []


def test_a_checkpoint_write_that_fills_the_disk_is_one_line_saying_where_the_run_stands(tmp_path, capsys,
                                                                                         monkeypatch):
    """A real full disk fails inside torch.save's own writes: an OSError without a file name, which torch's
    zip writer then buries under a RuntimeError ("unexpected pos ..."). That was a traceback, and a run
    that failed in its first save kept config.json and metrics.jsonl: neither resumable nor reusable."""
    import errno

    import dwq._torch_file as ck  # where checkpoints are written (torch_save_atomic)

    real, full = ck.atomic_open, {"epoch": 2}

    class FullDisk:  # the real file until the disk is full, after a few kB
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def flush(self):
            self.f.flush()

    @contextlib.contextmanager
    def filling(path, mode="w"):
        with real(path, mode) as f:
            yield FullDisk(f) if path.endswith("last.pt") and not full["epoch"] else f
        full["epoch"] -= path.endswith("last.pt")

    monkeypatch.setattr(ck, "atomic_open", filling)
    out = tmp_path / "o"
    argv = ["train", "--out", str(out), "--train-subset", "32", "--batch-size", "32", "--epochs", "3", "--attack",
            "none", "--val-size", "0", "--width", "8", "--no-progress"]
    full["epoch"] = 1  # the second epoch's last.pt fills the disk
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"{out}: No space left on device; the last complete epoch is in {out}/last.pt" in err
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    full["epoch"] = 0  # the first
    out = tmp_path / "p"
    assert main(argv[:2] + [str(out)] + argv[3:]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "No space left on device; no epoch completed, so there is nothing to resume" in err
    assert list(out.iterdir()) == []  # the same command starts afresh


@pytest.mark.parametrize("where", ["below a file", "/proc"])
def test_out_that_cannot_be_written_fails_in_one_line_before_the_header(tmp_path, capsys, where):
    if where == "/proc":
        if not os.path.isdir("/proc/self"):
            pytest.skip("no /proc here")
        out, reason = "/proc/dwq-never-written", "cannot create the folder (No such file or directory)"
    else:
        (tmp_path / "f").write_text("a file")
        out, reason = str(tmp_path / "f" / "o"), "cannot create the folder (Not a directory)"
    assert main(FP + ["--out", out]) == 2
    cap = capsys.readouterr()
    assert f"--out {out}: {reason}" in cap.err and _one_line(cap.err) and cap.out == "", cap
    assert not os.path.exists(out)


def test_out_folder_check_removes_the_folders_it_created(tmp_path, monkeypatch):
    """A folder that can be created but not written into (a read-only mount; root passes permission
    bits): the error names --out and the OS's reason, and the folders made for the check are gone."""
    from dwq.cli import common

    def refused(**kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(common.tempfile, "mkstemp", refused)
    out = tmp_path / "new" / "deeper"
    with pytest.raises(common.CLIError, match=re.escape(f"--out {out}: cannot write into the folder (Permission "
                                                        f"denied)")):
        common.writable_dir(str(out))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert common.writable_dir(str(out)) == str(out) and list(out.iterdir()) == []  # the probe is removed


def test_train_run_folder_console_and_config(run):
    out, console = run
    for f in ("config.json", "last.pt", "best.pt", "metrics.jsonl"):
        assert (out / f).is_file()
    cfg = json.load(open(out / "config.json"))
    flags = cfg["extra"]["flags"]
    # every flag that shaped the run, resolved, in the one precision spelling
    assert flags["train_subset"] == 96 and flags["val_size"] == 48 and flags["data_dir"] is None
    assert flags["precisions"] == ["2", "4", "8"] and cfg["precisions"] == ["2", "4", "8"]
    assert flags["alpha"] == 0.05 and flags["attack_iters"] == 1 and flags["free_replays"] is None
    assert cfg["extra"]["history"][0]["command"].startswith("dwq train --train-subset 96")
    assert cfg == torch.load(out / "last.pt", weights_only=True)["config"]  # config.json is the checkpoint's
    # metrics: precision_counts are the draws of that epoch (one per update: 96 images / batch 32)
    rec = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert set(rec[0]["precision_counts"]) == {"2", "4", "8"} and sum(rec[0]["precision_counts"].values()) == 3
    # the console: a header, one line per epoch, a summary naming files that exist
    lines = console.splitlines()
    assert lines[0].startswith("dwq train") and "new run" in lines[0]
    ep = [line for line in lines if line.startswith("epoch 1/1")]
    assert len(ep) == 1
    for part in ("loss ", "train acc", "val clean", "PGD-1", "lr ", "precisions ", " s"):
        assert part in ep[0], (part, ep[0])
    assert f"wrote {out}/: config.json, last.pt, best.pt, metrics.jsonl" in console
    assert f"dwq eval --checkpoint {out}/best.pt" in console


def test_no_validation_summary_names_no_best_pt_and_rpt_default_set_is_said(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--random-precision-training", "--attack", "none", "--val-size", "0",
                 "--train-subset", "32", "--batch-size", "32", "--epochs", "1", "--width", "8", "--no-progress"]) == 0
    console = capsys.readouterr().out
    assert "precision set 4..16 (the paper's" in console  # a default, said at start
    assert json.load(open(out / "config.json"))["extra"]["flags"]["precisions"] == [str(b) for b in range(4, 17)]
    assert not (out / "best.pt").exists()
    assert f"wrote {out}/: config.json, last.pt, metrics.jsonl" in console and "next:" not in console


def test_val_every_validates_those_epochs_and_the_last_and_may_change_on_resume(tmp_path, capsys):
    """--val-every N: validation (and the choice of best.pt) after epochs N, 2N, ... and the last; a
    resume may change it, and a run recorded before the flag existed resumes validating every epoch."""
    out = tmp_path / "r"
    argv = ["train", "--out", str(out), "--attack", "none", "--val-size", "16", "--val-pgd-steps", "0",
            "--train-subset", "32", "--batch-size", "32", "--width", "8", "--no-progress", "--workers", "0"]
    assert main(argv + ["--epochs", "3", "--val-every", "2"]) == 0
    assert "validation clean accuracy over the set after every 2 epochs and the last;" in capsys.readouterr().out

    def validated():
        return [r["epoch"] for r in map(json.loads, open(out / "metrics.jsonl")) if "val_clean" in r]
    assert validated() == [2, 3]
    assert json.load(open(out / "config.json"))["extra"]["flags"]["val_every"] == 2
    assert main(["train", "--resume", "--out", str(out), "--epochs", "5"]) == 0  # the run's cadence restored
    assert validated() == [2, 3, 4, 5]
    assert main(["train", "--resume", "--out", str(out), "--epochs", "7", "--val-every", "1"]) == 0
    cfg = json.load(open(out / "config.json"))
    assert validated() == [2, 3, 4, 5, 6, 7] and cfg["extra"]["flags"]["val_every"] == 1
    assert cfg["extra"]["history"][-1]["changed"] == {"epochs": [5, 7], "val_every": [2, 1]}
    # as a folder written before --val-every existed
    _rewrite_recorded(out, lambda config: config["extra"]["flags"].pop("val_every"))
    assert main(["train", "--resume", "--out", str(out), "--epochs", "8"]) == 0
    assert validated()[-1] == 8 and json.load(open(out / "config.json"))["extra"]["flags"]["val_every"] == 1


def _rewrite_recorded(out, edit):
    """Both records of the run in ``out`` (last.pt's config and config.json) changed by ``edit(config)``:
    the run as an older dwq, or another start, wrote it."""
    ck = torch.load(out / "last.pt", weights_only=True)
    cfg = json.load(open(out / "config.json"))
    for config in (ck["config"], cfg):
        edit(config)
    torch.save(ck, out / "last.pt")
    (out / "config.json").write_text(json.dumps(cfg))


def _recorded_with_workers(out, n):
    """The run in ``out`` as dwq recorded an mnist5k run before --workers was null there: ``workers: n``."""
    _rewrite_recorded(out, lambda config: config["extra"]["flags"].update(workers=n))


def test_workers_of_an_mnist5k_run_are_recorded_as_playing_no_part(tmp_path, capsys):
    """config.json records a flag that plays no part in the run as null (docs/workflow.md), but kept
    --workers 2 for mnist5k, which is held in memory and read by no loader worker."""
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), *TINY, "--epochs", "1", "--workers", "3"]) == 0
    assert "--workers 3 has no effect on mnist5k (held in memory)" in capsys.readouterr().out
    cfg = json.load(open(out / "config.json"))
    assert cfg["extra"]["flags"]["workers"] is None
    _recorded_with_workers(out, 2)  # a run recorded with the count resumes
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
    assert json.load(open(out / "config.json"))["extra"]["flags"]["workers"] is None


def test_an_interrupted_resume_given_workers_on_mnist5k_says_a_command_the_parser_takes(tmp_path, capsys,
                                                                                      monkeypatch):
    """A resume of such a folder given --workers 3 resolves it to None (no part in the run); an interrupt
    then offered `--workers 'not used'` to continue with, which the parser refuses."""
    from dwq.train import Trainer

    out = tmp_path / "r"
    assert main(["train", "--out", str(out), *TINY, "--epochs", "1"]) == 0
    _recorded_with_workers(out, 2)
    capsys.readouterr()

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_fit", interrupted)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--workers", "3"]) == 130
    err = capsys.readouterr().err
    assert f"(continue with: dwq train --resume --out {out} --epochs 2)" in err, err


def test_validation_flags_on_resume_of_a_run_without_validation_name_the_run(tmp_path, capsys):
    """The refusal blamed --reference's default and advised --val-size N, which a resume refuses."""
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--val-size", "0", "--train-subset", "32",
                 "--batch-size", "32", "--epochs", "1", "--width", "8", "--no-progress", "--workers", "0"]) == 0
    capsys.readouterr()
    for argv, why in ((["--val-every", "2"], "the run's --val-size 0 (a resume cannot change it) disables validation"),
                      (["--val-pgd-steps", "3"], "--val-pgd-steps 3 (run: not used)")):
        assert main(["train", "--resume", "--out", str(out), "--epochs", "2"] + argv) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and why in err, err


def test_reference_without_a_training_attack_may_set_epsilon():
    """--reference chooses best_test_reference.pt by a PGD at ε on the test set, so ε is used even with
    --attack none and no validation; it was refused as "nothing uses it"."""
    from dwq.cli.common import given_flags
    from dwq.cli.train import resolve_flags

    argv = ["train", "--out", "x", "--reference", "--attack", "none", "--epsilon", "0.1", "--device", "cpu"]
    a = build_parser().parse_args(argv)
    given = given_flags(build_parser(), argv)
    from dwq.cli.train_flags import apply_reference_defaults
    apply_reference_defaults(a, given)
    f, _ = resolve_flags(a, given)
    assert f["epsilon"] == 0.1 and f["reference"] and f["val_size"] == 0


def test_train_subset_may_name_the_whole_training_split(tmp_path, capsys):
    """--train-subset N uses the first N images of the split: N equal to the split's size was refused
    with "the training split has only N images"."""
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--val-size", "3990", "--val-pgd-steps", "0",
                 "--train-subset", "10", "--batch-size", "10", "--epochs", "1", "--width", "8", "--no-progress"]) == 0
    assert "the first 10 training images (--train-subset), 3990 held out" in capsys.readouterr().out


def test_a_folder_without_last_pt_is_not_offered_to_resume(tmp_path, capsys):
    """A run killed before its first last.pt leaves config.json: a new run there was told "or --resume",
    which then refused for want of a last.pt."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["train", "--out", str(out), "--width", "8"]) == 2
    err = capsys.readouterr().err
    assert "stopped before its first epoch completed, which cannot resume; remove the folder" in err, err
    assert "--resume" not in err and _one_line(err)


def test_device_index_beyond_the_machine_is_named(monkeypatch):
    """--device cuda:5 on a 2-GPU machine passed the check and failed at the first tensor moved there."""
    from dwq.cli.common import CLIError
    from dwq.cli.train_flags import device_arg

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_arg("cuda:1") == "cuda:1" and device_arg("cuda") == "cuda"
    with pytest.raises(CLIError, match=re.escape("--device cuda:5: this machine has 2 CUDA devices (cuda:0 to cuda:1)")):
        device_arg("cuda:5")


def test_resume_restores_the_run_and_refuses_other_flags(run, tmp_path, capsys):
    out = _copy(run, tmp_path)
    before = {f: (out / f).read_bytes() for f in ("config.json", "last.pt", "metrics.jsonl")}
    capsys.readouterr()

    def refused(extra, *msgs):
        assert main(["train", "--resume", "--out", str(out)] + extra) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and all(m in err for m in msgs), err
        assert {f: (out / f).read_bytes() for f in before} == before  # nothing rewritten

    assert main(TRAIN + ["--out", str(out)]) == 2  # a new run into a run folder: refused
    assert "already exists" in capsys.readouterr().err and (out / "last.pt").read_bytes() == before["last.pt"]
    refused([], "has trained 1 epoch and --epochs is 1: nothing to do")
    refused(["--epochs", "2", "--width", "16"], "--width 16 (run: 8)")
    refused(["--epochs", "2", "--attack", "fgsm", "--epsilon", "0.2", "--train-subset", "50"],
            "--attack fgsm (run: pgd)", "--epsilon 0.2 (run: 0.1)", "--train-subset 50 (run: 96)")
    refused(["--epochs", "2", "--num-bits-schedule", "2", "8"], "--num-bits-schedule 2 8 (run: --precisions 2 4 8)")
    refused(["--epochs", "2", "--val-size", "0.2"], "--val-size 0.2 (run: 48)")
    # values that differ beyond the 6 digits a message shows are shown in full, not as "0.1 (run: 0.1)"
    refused(["--epochs", "2", "--epsilon", "0.1000001"], "--epsilon 0.1000001 (run: 0.1)")
    # only --epochs (and other safe flags) given: every other flag comes from the checkpoint
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--precisions", "2", "4", "8"]) == 0
    console = capsys.readouterr().out
    assert "resumed at epoch 1" in console and "--epochs   1 -> 2" in console and "epoch 2/2" in console
    cfg = json.load(open(out / "config.json"))
    assert cfg["extra"]["flags"]["train_subset"] == 96 and cfg["extra"]["flags"]["epochs"] == 2
    assert cfg["extra"]["history"][1]["changed"] == {"epochs": [1, 2]}
    assert [json.loads(line)["epoch"] for line in open(out / "metrics.jsonl")] == [1, 2]


def test_a_run_folder_in_use_is_refused(run, tmp_path, capsys):
    """Two processes on one run folder (a requeued job resuming beside the original) would both append
    to metrics.jsonl and overwrite the checkpoints: while one holds the folder, the other is refused
    before it writes anything, and the folder is free again once the holder ends."""
    import fcntl

    out = _copy(run, tmp_path)
    before = {f: (out / f).read_bytes() for f in ("config.json", "last.pt", "metrics.jsonl")}
    capsys.readouterr()
    holder = os.open(out, os.O_RDONLY)  # what a running dwq train holds
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and f"--out {out}: another process" in err, err
        assert {f: (out / f).read_bytes() for f in before} == before
    finally:
        os.close(holder)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 0
    assert [json.loads(line)["epoch"] for line in open(out / "metrics.jsonl")] == [1, 2]


def test_resume_refuses_a_training_set_of_another_size(run, tmp_path, capsys, monkeypatch):
    """--data-dir may point a resume at another copy of the data, not at other data: a set of another
    size would shift the validation split, the steps per epoch and the LR schedule silently."""
    import dwq.data

    out = _copy(run, tmp_path)
    assert json.load(open(out / "config.json"))["extra"]["train_images"] == 4000
    real = dwq.data.get_datasets

    def fewer(*args, **kw):
        train, test, info = real(*args, **kw)
        return torch.utils.data.Subset(train, range(len(train) - 10)), test, info

    monkeypatch.setattr(dwq.data, "get_datasets", fewer)
    before = (out / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "the mnist5k training set has 3990 images, the run's had 4000" in err, err
    assert (out / "metrics.jsonl").read_bytes() == before


def test_resume_refuses_a_last_pt_of_another_run(run, fp_run, tmp_path, capsys):
    """A last.pt copied in from another run (the same epoch count, so metrics.jsonl agrees) is refused
    before anything is written: by the run id, or for a checkpoint older than run ids by the flags
    it records against config.json's."""
    out = _copy(run, tmp_path)
    ck = torch.load(fp_run[0] / "last.pt", weights_only=True)
    torch.save(ck, out / "last.pt")
    before = {f: (out / f).read_bytes() for f in ("config.json", "last.pt", "metrics.jsonl")}
    capsys.readouterr()

    def refused(*msgs):
        assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and all(m in err for m in msgs), err
        assert {f: (out / f).read_bytes() for f in before} == before

    run_id = json.load(open(out / "config.json"))["run_id"]
    refused(f"--resume: {out}/last.pt is not the checkpoint of the run in {out}: its run id is "
            f"{ck['config']['run_id']}, config.json's is {run_id}", "copied from another run?")
    del ck["config"]["run_id"]  # as written before run ids
    torch.save(ck, out / "last.pt")
    before["last.pt"] = (out / "last.pt").read_bytes()
    refused(f"{out}/last.pt is not the checkpoint of the run in {out}: ", "--precisions fp (config.json: 2 4 8)",
            "--random-precision-training False (config.json: True)")


def test_fixed_full_precision_run_records_fp_and_a_folder_recording_null_resumes(fp_run, run, tmp_path, capsys):
    """num_bits is "fp" for a full-precision fixed run (null is "played no part": RPT runs); a run
    folder written before that (null, no run id) still resumes, and is then recorded as "fp"."""
    assert "fixed precision fp;" in fp_run[1]
    assert json.load(open(fp_run[0] / "config.json"))["extra"]["flags"]["num_bits"] == "fp"
    assert json.load(open(run[0] / "config.json"))["extra"]["flags"]["num_bits"] is None
    out = _copy(fp_run, tmp_path)

    def before_num_bits_fp(config):
        config["extra"]["flags"]["num_bits"] = None
        del config["run_id"]

    _rewrite_recorded(out, before_num_bits_fp)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--num-bits", "fp"]) == 0
    assert "fixed precision fp;" in capsys.readouterr().out
    cfg = json.load(open(out / "config.json"))
    assert cfg["extra"]["flags"]["num_bits"] == "fp" and cfg["extra"]["history"][-1]["changed"] == {"epochs": [1, 2]}
    assert cfg == torch.load(out / "last.pt", weights_only=True)["config"] and cfg["run_id"]


def test_resume_of_a_last_pt_missing_a_state_names_the_exception(run, tmp_path, capsys):
    """A KeyError's message is only the key: "('precision_rng')" said nothing of what was missing."""
    out = _copy(run, tmp_path)
    ck = torch.load(out / "last.pt", weights_only=True)
    del ck["precision_rng"]
    torch.save(ck, out / "last.pt")  # (its digest of the other tensors no longer holds: refused as corrupt)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "last.pt is corrupt: its tensors other than the model's" in err, err
    del ck["state_sha256"]  # (a file of before that digest)
    torch.save(ck, out / "last.pt")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "last.pt does not fit the run its config describes (KeyError: 'precision_rng')" in err, err


def test_resume_of_a_run_without_recorded_flags_is_refused(run, tmp_path, capsys):
    out = _copy(run, tmp_path)
    ck = torch.load(out / "last.pt", weights_only=True)
    del ck["config"]["extra"]["flags"]  # as dwq demo's and older runs' checkpoints
    torch.save(ck, out / "last.pt")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "does not record its run's flags" in err


def test_eval_takes_its_defaults_from_the_checkpoint(run, tmp_path, capsys):
    out, _ = run
    ev = tmp_path / "ev"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(ev), "--n-test", "40", "--steps", "2",
                 "--no-progress"]) == 0
    console = capsys.readouterr().out
    rep = json.load(open(ev / "report.json"))
    assert rep["epsilon"] == 0.1  # trained at ε = 0.1, not the 8/255 of CIFAR
    assert rep["settings"]["epsilon"] == {"value": "0.1", "from": "checkpoint: the training ε"}
    assert rep["settings"]["step"] == {"value": "0.05", "from": "checkpoint: the training PGD step"}
    assert rep["settings"]["precisions"]["from"] == "checkpoint: its whole set"
    assert rep["settings"]["steps"] == {"value": "2", "from": "given"}
    assert set(rep["clean_acc"]) == {"2", "4", "8"}
    assert {"clean", "pgd_paper", "pgd_adaptive", "pgd_adaptive_worst_case"} <= set(rep["rpi"])
    assert rep["transfer_matrix"]["attack_precisions"] == ["2", "4", "8"] and (ev / "transfer.png").is_file()
    assert rep["bitops"]["per_precision"]["2"] < rep["bitops"]["per_precision"]["8"]
    assert all(len(v["ci95"]) == 2 for v in rep["clean_acc"].values())
    for key in ("epsilon", "alpha", "steps", "restarts", "seed", "protocols", "definitions", "per_image"):
        assert key in rep
    assert rep["transfer_matrix"]["epsilon"] == 0.1
    # one attack run: the per-precision figure is the transfer matrix's diagonal
    assert [rep["pgd_acc"][p]["acc"] for p in ("2", "4", "8")] == [rep["transfer_matrix"]["acc"][i][i] for i in range(3)]
    # each stage says how long it took
    assert set(rep["seconds_per_stage"]) == {"clean", "pgd at 2", "pgd at 4", "pgd at 8", "adaptive"}
    for stage in rep["seconds_per_stage"]:
        assert any(line.strip().startswith(stage) and line.endswith(" s") for line in console.splitlines()), stage
    assert "epsilon     0.1" in console and "checkpoint: the training ε" in console
    # ε given: the step follows it (ε/4), and says so
    ev2 = tmp_path / "ev2"
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(ev2), "--n-test", "20", "--steps", "1",
                 "--epsilon", "0.2", "--protocols", "paper", "--no-progress"]) == 0
    rep = json.load(open(ev2 / "report.json"))
    assert rep["settings"]["step"] == {"value": "0.05", "from": "default: ε/4 (ε given, other than the training ε)"}
    # ε given equal to the training ε: the training step, as --alpha's help says (it was ε/4 = 0.025)
    ev3 = tmp_path / "ev3"
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(ev3), "--n-test", "20", "--steps", "1",
                 "--epsilon", "0.1", "--protocols", "paper", "--no-progress"]) == 0
    rep = json.load(open(ev3 / "report.json"))
    assert rep["settings"]["step"] == {"value": "0.05", "from": "checkpoint: the training PGD step"}


def test_eval_bad_input(run, tmp_path, capsys):
    out, _ = run
    best = str(out / "best.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module
    ref = tmp_path / "ref.pt"
    torch.save({"conv.weight": torch.zeros(1)}, ref)  # a plain state_dict (e.g. reference code)
    cases = [
        (["--checkpoint", best, "--precisions", "3"],
         "--precisions: precision 3 is not in the checkpoint's precision set 2 4 8"),
        (["--checkpoint", best, "--precisions", "fp"], "precision fp is not in the checkpoint's precision set"),
        (["--checkpoint", str(tmp_path / "notes.txt")], "not a loadable dwq checkpoint"),
        (["--checkpoint", str(tmp_path / "module.pt")], "holds pickled Python objects"),
        (["--checkpoint", str(ref)], "load_reference_state_dict"),
        (["--checkpoint", best, "--data-dir", str(tmp_path)], "mnist5k, which is embedded"),
        (["--checkpoint", best, "--cw-tau", "0.1"], "--cw-tau is for --attack cw-linf"),
        (["--checkpoint", best, "--attack", "fgsm", "--protocols", "paper", "--cw-steps", "1000"],
         "--cw-steps is for --attack cw-l2 or cw-linf; --attack fgsm with protocols paper does not use it"),
        (["--checkpoint", best, "--attack", "fgsm", "--protocols", "paper", "--steps", "5"],
         "--steps is for --attack pgd or the adaptive protocol"),
        (["--checkpoint", best, "--attack", "cw-l2", "--protocols", "transfer", "--epsilon", "0.3"],
         "--epsilon is for an L-inf attack or the adaptive and AutoAttack protocols; --attack cw-l2 with protocols "
         "transfer does not use it"),
        (["--checkpoint", best, "--n-test", "5000"], "--n-test 5000: the mnist5k test set has 1000 images"),
        (["--checkpoint", best, "--precisions", "2", "2"], "repeats a precision"),
        (["--checkpoint", best, "--n-test", "20", "--protocols", "autoattack-rand", "--autoattack-n", "30"],
         "--autoattack-n 30: more than the 20 images evaluated (--n-test)"),
        (["--checkpoint", best, "--protocols", "autoattack-rand", "--autoattack-n", "1001"],
         "--autoattack-n 1001: more than the 1000 images evaluated (the whole mnist5k test set)"),
    ]
    for extra, msg in cases:
        assert main(["eval", "--out", str(tmp_path / "e")] + extra) == 2, extra
        err = capsys.readouterr().err
        assert msg in err and _one_line(err), (extra, err)
        assert not (tmp_path / "e").exists()
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "report.json").write_text("{}")
    assert main(["eval", "--checkpoint", best, "--out", str(ev)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err and (ev / "report.json").read_text() == "{}"


def test_eval_prints_autoattack_standard(run, tmp_path, capsys):
    """Its per-precision rows hold no "acc" of their own, so the console printed nothing of the costliest
    protocol (only report.json held it)."""
    out = tmp_path / "e"
    assert main(["eval", "--checkpoint", str(run[0] / "best.pt"), "--out", str(out), "--n-test", "4", "--attack",
                 "fgsm", "--protocols", "autoattack-standard", "--no-progress"]) == 0
    rows = json.load(open(out / "report.json"))["rpi"]["autoattack_standard_per_precision"]
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("autoattack_standard"))
    assert line.split()[1::4] == [f"{p}:" for p in rows] == ["2:", "4:", "8:"]
    assert [f"{100 * r['acc']:.1f}%" for r in rows.values()] == line.split()[2::4]


def test_autoattack_standard_with_attack_autoattack_is_its_diagonal_run_once(run, tmp_path, monkeypatch):
    """--attack autoattack runs AutoAttack standard at every precision; --protocols autoattack-standard
    ran the same attack at the same precisions again (identical figures, twice the costliest stage)."""
    import dwq.eval.run as R

    calls = []
    make = R.make_attack

    def counted(name, **kw):
        calls.append(name)
        return make(name, **kw)

    monkeypatch.setattr(R, "make_attack", counted)
    out = tmp_path / "e"
    assert main(["eval", "--checkpoint", str(run[0] / "best.pt"), "--out", str(out), "--n-test", "4", "--attack",
                 "autoattack", "--protocols", "paper", "autoattack-standard", "--no-progress"]) == 0
    rep = json.load(open(out / "report.json"))
    assert calls == ["autoattack"]
    assert rep["rpi"]["autoattack_standard_per_precision"] == rep["autoattack_acc"]
    assert not [s for s in rep["seconds_per_stage"] if s.startswith("autoattack-standard")]


def test_eval_that_cannot_write_its_report_prints_its_figures_and_one_line(run, tmp_path, capsys, monkeypatch):
    """A disk that fills up during a long evaluation: the report's write failed with a traceback (an
    OSError that names no file) and the figures, printed only after it, were lost."""
    import errno

    import dwq.eval

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dwq.eval, "write_report", full)
    out = tmp_path / "e"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run[0] / "best.pt"), "--out", str(out), "--n-test", "4", "--steps", "1",
                 "--protocols", "paper", "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert _one_line(printed.err) and f"--out {out}: cannot write the report (No space left on device)" in printed.err
    assert "RPI pgd_paper" in printed.out


def test_an_interrupted_eval_resumes(run, tmp_path, capsys, monkeypatch):
    """dwq eval killed in its adaptive stage lost every attack it had run (hours for a CIFAR model
    with AutoAttack). --resume reads back the finished stages and writes the uninterrupted report."""
    from dwq.eval import run as R

    flags = ["--checkpoint", str(run[0] / "best.pt"), "--n-test", "12", "--steps", "1", "--batch-size", "6",
             "--protocols", "paper", "adaptive", "--no-progress"]
    assert main(["eval", "--out", str(tmp_path / "a")] + flags) == 0
    want = json.load(open(tmp_path / "a" / "report.json"))
    assert sorted(os.listdir(tmp_path / "a")) == ["report.json"]  # the stages go once the report is written

    def killed(*a, **k):
        raise KeyboardInterrupt

    real = R.adaptive_protocol
    monkeypatch.setattr(R, "adaptive_protocol", killed)
    out = tmp_path / "b"
    capsys.readouterr()
    assert main(["eval", "--out", str(out)] + flags) == 130
    assert "the same command with --resume continues it" in capsys.readouterr().err
    assert main(["eval", "--out", str(out)] + flags) == 2
    assert "an interrupted evaluation; continue it with --resume" in capsys.readouterr().err
    assert main(["eval", "--out", str(out), "--resume"] + flags[:-1] + ["--seed", "3", "--no-progress"]) == 2
    assert "another evaluation: seed 0 there, 3 here" in capsys.readouterr().err
    monkeypatch.setattr(R, "adaptive_protocol", real)
    monkeypatch.setattr(R, "clean_accuracy", killed)  # finished before the kill: read back
    capsys.readouterr()
    assert main(["eval", "--out", str(out), "--resume"] + flags) == 0
    assert "s (this process only: it resumed an interrupted evaluation); wrote" in capsys.readouterr().out
    got = json.load(open(out / "report.json"))
    assert got["resumed"]["stages_read_back"][0] == "clean"
    drop = ("seconds", "seconds_per_stage", "resumed")
    assert {k: v for k, v in got.items() if k not in drop} == {k: v for k, v in want.items() if k not in drop}
    assert main(["eval", "--out", str(out), "--resume"] + flags) == 2
    assert "holds a finished evaluation" in capsys.readouterr().err


def test_an_eval_resume_may_add_protocols_with_their_own_settings(run, tmp_path, capsys, monkeypatch):
    """A resume adding the adaptive protocol to an FGSM evaluation was refused ("alpha 0.025 there, 0.05
    here": a placeholder ε/4 recorded where no PGD ran), and one adding AutoAttack-rand with its own
    --autoattack-n / --autoattack-steps / --eot-iter was refused on the defaults the first run recorded."""
    from dwq.eval import run as R

    flags = ["--checkpoint", str(run[0] / "best.pt"), "--n-test", "8", "--batch-size", "8", "--attack", "fgsm",
             "--no-progress"]
    out = tmp_path / "e"

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "transfer_matrix", killed)  # after the clean stage
    assert main(["eval", "--out", str(out), "--protocols", "paper"] + flags) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["eval", "--out", str(out), "--resume", "--protocols", "paper", "adaptive", "autoattack-rand",
                 "--autoattack-n", "4", "--autoattack-steps", "2", "--eot-iter", "2"] + flags) == 0, \
        capsys.readouterr().err
    rep = json.load(open(out / "report.json"))
    assert rep["resumed"]["stages_read_back"] == ["clean"] and rep["rpi"]["autoattack_rand"]["n"] == 4
    # a folder of an earlier dwq recorded a placeholder step (ε/4) where no PGD ran: still the same evaluation
    out = tmp_path / "older"
    monkeypatch.setattr(R, "transfer_matrix", killed)
    assert main(["eval", "--out", str(out), "--protocols", "paper"] + flags) == 130
    monkeypatch.undo()
    ident = json.loads((out / "stages" / "evaluation.json").read_text())
    assert ident["settings"]["alpha"] is None
    ident["settings"].update(alpha=0.025, steps=10, restarts=1)
    (out / "stages" / "evaluation.json").write_text(json.dumps(ident))
    capsys.readouterr()
    assert main(["eval", "--out", str(out), "--resume", "--protocols", "paper"] + flags) == 0, capsys.readouterr().err


def test_an_eval_stopped_by_sigterm_says_how_to_continue_and_after_its_report_not(run, tmp_path, capsys, monkeypatch):
    """SIGTERM (a scheduler's preemption) ended dwq eval silently, and a rerun was refused as a non-empty
    folder; a Ctrl-C after report.json was written (removing the stages) still offered --resume, which
    then refused the finished evaluation."""
    import signal
    import time

    import dwq.eval as E
    from dwq.eval import run as R

    flags = ["--checkpoint", str(run[0] / "best.pt"), "--n-test", "12", "--steps", "1", "--batch-size", "6",
             "--protocols", "paper", "adaptive", "--no-progress"]

    def terminated(*a, **k):
        # (without a handler SIGTERM would end pytest itself)
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "no SIGTERM handler installed"
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # (the handler raises here)

    monkeypatch.setattr(R, "adaptive_protocol", terminated)
    capsys.readouterr()
    assert main(["eval", "--out", str(tmp_path / "a")] + flags) == 143
    assert "dwq eval: terminated (SIGTERM); the same command with --resume continues it" in capsys.readouterr().err
    monkeypatch.undo()

    write_report = E.write_report

    def interrupted_after(*a, **k):  # Ctrl-C once report.json is written, before the stages are removed
        write_report(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "write_report", interrupted_after)
    assert main(["eval", "--out", str(tmp_path / "b")] + flags) == 130
    err = capsys.readouterr().err
    assert "dwq eval: interrupted" in err and "--resume" not in err, err


def test_an_eval_killed_in_its_last_writes_or_before_its_first_stage_resumes(run, tmp_path, capsys, monkeypatch):
    """report.json was written before transfer.png: killed in the heatmap, the folder looked finished
    (--resume refused it, and a run without it refused the non-empty folder) and transfer.png was never
    written. Killed before its first stage, the empty --out was refused by --resume."""
    from dwq.eval import run as R

    flags = ["--checkpoint", str(run[0] / "best.pt"), "--n-test", "6", "--steps", "1", "--protocols", "transfer",
             "--no-progress"]
    assert main(["eval", "--out", str(tmp_path / "a")] + flags) == 0
    want = json.load(open(tmp_path / "a" / "report.json"))

    def killed(*a, **k):
        raise KeyboardInterrupt

    real = R.save_heatmap
    monkeypatch.setattr(R, "save_heatmap", killed)
    out = tmp_path / "b"
    assert main(["eval", "--out", str(out)] + flags) == 130
    monkeypatch.setattr(R, "save_heatmap", real)
    assert not (out / "report.json").exists()
    assert main(["eval", "--out", str(out), "--resume"] + flags) == 0
    assert sorted(os.listdir(out)) == ["report.json", "transfer.json", "transfer.png"]
    drop = ("seconds", "seconds_per_stage", "resumed")
    got = json.load(open(out / "report.json"))
    assert {k: v for k, v in got.items() if k not in drop} == {k: v for k, v in want.items() if k not in drop}
    (out / "stages").mkdir(), (out / "stages" / "clean.pt").write_text("")  # killed before removing them
    capsys.readouterr()
    assert main(["eval", "--out", str(out), "--resume"] + flags) == 2
    err = capsys.readouterr().err
    assert "holds a finished evaluation" in err and "removed stages, which a kill after report.json" in err
    assert sorted(os.listdir(out)) == ["report.json", "transfer.json", "transfer.png"]
    (tmp_path / "c").mkdir()  # what a kill between creating --out and the first stage leaves
    assert main(["eval", "--out", str(tmp_path / "c"), "--resume"] + flags) == 0
    assert (tmp_path / "c" / "report.json").is_file()
    (tmp_path / "f").write_text("")
    capsys.readouterr()
    assert main(["eval", "--out", str(tmp_path / "f"), "--resume"] + flags) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_an_eval_whose_stage_cannot_be_saved_says_one_line_and_resumes(run, tmp_path, capsys, monkeypatch):
    """A full disk while a stage was saved ended dwq eval with a traceback (the OSError of the write)."""
    import errno

    from dwq.eval import stages

    real, saved = stages.torch_save_atomic, []

    def full_after_one(path, state):
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, state)
        saved.append(path)

    monkeypatch.setattr(stages, "torch_save_atomic", full_after_one)
    out = tmp_path / "e"
    flags = ["--checkpoint", str(run[0] / "best.pt"), "--out", str(out), "--n-test", "4", "--steps", "1",
             "--protocols", "paper", "--no-progress"]
    capsys.readouterr()
    assert main(["eval"] + flags) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "No space left on device" in err and "--resume" in err
    monkeypatch.undo()
    assert main(["eval", "--resume"] + flags) == 0 and (out / "report.json").is_file()


def test_an_eval_or_demo_folder_in_use_is_refused(run, tmp_path, capsys):
    """dwq eval and dwq demo took no lock: a --resume beside the process it resumes (a requeued job)
    computed the same stages twice and wrote over the other's files. Refused before it writes."""
    import fcntl

    ev, demo_out = tmp_path / "e", tmp_path / "d"
    for folder, name in ((ev / "stages", "evaluation.json"), (demo_out, "demo_run.json")):
        folder.mkdir(parents=True)
    (demo_out / "demo_run.json").write_text('{"settings": {}}')
    for out, argv in ((ev, ["eval", "--checkpoint", str(run[0] / "best.pt"), "--n-test", "4", "--steps", "1",
                            "--protocols", "paper", "--no-progress"]),
                      (demo_out, ["demo", "--epochs", "1", "--train-images", "64", "--n-test", "8",
                                  "--autoattack-n", "0", "--no-progress"])):
        before = sorted(p.name for p in out.rglob("*"))
        holder = os.open(out, os.O_RDONLY)  # what the running process holds
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)
            capsys.readouterr()
            # (and the same command again, without --resume: it was told the running eval was interrupted)
            for resume in (["--resume"], [] if out == ev else ["--resume"]):
                assert main(argv[:1] + ["--out", str(out)] + resume + argv[1:]) == 2
                err = capsys.readouterr().err
                assert _one_line(err) and f"--out {out}: another process (a dwq command still running?)" in err, err
                assert sorted(p.name for p in out.rglob("*")) == before
        finally:
            os.close(holder)


def test_trained_checkpoint_loads_in_python_old_and_new(run, tmp_path):
    from dwq.train import load_trained_model
    out, _ = run
    model, ck = load_trained_model(str(out / "best.pt"))
    assert dwq.precision_set(model) == [2, 4, 8] and not model.training and ck["epoch"] == 1
    x = torch.rand(3, 1, 28, 28)
    with dwq.precision(model, "4"):
        y4 = model(x)
    # a checkpoint written before the one spelling (None / ints / [w, a] lists) still loads
    old = torch.load(out / "best.pt", weights_only=True)
    old["config"]["extra"]["model_precisions"] = [2, 4, 8]
    torch.save(old, tmp_path / "old.pt")
    m2, _ = load_trained_model(str(tmp_path / "old.pt"))
    with dwq.precision(m2, 4):
        assert torch.equal(m2(x), y4)


def test_checkpoint_of_another_model_is_refused(run, tmp_path, capsys):
    out, _ = run
    ck = torch.load(out / "last.pt", weights_only=True)
    ck["config"]["extra"]["width"] = 16  # claims another architecture than its weights
    torch.save(ck, tmp_path / "other.pt")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "other.pt"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "do not fit" in err and _one_line(err)


def test_console_entry_point_runs_without_traceback():
    r = subprocess.run([sys.executable, "-m", "dwq.cli.main", "eval", "--checkpoint", "/nonexistent.pt",
                        "--out", "/tmp/dwq-never-written"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists("/tmp/dwq-never-written")


def test_demo_smoke(tmp_path, capsys, monkeypatch):
    """The demo's plumbing on a tiny budget (its numbers are meaningless here; see docs/workflow.md)."""
    from dwq.cli import demo

    monkeypatch.setattr(demo, "AA_STEPS", 2)  # AutoAttack's 100 steps x 20 EOT samples are for real runs
    monkeypatch.setattr(demo, "AA_EOT", 2)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "128", "--n-test", "40",
                 "--autoattack-n", "8", "--no-progress"]) == 0
    rep = json.load(open(out / "report.json"))
    for key in ("clean_acc", "rpi", "transfer_matrix", "bitops", "seconds", "findings", "models", "autoattack"):
        assert key in rep
    # what else its figures depend on (recorded in the resume settings alone, which the demo removes at its end)
    assert rep["dwq_version"] == dwq.__version__ and rep["torch"] == torch.__version__
    assert rep["kernels"] == f"cpu {torch.backends.cpu.get_cpu_capability()}"
    assert {"clean", "pgd_paper", "pgd_adaptive", "pgd_paper_sampled", "autoattack_rand"} <= set(rep["rpi"])
    assert set(rep["models"]) == {"fp", "fixed4", "rpt"}
    assert (out / "transfer_rpt.png").is_file()
    printed = capsys.readouterr().out
    assert "RPI over" in printed and "| rpt |" in printed
    # the tables, findings and README rows come from report.json alone
    assert demo.findings(rep) == rep["findings"]
    assert demo.markdown_rows(rep) in printed
    aa = rep["rpi"]["autoattack_rand"]
    assert aa["n"] == 8 and aa["steps"] == 2 and aa["eot_iter"] == 2
    assert rep["threads"] == 2  # the figures depend on it: a rerun needs it
    m = rep["models"]["rpt"]
    for key in ("epsilon", "alpha", "steps", "restarts", "seed", "protocols"):
        assert key in m and key in m["transfer_matrix"] or key == "protocols"


def _figures(rep):
    """A demo report without its timings (wall clock: they differ between any two runs) and without
    what a resume took over (which says how far its timings reach)."""
    if isinstance(rep, dict):
        return {k: _figures(v) for k, v in rep.items() if "seconds" not in k and k not in ("latency_ms", "resumed")}
    return [_figures(v) for v in rep] if isinstance(rep, list) else rep


def test_demo_resume_gives_the_uninterrupted_figures(tmp_path, capsys, monkeypatch):
    """An interrupted demo lost everything (it could not resume). Killed in the second model's training,
    --resume keeps the first model, resumes the second from its last epoch and starts the third: the
    report equals an uninterrupted run's but for timings, and the resume files are gone."""
    from dwq.train import loop

    flags = ["--epochs", "2", "--train-images", "64", "--n-test", "16", "--autoattack-n", "0", "--no-progress"]
    assert main(["demo", "--out", str(tmp_path / "a")] + flags) == 0
    want = json.load(open(tmp_path / "a" / "report.json"))

    saves = []
    real_save = loop.save_checkpoint

    def killed_after_three(path, state):  # fp epochs 1 and 2, fixed4 epoch 1, then a Ctrl-C
        real_save(path, state)
        saves.append(os.path.basename(path))
        if saves.count("last.pt") == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", killed_after_three)
    out = tmp_path / "b"
    assert main(["demo", "--out", str(out)] + flags) == 130
    monkeypatch.undo()
    assert (out / "result_fp.json").is_file() and not (out / "report.json").exists()
    capsys.readouterr()
    assert main(["demo", "--out", str(out)] + flags) == 2  # without --resume: refused, pointing at it
    assert "continue it with --resume" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--seed", "1", "--resume"] + flags) == 2
    assert "seed 0 there, 1 here" in capsys.readouterr().err
    # killed again in the last model's evaluation (its EOT-PGD stage, after the clean and PGD stages)
    import dwq.attacks as A
    from dwq.eval import protocols as P

    calls = {"pgd": 0, "eot_pgd": 0}

    def count(module, name, kill_at=None):
        real = getattr(module, name)

        def fn(*a, **k):
            calls[name] += 1
            if calls[name] == kill_at:
                raise KeyboardInterrupt
            return real(*a, **k)
        monkeypatch.setattr(module, name, fn)

    count(P, "eot_pgd", kill_at=2)  # fixed4's EOT-PGD, then rpt's
    assert main(["demo", "--out", str(out), "--resume"] + flags) == 130
    monkeypatch.undo()
    printed = capsys.readouterr().out
    assert "[fp] kept from the interrupted run" in printed and "[fixed4] resuming its training after epoch 1" in printed
    assert {"clean.pt", "pgd_at_2.pt", "pgd_at_4.pt", "pgd_at_8.pt"} <= set(os.listdir(out / "stages_rpt"))
    calls.update(pgd=0, eot_pgd=0)
    count(A, "pgd"), count(P, "eot_pgd")
    assert main(["demo", "--out", str(out), "--resume"] + flags) == 0
    monkeypatch.undo()
    # (it said "resuming its training after epoch 2" of 2: no training was left, its evaluation was)
    assert "[rpt] trained before the interruption: resuming its evaluation" in capsys.readouterr().out
    assert calls == {"pgd": 0, "eot_pgd": 1}  # its finished stages read back, not run
    got = json.load(open(out / "report.json"))
    assert _figures(got) == _figures(want)
    # its timings count the last process only, which the report says
    assert want["resumed"] == [] and got["resumed"] == [
        "fp: kept", "fixed4: kept", "rpt: trained before the interruption; its evaluation resumed"]
    assert got["models"]["rpt"]["resumed"]["stages_read_back"][:2] == ["clean", "pgd at 2"]
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "a"))
    # what a kill between writing report.json and removing the resume files leaves: removed by --resume
    finished = sorted(os.listdir(out))
    (out / "demo_run.json").write_text("{}"), (out / "result_rpt.json").write_text("{}")
    (out / "stages_rpt").mkdir(), (out / "stages_rpt" / "clean.pt").write_text("")
    assert main(["demo", "--out", str(out), "--resume"] + flags) == 2
    err = capsys.readouterr().err
    assert "holds a finished demo" in err and "removed demo_run.json, result_rpt.json, stages_rpt" in err
    assert sorted(os.listdir(out)) == finished
    assert main(["demo", "--out", str(out), "--resume"] + flags) == 2
    err = capsys.readouterr().err
    assert "holds a finished demo" in err and "removed" not in err


def test_demo_resume_restarts_a_model_killed_before_its_first_epoch(tmp_path):
    """No last.pt: what the model's training wrote is removed, so that its Trainer starts on a fresh folder."""
    from dwq.cli.demo_resume import resume_training

    class NeverSaved:
        def resume(self):
            return False

    (tmp_path / "rpt").mkdir()
    (tmp_path / "rpt" / "config.json").write_text("{}")
    assert resume_training(NeverSaved(), str(tmp_path), "rpt") is None
    assert not (tmp_path / "rpt").exists()


def test_demo_killed_before_it_wrote_its_settings_resumes(tmp_path, capsys, monkeypatch):
    """A kill while demo_run.json was written left its temporary file alone: --resume refused the folder as
    no interrupted demo and a run without --resume as not empty, so the demo could not go on."""
    from dwq.train import Trainer

    def killed(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", killed)  # (no training: the folder is all this test looks at)
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_run.json.tmp").write_text('{"sett')  # (the name of dwq before 2026-12)
    (out / "demo_run.json.host.123.0a1b2c3d.tmp").write_text('{"sett')
    flags = ["--epochs", "1", "--train-images", "64", "--n-test", "16", "--autoattack-n", "0", "--no-progress"]
    assert main(["demo", "--out", str(out), "--resume"] + flags) == 130
    assert sorted(os.listdir(out)) == ["demo_run.json"]
    assert json.load(open(out / "demo_run.json"))["settings"]["epochs"] == 1
    (tmp_path / "f").write_text("")
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path / "f"), "--resume"] + flags) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_demo_findings_say_the_replica_batch_from_the_report():
    """The sampled replica draws one precision per 100 images; 950 images make 9 batches of 100 and
    one of 50, which the findings said was "one per 95 images" (n_test // draws)."""
    from dwq.cli import demo

    rep = kept_report()
    kept = demo.findings(rep)
    # the run's own findings, but for the one interval diff_ci's variance floor (2026-12-06) widened: the
    # run wrote AutoAttack expected minus EOT-PGD as [-7.8, -2.6], the floor makes it [-8.0, -2.4]
    widened = [f.replace("-5.2 points [-8.0, -2.4]", "-5.2 points [-7.8, -2.6]") for f in kept]
    assert widened != kept and widened == rep["findings"]
    assert sum("(10 draws, one per 100 images)" in f for f in kept) == 3
    rep["n_test"] = 950
    for m in rep["models"].values():
        m["rpi"]["pgd_paper_sampled"]["batches"]["sizes"] = [100] * 9 + [50]
    assert sum("(10 draws, one per 100 images, the last of 50)" in f for f in demo.findings(rep)) == 3


def test_demo_rows_count_the_attacks_and_precisions_of_the_report():
    """The README rows come from the report alone: the set's size, not the module's SET, names the
    attacks ("best of P + 1") and sizes the same-images interval."""
    from dwq.cli import demo
    from dwq.eval import mean_ci

    rep = kept_report()
    assert "best of 6 attacks" in demo.markdown_rows(rep)
    rep["rpi_set"] = [2, 4, 8]
    rows = demo.markdown_rows(rep)
    same = rep["models"]["rpt"]["per_image"]["adaptive"][:rep["models"]["rpt"]["rpi"]["autoattack_rand"]["n"]]
    assert "best of 4 attacks" in rows and "best of 6" not in rows + demo.table(rep) + " ".join(demo.findings(rep))
    assert rows.endswith(demo._pct(mean_ci(torch.tensor(same), 3)) + " |")


def test_demo_rows_show_the_worst_case_over_every_attack():
    """The table showed EOT-PGD's worst case alone, which counted images another attack of the same run
    fools at some precision as robust; the stricter figure is a column now, and a report from before
    it existed prints a dash rather than failing."""
    from dwq.cli import demo

    rep = kept_report()
    rows = demo.markdown_rows(rep).splitlines()
    for name, m in rep["models"].items():
        wca, eot = m["rpi"]["worst_case_of_attacks"], m["rpi"]["pgd_adaptive_worst_case"]
        assert wca["acc"] < eot["acc"]
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert f"| {demo._pct(eot)} | {demo._pct(wca)} |" in row
        assert f"{demo._fmt(wca)}" in demo.table(rep)
    for m in rep["models"].values():
        del m["rpi"]["worst_case_of_attacks"], m["per_image"]["worst_case_of_attacks"]
    old_rows = [r for r in demo.markdown_rows(rep).splitlines() if r.split(" | ")[0][2:] in rep["models"]]
    assert len(old_rows) == 4 and all(r.count(" | - | ") == 1 for r in old_rows[:3])  # (the 4th: AutoAttack's)
    assert not any("every attack run" in f for f in demo.findings(rep))


def test_demo_reprint_of_a_bad_file_is_one_line(tmp_path, capsys):
    """python -m dwq.cli.demo REPORT (the documented way to reprint a past run) gave tracebacks for a
    missing, truncated or foreign file; the kept report still prints its README rows."""
    (tmp_path / "cut.json").write_text(open(os.path.join(os.path.dirname(__file__), "..", "docs", "demo",
                                                         "report.json")).read()[:5000])
    (tmp_path / "config.json").write_text('{"epochs": 6}')
    rep = kept_report()
    del rep["models"]["fp"]["per_image"]  # the top-level keys checked, a KeyError traceback from the tables
    (tmp_path / "partial.json").write_text(json.dumps(rep))
    code = ("import runpy, sys\nfor a in sys.argv[1:]:\n    sys.argv = ['demo', a]\n    try:\n"
            "        runpy.run_module('dwq.cli.demo', run_name='__main__')\n    except SystemExit as e:\n"
            "        print('rc', e.code, flush=True)\n")
    cases = {"none.json": "cannot read {}: No such file or directory", "cut.json": "cannot read {}: ",
             "config.json": "{} is not a report.json of dwq demo",
             "partial.json": "{} is not a complete report.json of dwq demo (no field 'per_image')"}
    r = subprocess.run([sys.executable, "-c", code] + [str(tmp_path / f) for f in cases], capture_output=True,
                       text=True, timeout=120)
    assert r.stdout.split() == ["rc", "2"] * 4 and "Traceback" not in r.stderr, r.stderr
    err = r.stderr.splitlines()
    assert len(err) == 4 and all(line.startswith("python -m dwq.cli.demo: error: ") for line in err), err
    for line, (f, msg) in zip(err, cases.items()):
        assert msg.format(tmp_path / f) in line, line
    from dwq.cli import demo

    kept = KEPT_REPORT
    assert demo.reprint([kept]) == 0
    assert demo.markdown_rows(json.load(open(kept))) in capsys.readouterr().out


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback():
    """``dwq ... | head -1`` and ``python -m dwq.cli.demo REPORT | head -1``: the pipe is closed before
    the command writes (it is still importing torch), so its first write fails with EPIPE."""
    kept = KEPT_REPORT
    bench = ("import sys\nfrom dwq.cli import deploy, main\n"
             "deploy.COMMANDS['bench'] = lambda a: print('x' * 100000, flush=True)\n"
             "sys.exit(main.main(['bench', '--model', 'm.safetensors']))\n")
    for argv in ([sys.executable, "-c", bench], [sys.executable, "-m", "dwq.cli.demo", kept]):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.close()
        err = p.stderr.read()
        assert p.wait(timeout=120) == 1 and err == "", (argv[1:], err)


def test_the_cli_package_imports_by_every_spelling():
    # `from dwq.cli import main` recursed without end (the lazy "main" name was also the submodule's)
    code = ("from dwq.cli import build_parser\nfrom dwq.cli import main\nimport dwq.cli\n"
            "assert main.main is main.build_parser.__globals__['main'] and dwq.cli.build_parser is build_parser\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_library_errors_are_one_line_unless_dwq_traceback(monkeypatch, capsys):
    from dwq.cli import deploy

    def fail(a):
        raise ValueError()  # (an empty message: the line names the exception's type)

    monkeypatch.setattr(deploy, "COMMANDS", dict(deploy.COMMANDS, bench=fail))
    monkeypatch.delenv("DWQ_TRACEBACK", raising=False)
    assert main(["bench", "--model", "m.safetensors"]) == 2
    assert capsys.readouterr().err == "dwq bench: error: ValueError\n"
    monkeypatch.setenv("DWQ_TRACEBACK", "0")  # (any non-empty value showed the traceback)
    assert main(["bench", "--model", "m.safetensors"]) == 2
    capsys.readouterr()
    monkeypatch.setenv("DWQ_TRACEBACK", "1")
    with pytest.raises(ValueError):
        main(["bench", "--model", "m.safetensors"])


@pytest.mark.parametrize("argv, msg", [
    # argparse's top level reported a subcommand's unknown flag as "dwq: error", pointing to dwq --help
    (["train", "--out", "o", "--batchsize", "64"], "dwq train: error: unrecognized arguments: --batchsize 64 "
                                                    "(see dwq train --help)"),
    # a prefix picked a flag silently (--cuda was --cuda-graphs)
    (["train", "--out", "o", "--cuda"], "dwq train: error: unrecognized arguments: --cuda"),
    # the last list won: --precisions 4 8 ... --precisions 8 evaluated 8 alone
    (["eval", "--checkpoint", "c", "--out", "o", "--precisions", "4", "8", "--precisions", "8"],
     "dwq eval: error: --precisions given twice; give all its values once"),
    (["bench", "--model", "m", "--batch-size", "1", "--batch-size", "8"], "--batch-size given twice"),
    # 10^20 epochs trained on; a batch size past int64 was a TypeError traceback
    # (--data-dir: were the bound lost, the run would stop at that flag's own error, not train 10^20 epochs)
    (["train", "--out", "o", "--epochs", "99999999999999999999", "--data-dir", "/nonexistent"],
     "--epochs: must be at most 2147483647"),
])
def test_parser_errors_name_the_subcommand_and_refuse_what_would_be_dropped(capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and _one_line(err), err


def test_a_bad_cpu_isa_is_one_line_at_start(monkeypatch, capsys, tmp_path):
    """DWQ_CPU_ISA=foo gave a traceback from the first op (train, eval), or an error blamed on the input
    shape (bench) or on a layer's weights (eval --integer)."""
    from dwq.ops import HAS_EXT
    if not HAS_EXT:
        pytest.skip("dwq._C (the compiled extension) is not importable: no CPU kernel paths to choose")
    monkeypatch.setenv("DWQ_CPU_ISA", "foo")
    # (--data-dir: without the check the run stops at that flag's error, not after training)
    assert main(["train", "--out", str(tmp_path / "o"), "--epochs", "1", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "dwq train: error: DWQ_CPU_ISA='foo': expected one of this CPU's kernel paths scalar" in err and \
        _one_line(err) and not (tmp_path / "o").exists()


def test_demo_names_an_interrupted_run_in_its_out_folder(tmp_path, capsys):
    """Any folder without report.json was called an interrupted demo, and --resume then said it was
    none: a demo writes demo_run.json before anything else, and only such a folder is one."""
    (tmp_path / "fp").mkdir()  # a folder of something else (a dwq train run, ...)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "an interrupted demo" not in capsys.readouterr().err
    (tmp_path / "demo_run.json").write_text('{"settings": {}}')  # what a demo cut short leaves: no report.json
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "holds no report.json: an interrupted demo" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{}")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "holds no report.json" not in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, device):
    """A real kill -9 of `dwq train` mid-run, then `--resume --out` with the other flags from the
    checkpoint: same final weights as a run never killed. On CUDA with --deterministic. --device is
    given again: a resume continues on this machine's default device (cuda where there is one), so
    without it the cpu case resumed on the GPU of a GPU machine (seen on the H200)."""
    import signal
    import time

    argv = [sys.executable, "-m", "dwq.cli.main"] + TRAIN[:4] + ["12"] + TRAIN[5:] + ["--device", device]
    if device == "cuda":
        argv.append("--deterministic")
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run(argv + ["--out", str(full)], capture_output=True, timeout=300).returncode == 0
    p = subprocess.Popen(argv + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while time.time() < deadline and not (cut / "last.pt").exists():  # a checkpoint to resume from
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sum(1 for _ in open(cut / "metrics.jsonl"))
    assert 1 <= done < 12, "the kill came too late to test anything"
    r = subprocess.run([sys.executable, "-m", "dwq.cli.main", "train", "--out", str(cut), "--resume",
                        "--device", device], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a = torch.load(full / "last.pt", weights_only=True)["model"]
    b = torch.load(cut / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [json.loads(ln)["epoch"] for ln in open(cut / "metrics.jsonl")] == list(range(1, 13))  # each once


def test_compile_and_deterministic_flags_are_recorded_and_may_change_on_resume():
    from dwq.cli.common import given_flags
    from dwq.cli.main import build_parser
    from dwq.cli.train import RESUME_MAY_CHANGE, resolve_flags

    argv = ["train", "--out", "x", "--compile", "--device", "cpu"]
    a = build_parser().parse_args(argv)
    f, _ = resolve_flags(a, given_flags(build_parser(), argv))
    assert f["compile"] is True and f["deterministic"] is False
    assert "compile" in RESUME_MAY_CHANGE and "deterministic" in RESUME_MAY_CHANGE  # how the run computes, not what
    argv = ["train", "--out", "x", "--deterministic", "--device", "cpu"]
    f, _ = resolve_flags(build_parser().parse_args(argv), given_flags(build_parser(), argv))
    assert f["deterministic"] is True


def test_resume_can_turn_off_compile_deterministic_and_no_progress(run, tmp_path, capsys):
    """--resume restores the run's flags, and these are store_true flags: a run with --compile could not
    be resumed without it (on a machine where compiling fails), nor --deterministic and --no-progress
    be dropped."""
    out = _copy(run, tmp_path)
    # as a run started with them records them
    _rewrite_recorded(out, lambda config: config["extra"]["flags"].update(compile=True, deterministic=True))
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-compile", "--no-deterministic",
                 "--progress"]) == 0
    flags = json.load(open(out / "config.json"))["extra"]
    assert flags["flags"]["compile"] is False and flags["flags"]["deterministic"] is False
    assert flags["flags"]["no_progress"] is False
    assert flags["history"][-1]["changed"] == {"epochs": [1, 2], "compile": [True, False],
                                               "deterministic": [True, False], "no_progress": [True, False]}


def test_torchrun_one_process_runs_ddp_and_equals_a_plain_run(tmp_path):
    """torchrun --nproc_per_node=1 joins a process group (gloo here, NCCL on a GPU) and trains through
    DistributedDataParallel; with one rank the all-reduce is the identity, so the weights equal a plain run's."""
    plain, ddp = tmp_path / "plain", tmp_path / "ddp"
    argv = ["-m", "dwq.cli.main"] + TRAIN + ["--device", "cpu"]
    r = subprocess.run([sys.executable] + argv + ["--out", str(plain)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] + argv
                       + ["--out", str(ddp)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ranks      1 process, gloo backend, DistributedDataParallel" in r.stdout
    a = torch.load(plain / "last.pt", weights_only=True)["model"]
    b = torch.load(ddp / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


_FAIL_ON_RANK_1 = """
import sys
from dwq.data import DatasetError
from dwq.train import loop
from dwq.cli.main import main
orig = loop.Trainer.train_batch
def train_batch(self, *a, **k):
    if self.step == 1 and self.rank == 1:
        raise DatasetError("mnist5k: an unreadable image (injected on rank 1)")
    return orig(self, *a, **k)
loop.Trainer.train_batch = train_batch
sys.exit(main(sys.argv[1:]))
"""


def test_a_ddp_run_stopped_by_one_rank_before_an_epoch_is_cleaned_and_said_in_one_line(tmp_path):
    """Rank 1 failed (an unreadable image only it reads) before the first epoch ended: it said the same
    command starts afresh, but only rank 0 may remove files, and rank 0 died in DDP's broadcast with a
    gloo traceback: config.json stayed and the same command was refused."""
    script, out = tmp_path / "fail.py", tmp_path / "run"
    script.write_text(_FAIL_ON_RANK_1)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script)] + TRAIN + ["--device", "cpu", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode != 0
    assert "injected on rank 1); no epoch completed, so there is nothing to resume" in r.stderr, r.stderr
    # Rank 0 ends one of two ways, by which comes first: it finds its peer gone, or torchrun's agent, having
    # seen rank 1 exit, sends it SIGTERM (seen once in a clean-clone CI run, at 17:41 on 2026-12-06); either
    # way it says so in one line and removes what the run wrote. A SIGTERM that came while rank 0 handled its
    # lost peer replaced the reason by a bare "terminated (SIGTERM)" (CI run of 2026-12-07, 17:32): it is now
    # ignored (test_train_cli_stop_kept_whole_under_a_second_sigterm.py)
    lost = "dwq train: error: another process of this run stopped, so this one lost its peers"
    terminated = ("dwq train: terminated (SIGTERM) before the first epoch completed; nothing to resume, and what "
                  f"the run wrote in {out} was removed (the same command starts afresh)")
    assert lost in r.stderr or terminated in r.stderr, r.stderr
    assert "[rank0]: Traceback" not in r.stderr, r.stderr
    assert not out.exists() or os.listdir(out) == [], os.listdir(out)


def test_resume_takes_the_network_in_the_spelling_the_run_was_started_with(run, tmp_path, capsys):
    """The usual requeue is the starting command plus --resume. A network given in a reference spelling
    ("SmallCNN", as the README's "PreActResNet18") is recorded as its zoo key, and is the same flag
    value, not another one; an unknown name still differs."""
    out = _copy(run, tmp_path)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--network", "nonet"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--network nonet (run: small_cnn)" in err, err
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--network", "SmallCNN"]) == 0, \
        capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in open(out / "metrics.jsonl")] == [1, 2]


def test_demo_autoattack_n_0_skips_autoattack_as_its_help_says(tmp_path, capsys):
    """--autoattack-n 0 "skips it" (the help): evaluate refuses autoattack_n=0 (it once meant all
    images), so the demo failed after training its first model."""
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "64", "--n-test", "8",
               "--autoattack-n", "0", "--no-progress", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    rep = json.load(open(out / "report.json"))
    assert "autoattack_rand" not in rep["rpi"] and rep["autoattack"]["n"] == 0
    assert "AutoAttack rand" not in capsys.readouterr().out


@pytest.mark.slow
def test_resume_does_not_need_the_pretrained_file_again(tmp_path, capsys):
    """A resume takes its weights from last.pt; it read the --pretrained file again (100 MB for ResNet-50)
    and, with the file gone (another node's scratch), could not continue at all: the path is a flag the
    resume may not change."""
    import numpy as np
    from PIL import Image

    from conftest import torchvision_or_skip

    tv = torchvision_or_skip("--pretrained takes a torchvision ResNet-50 state_dict")
    for split in ("train", "val"):
        for c in ("n01", "n02"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "data" / split / c / "0.JPEG")
    pre = tmp_path / "pre.pth"
    torch.save(tv.models.resnet50().state_dict(), pre)
    out = str(tmp_path / "r")
    assert main(["train", "--out", out, "--dataset", "imagenet", "--data-dir", str(tmp_path / "data"), "--network",
                 "resnet50", "--pretrained", str(pre), "--attack", "none", "--val-size", "0", "--train-subset", "2",
                 "--batch-size", "2", "--epochs", "1", "--workers", "0", "--no-progress"]) == 0
    # two class folders are labelled 0 and 1, which the torchvision head holds as tench and goldfish: said
    said = " ".join(capsys.readouterr().out.split())
    assert f"--pretrained: {tmp_path / 'data'} has 2 class folders, labelled 0..1 by position" in said, said
    pre.unlink()
    assert main(["train", "--resume", "--out", out, "--epochs", "2", "--workers", "0"]) == 0, capsys.readouterr().err
    assert json.load(open(os.path.join(out, "config.json")))["extra"]["flags"]["pretrained"] == str(pre)


def test_a_bad_pretrained_file_is_one_line(tmp_path, capsys):
    """resnet50's RuntimeError for a damaged or mismatched --pretrained file, and its TypeError for a file
    holding no state_dict (a dwq checkpoint, a list), ended the run in a traceback."""
    import numpy as np
    from PIL import Image

    from conftest import torchvision_or_skip

    torchvision_or_skip("the ImageNet folder dataset")
    for split in ("train", "val"):
        for c in ("n01", "n02"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "data" / split / c / "0.JPEG")
    (tmp_path / "garbage.pth").write_text("garbage")
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "shape.pth")
    torch.save({"model": {"conv1.weight": torch.zeros(3)}, "epoch": 1}, tmp_path / "checkpoint.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for name, why in (("garbage.pth", "is not a loadable torchvision state_dict (found a file starting with"),
                      ("shape.pth", "shape mismatch for 'conv1.weight'"),
                      ("checkpoint.pth", "entry 'model' is a dict (a whole checkpoint? pass the state_dict inside it)"),
                      ("list.pth", "expected a state_dict (dict of tensors), got list")):
        out = tmp_path / name.replace(".pth", "")
        assert main(["train", "--out", str(out), "--dataset", "imagenet", "--data-dir", str(tmp_path / "data"),
                     "--network", "resnet50", "--pretrained", str(tmp_path / name), "--attack", "none", "--val-size",
                     "0", "--train-subset", "2", "--batch-size", "2", "--epochs", "1", "--workers", "0",
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and f"--pretrained {tmp_path / name}: " in err and why in err, err
        assert not out.exists() or not any(out.iterdir())  # (the same command runs again once fixed)


def test_a_missing_checkpoint_of_a_run_folder_names_the_ones_it_holds(tmp_path, capsys):
    """A run without validation has no best.pt: "does not exist" alone left the user to guess that
    last.pt (or best_test_reference.pt) is there."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {run / 'best.pt'} does not exist; {run} holds {run / 'last.pt'}" in err and _one_line(err), err


def test_a_demo_whose_disk_fills_up_is_one_line(tmp_path, capsys, monkeypatch):
    """dwq train and eval say a full disk in one line; the demo was a traceback."""
    import errno

    from dwq.train import Trainer

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trainer, "fit", full)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "64", "--n-test", "8",
                 "--autoattack-n", "0", "--no-progress", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: No space left on device; once fixed, continue it: the same command with --resume" in err
    assert _one_line(err), err


def test_resume_refusals_speak_of_the_run_not_of_flags_not_given(tmp_path):
    """A resume takes the run's flags: an --amp run resumed on a CPU machine was told "--amp works on
    CUDA only" as if it had been given, and --data-dir on a mnist5k run was told "give --dataset too",
    which the resume then refuses as a changed flag."""
    from dwq.cli.common import CLIError
    from dwq.cli.train_flags import resolve_flags

    out = str(tmp_path / "r")
    if not torch.cuda.is_available():
        a = build_parser().parse_args(["train", "--out", out, "--resume", "--amp", "--device", "cpu"])
        with pytest.raises(CLIError, match=f"--resume: {out} was trained with --amp .* resume it where CUDA is"):
            resolve_flags(a, frozenset({"out", "resume", "device"}))  # amp: the run's, not given
    a = build_parser().parse_args(["train", "--out", out, "--resume", "--data-dir", str(tmp_path)])
    with pytest.raises(CLIError, match="mnist5k is embedded: this run trains on mnist5k, drop --data-dir"):
        resolve_flags(a, frozenset({"out", "resume", "data_dir"}))


def test_the_next_command_of_a_run_in_the_current_folder_names_it(tmp_path, capsys, monkeypatch):
    """--out . suggested the hidden folder ".-eval"."""
    run = tmp_path / "r"
    run.mkdir()
    monkeypatch.chdir(run)
    assert main(["train", "--out", ".", "--attack", "none", "--val-size", "10", "--val-pgd-steps", "0",
                 "--train-subset", "10", "--batch-size", "10", "--epochs", "1", "--width", "8", "--no-progress"]) == 0
    assert f"next: dwq eval --checkpoint ./best.pt --out {run}-eval" in capsys.readouterr().out


def test_the_next_command_quotes_a_folder_with_spaces(tmp_path, capsys):
    """The printed command must run as printed: unquoted, "my run/best.pt" was two arguments."""
    import shlex

    out = str(tmp_path / "my run")
    assert main(["train", "--out", out, "--attack", "none", "--val-size", "10", "--val-pgd-steps", "0",
                 "--train-subset", "10", "--batch-size", "10", "--epochs", "1", "--width", "8", "--no-progress"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("next: "))
    assert shlex.split(line)[1:] == ["dwq", "eval", "--checkpoint", f"{out}/best.pt", "--out", f"{out}-eval"]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_unreadable_training_image_is_one_line_and_the_command_reruns(tmp_path, capsys, workers):
    """A truncated or non-image file in an ImageNet folder was PIL's traceback (from a worker, wrapped in
    another), and the config.json left behind refused the same command once the file was fixed."""
    import numpy as np
    from PIL import Image

    from conftest import torchvision_or_skip

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    for split in ("train", "val"):
        for c in ("n01", "n02"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for i in range(3 if split == "train" else 1):
                Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "data" / split / c / f"{i}.JPEG")
    bad = tmp_path / "data" / "train" / "n02" / "9.JPEG"
    bad.write_bytes(b"half an image")
    out = str(tmp_path / "r")
    cmd = ["train", "--out", out, "--dataset", "imagenet", "--data-dir", str(tmp_path / "data"), "--network",
           "PreActResNet18", "--attack", "none", "--val-size", "0", "--batch-size", "3", "--epochs", "1",
           "--workers", workers, "--no-progress"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"cannot read the image {bad} (UnidentifiedImageError" in err, err
    # (the label check reads one image before the folder is made, a good one here: the bad one is read in the
    # epoch, after config.json was written)
    assert "no epoch completed, so there is nothing to resume" in err and os.listdir(out) == [], os.listdir(out)
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(bad)
    assert main(cmd) == 0, capsys.readouterr().err


def test_the_pgd_step_defaults_to_a_quarter_of_epsilon(tmp_path, capsys):
    """A fixed 2/255 left PGD-7 0.055 from its start at ε 0.3: a training attack far weaker than the ε
    the run records. ε/4 is the reference's 2/255 at its 8/255; --reference keeps 2/255 whatever ε."""
    base = ["--train-subset", "32", "--batch-size", "32", "--epochs", "1", "--attack-iters", "1", "--val-size", "0",
            "--width", "8", "--no-progress"]
    for out, extra, alpha in (("a", ["--epsilon", "0.3"], 0.075), ("b", [], 2 / 255)):
        assert main(["train", "--out", str(tmp_path / out)] + extra + base) == 0
        assert json.load(open(tmp_path / out / "config.json"))["extra"]["flags"]["alpha"] == pytest.approx(alpha)
    assert "attack step 0.075 (ε/4, the pgd default)" in " ".join(capsys.readouterr().out.split())


def test_a_ddp_run_is_told_to_continue_under_its_launcher():
    """A run of several processes stopped (SIGTERM, a full disk) said "continue with: dwq train --resume
    ...": run as printed, that trained on one process. It now says to launch it as the run was."""
    from dwq.cli.train import _launched

    assert _launched("dwq train --resume --out r", 1) == "dwq train --resume --out r"
    assert _launched("dwq train --resume --out r", 4) == (
        "dwq train --resume --out r, launched by torchrun with 4 processes as this run was")


def _image_folder_dataset(root, splits=("train", "val"), classes=("n01", "n02")):
    import numpy as np
    from PIL import Image

    for split in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((40, 48, 3), 40 * i, np.uint8)).save(root / split / c / f"{i}.JPEG")


@pytest.mark.slow
def test_imagenet_eval_reads_val_alone_and_refuses_other_class_folders(tmp_path, capsys):
    """dwq eval required ROOT/train/ (and listed all of it) to read val/; and a folder of other classes
    was evaluated without a word, its label 0 another class than in training (labels are folder
    positions); --resume compared the image count only."""
    from conftest import torchvision_or_skip

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    _image_folder_dataset(tmp_path / "data")
    _image_folder_dataset(tmp_path / "valonly", splits=("val",))
    _image_folder_dataset(tmp_path / "shifted", classes=("n02", "n03"))
    out = str(tmp_path / "r")
    assert main(["train", "--out", out, "--dataset", "imagenet", "--data-dir", str(tmp_path / "data"), "--network",
                 "PreActResNet18", "--attack", "none", "--val-size", "0", "--batch-size", "4", "--epochs", "1",
                 "--workers", "0", "--no-progress"]) == 0
    assert torch.load(os.path.join(out, "last.pt"), weights_only=False)["config"]["extra"]["classes"] == ["n01", "n02"]
    ev = ["eval", "--checkpoint", os.path.join(out, "last.pt"), "--n-test", "2", "--attack", "fgsm",
          "--protocols", "paper", "--no-progress"]
    assert main(ev + ["--out", str(tmp_path / "e1"), "--data-dir", str(tmp_path / "valonly")]) == 0
    capsys.readouterr()
    assert main(ev + ["--out", str(tmp_path / "e2"), "--data-dir", str(tmp_path / "shifted")]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and (f"dwq eval: {tmp_path / 'shifted'} has other class folders than the run's (2 here, 2 "
                               "in the run; not here: n01 (1); not in the run: n03 (1))") in err, err
    assert main(["train", "--resume", "--out", out, "--epochs", "2", "--data-dir", str(tmp_path / "shifted"),
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--resume: " in err and "other class folders than the run's" in err, err


def test_demo_resume_names_a_changed_setting_by_its_flag(tmp_path):
    """The refusal said "autoattack_n 100 there, 50 here", the settings' key, where the user gave --autoattack-n."""
    from dwq.cli.common import CLIError
    from dwq.cli.demo_resume import check_resumable, start

    out = tmp_path / "d"
    out.mkdir()
    settings = {"epochs": 3, "autoattack_n": 100, "torch": "2.14.1"}
    start(str(out), settings)
    with pytest.raises(CLIError, match=r"--autoattack-n 100 there, 50 here; --epochs 3 there, 4 here; torch '2.14.1' "
                                       r"there, '9' here"):
        check_resumable(str(out), {**settings, "autoattack_n": 50, "epochs": 4, "torch": "9"})
    assert check_resumable(str(out), settings)


def test_a_model_too_large_to_allocate_is_one_line(tmp_path, capsys, monkeypatch):
    """--width 100000 failed in the allocator with a traceback."""
    import dwq.models

    def too_large(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 720000000000 bytes")

    monkeypatch.setattr(dwq.models, "build_model", too_large)
    assert main(["train", "--out", str(tmp_path / "o"), "--width", "100000", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "dwq train: error: --width 100000: cannot allocate the model" in err and _one_line(err), err

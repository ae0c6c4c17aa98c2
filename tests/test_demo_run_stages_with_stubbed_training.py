"""dwq demo's run (dwq.cli.demo._run) end to end in well under a second: training, evaluation, the heatmap and
the deploy check are stubbed (the stub evaluation returns the kept report's figures), so what is pinned is the
demo's own part: the three runs' training settings and models, what each evaluation is asked for, which images
and how many, the --n-test / --train-images / --autoattack-n limits at their edges, the report's fields, and a
resume that keeps finished models, counts a changed --threads as another demo and says what it took over,
and an OSError that is no failed write shown in full rather than as a resume hint."""
import errno
import json
import os

import pytest
import torch
from test_cli import kept_report

import dwq.deploy
import dwq.eval
import dwq.train
from dwq.cli import demo
from dwq.cli.main import main
from dwq.data import load_mnist5k, train_val_split
from dwq.models import build_model

NAMES = ("fp", "fixed4", "rpt")
SEED = 3  # (not the default 0: a seed dropped for 0 somewhere would go unseen)
FLAGS = ["--epochs", "2", "--train-images", "64", "--n-test", "16", "--autoattack-n", "8", "--no-progress",
         "--seed", str(SEED), "--threads", "1"]


class Stubbed:
    """What the demo handed its stubbed stages. ``interrupt_in`` names a model whose training is interrupted
    (a Ctrl-C) after its first epoch's last.pt, ``interrupt_eval_in`` one whose evaluation is interrupted
    after all its epochs; ``fail_with`` is an exception the training raises."""

    def __init__(self):
        self.trainers, self.evaluations, self.deployed = {}, {}, []
        self.interrupt_in = self.interrupt_eval_in = self.fail_with = None


@pytest.fixture
def stubbed(monkeypatch):
    kept = kept_report()
    seen = Stubbed()

    class Trainer:
        def __init__(self, model, train, cfg, out_dir, val_set=None):
            self.model, self.cfg, self.out_dir, self.epoch = model, cfg, out_dir, 0
            seen.trainers[os.path.basename(out_dir)] = dict(model=model, train=train, val=val_set, cfg=cfg,
                                                             init={k: v.clone() for k, v in model.state_dict().items()})

        def resume(self):  # (the stub's last.pt holds the epoch it was written after)
            last = os.path.join(self.out_dir, "last.pt")
            if not os.path.isfile(last):
                return False
            with open(last) as f:
                self.epoch = int(f.read())
            return True

        def fit(self):
            if seen.fail_with is not None:
                raise seen.fail_with
            os.makedirs(self.out_dir, exist_ok=True)
            interrupted = seen.interrupt_in == os.path.basename(self.out_dir)
            with open(os.path.join(self.out_dir, "last.pt"), "w") as f:
                f.write(str(1 if interrupted else self.cfg.epochs))
            if interrupted:
                seen.interrupt_in = None
                raise KeyboardInterrupt

    def evaluate(model, x, y, precisions, **kw):
        name = os.path.basename(kw["stage_dir"])[len("stages_"):]
        seen.evaluations[name] = dict(model=model, x=x, y=y, precisions=precisions, **kw)
        if seen.interrupt_eval_in == name:
            seen.interrupt_eval_in = None
            raise KeyboardInterrupt
        skip = ("what", "train_seconds", "seconds", "eval_seconds", "deploy")
        return {k: v for k, v in kept["models"][name].items() if k not in skip}

    def check_conversion(model, x, y, precisions):
        seen.deployed.append(dict(model=model, n=len(y), precisions=precisions))
        return kept["models"]["rpt"]["deploy"]

    monkeypatch.setattr(dwq.train, "Trainer", Trainer)
    monkeypatch.setattr(dwq.eval, "evaluate", evaluate)
    monkeypatch.setattr(dwq.eval, "save_heatmap", lambda *a, **k: None)
    monkeypatch.setattr(dwq.deploy, "check_conversion", check_conversion)
    threads = torch.get_num_threads()
    yield seen
    torch.set_num_threads(threads)


def _demo(out, *flags):
    return main(["demo", "--out", str(out)] + FLAGS + list(flags))


def test_each_run_trains_with_its_own_precisions_and_the_demos_attack(stubbed, tmp_path):
    """fp trains at full precision, fixed4 at 4 bits, rpt at a random precision of the set with switchable BN;
    all three with PGD-5 (step ε/4), --epochs, the seed, validation at the end only, no progress bar, each on
    a model freshly initialised from the seed, on the first --train-images of the split and as many held out."""
    assert _demo(tmp_path / "d") == 0
    assert list(stubbed.trainers) == list(NAMES)
    want = {"fp": ([None], False, [None] + demo.SET), "fixed4": ([4], False, demo.SET),
            "rpt": (demo.SET, True, demo.SET)}
    train, val = train_val_split(load_mnist5k("train"), 0.1, seed=SEED)
    for name, t in stubbed.trainers.items():
        cfg = t["cfg"]
        precisions, random_precision, model_set = want[name]
        assert (cfg.precisions, cfg.random_precision) == (precisions, random_precision), (name, cfg)
        assert (cfg.attack, cfg.epsilon, cfg.alpha, cfg.attack_iters) == ("pgd", demo.EPS, demo.EPS / 4, 5), name
        assert (cfg.epochs, cfg.seed, cfg.val_every, cfg.progress) == (2, SEED, 2, False), (name, cfg)
        assert cfg.extra["switchable_bn"] is (name == "rpt") and cfg.extra["width"] == 16, (name, cfg.extra)
        torch.manual_seed(SEED)
        fresh, _ = build_model("small_cnn", "mnist5k", model_set, name == "rpt", width=16)
        for k, v in fresh.state_dict().items():
            assert torch.equal(t["init"][k], v), f"{name}: {k} is not the seed's initialisation"
        assert len(t["train"]) == 64 and len(t["val"]) == 64, (name, len(t["train"]), len(t["val"]))
        assert [int(t["train"][i][1]) for i in range(64)] == [int(train[i][1]) for i in range(64)], name
        assert [int(t["val"][i][1]) for i in range(64)] == [int(val[i][1]) for i in range(64)], name


def test_each_evaluation_is_asked_for_the_demos_protocols_on_the_first_test_images(stubbed, tmp_path):
    """PGD-10 (step ε/4) at every precision of its model on the first --n-test test images with the seed;
    AutoAttack rand on rpt alone, on the first --autoattack-n; the deploy check on rpt's own model."""
    assert _demo(tmp_path / "d") == 0
    x, y = load_mnist5k("test").tensors
    for name, e in stubbed.evaluations.items():
        assert torch.equal(e["x"], x[:16]) and torch.equal(e["y"], y[:16]), name
        assert e["model"] is stubbed.trainers[name]["model"], f"{name}: evaluated another model than it trained"
        assert (e["epsilon"], e["alpha"], e["steps"], e["seed"], e["rpi_precisions"]) == (
            demo.EPS, demo.EPS / 4, 10, SEED, demo.SET), (name, e)
        assert (e["paper_batch"], e["autoattack_steps"], e["eot_iter"]) == (100, 100, 20), name
        aa = ["autoattack-rand"] if name == "rpt" else []
        assert e["protocols"] == ["paper", "paper-sampled", "adaptive", "transfer"] + aa, (name, e["protocols"])
        assert e["autoattack_n"] == 8, (name, e["autoattack_n"])
    assert [e["precisions"] for e in stubbed.evaluations.values()] == [[None] + demo.SET, demo.SET, demo.SET]
    assert len(stubbed.deployed) == 1, f"{len(stubbed.deployed)} deploy checks"
    deployed = stubbed.deployed[0]
    assert deployed["model"] is stubbed.trainers["rpt"]["model"], "the deploy check ran on another model than rpt's"
    assert (deployed["n"], deployed["precisions"]) == (16, demo.SET), deployed


def test_the_report_records_the_run_and_takes_its_headline_figures_from_rpt(stubbed, tmp_path, capsys):
    """report.json records the counts that ran (training, held-out, test, AutoAttack images), the attacks, the
    seed and threads; its top-level clean, RPI, transfer and BitOPs figures are rpt's; only rpt carries the
    deploy check; the findings are the readers' own; a run that resumed nothing says nothing of a resume."""
    assert _demo(tmp_path / "d") == 0
    rep = json.load(open(tmp_path / "d" / "report.json"))
    kept = kept_report()
    assert (rep["n_train"], rep["n_val"], rep["n_test"], rep["epochs"], rep["seed"], rep["threads"]) == (
        64, 64, 16, 2, SEED, 1), rep
    assert rep["autoattack"] == {"model": "rpt", "n": 8, "steps": 100, "eot_iter": 20}
    assert (rep["train_attack"], rep["eval_attack"]) == ("PGD-5 step 0.025", "PGD-10 step 0.025, random start")
    for key in ("clean_acc", "rpi", "transfer_matrix", "bitops"):
        assert rep[key] == kept["models"]["rpt"][key], f"the report's {key} is not rpt's"
    assert "deploy" in rep["models"]["rpt"] and not any("deploy" in rep["models"][k] for k in ("fp", "fixed4"))
    assert rep["resumed"] == [] and rep["findings"] == demo.findings(rep)
    printed = capsys.readouterr().out
    assert "wall time" in printed and "this process only" not in printed


@pytest.mark.parametrize("flags, n_test, n_aa, n_train", [
    (["--n-test", "1000", "--autoattack-n", "0"], 1000, 0, 64),   # the whole test split is not "more than it"
    (["--train-images", "3600", "--autoattack-n", "0"], 16, 0, 3600),  # the whole training split either
    (["--autoattack-n", "16"], 16, 16, 64),                        # AutoAttack on every evaluated image
])
def test_the_limits_of_the_counts_are_accepted(stubbed, tmp_path, flags, n_test, n_aa, n_train):
    """A count equal to what the data holds is the whole of it, not a refusal; --autoattack-n 0 asks no
    AutoAttack of any evaluation."""
    assert _demo(tmp_path / "d", *flags) == 0
    rep = json.load(open(tmp_path / "d" / "report.json"))
    assert (rep["n_test"], rep["autoattack"]["n"], rep["n_train"]) == (n_test, n_aa, n_train), rep
    assert rep["n_val"] == min(n_train, 400)
    for name, e in stubbed.evaluations.items():
        assert len(e["y"]) == n_test and e["autoattack_n"] == (n_aa or None), (name, e["autoattack_n"])
        assert ("autoattack-rand" in e["protocols"]) is (name == "rpt" and n_aa > 0), (name, e["protocols"])


def test_autoattack_n_not_given_shrinks_to_n_test(stubbed, tmp_path):
    """The default --autoattack-n (100) above --n-test 16 is the 16 images evaluated, not a refusal."""
    i = FLAGS.index("--autoattack-n")
    assert main(["demo", "--out", str(tmp_path / "d")] + FLAGS[:i] + FLAGS[i + 2:]) == 0
    rep = json.load(open(tmp_path / "d" / "report.json"))
    assert rep["autoattack"]["n"] == 16 and stubbed.evaluations["rpt"]["autoattack_n"] == 16


def test_a_resume_keeps_the_finished_models_and_says_what_it_took_over(stubbed, tmp_path, capsys):
    """Interrupted in fixed4's training after its first epoch: --resume keeps fp's result (no training, no
    evaluation) and resumes fixed4 from its checkpoint; interrupted again in rpt's evaluation, after all its
    epochs, a second --resume keeps fixed4 too and says that rpt's training was over and its evaluation is
    what resumed. The report lists all three and the last line says the timings are this process's."""
    out = tmp_path / "d"
    stubbed.interrupt_in = "fixed4"
    assert _demo(out) == 130
    assert (out / "result_fp.json").is_file() and not (out / "report.json").exists()
    stubbed.trainers.clear(), stubbed.evaluations.clear()
    stubbed.interrupt_eval_in = "rpt"
    capsys.readouterr()
    assert _demo(out, "--resume") == 130
    assert list(stubbed.trainers) == ["fixed4", "rpt"] and list(stubbed.evaluations) == ["fixed4", "rpt"]
    assert "[fixed4] resuming its training after epoch 1\n" in capsys.readouterr().out
    stubbed.trainers.clear(), stubbed.evaluations.clear()
    assert _demo(out, "--resume") == 0
    assert list(stubbed.trainers) == ["rpt"] and list(stubbed.evaluations) == ["rpt"]
    rep = json.load(open(out / "report.json"))
    assert rep["resumed"] == ["fp: kept", "fixed4: kept",
                              "rpt: trained before the interruption; its evaluation resumed"], rep["resumed"]
    printed = capsys.readouterr().out
    assert "[rpt] trained before the interruption: resuming its evaluation" in printed
    assert "(this process only: it resumed an interrupted run)" in printed


def test_a_resume_with_other_threads_is_another_demo(stubbed, tmp_path, capsys):
    """The figures depend on the thread count (float summation order): a resume with another --threads is
    refused, naming it, rather than joining figures of two settings in one report."""
    out = tmp_path / "d"
    stubbed.interrupt_in = "fp"
    assert _demo(out) == 130
    capsys.readouterr()
    # (the default, 2: a flag's own check would refuse 2 on a one-CPU machine before the resume's is reached)
    assert main(["demo", "--out", str(out), "--resume"] + FLAGS[:-2]) == 2
    assert "--threads 1 there, 2 here" in capsys.readouterr().err


def test_an_oserror_that_is_no_failed_write_is_not_turned_into_a_resume_hint(stubbed, tmp_path):
    """A full disk is one line with the resume hint (test_cli); an OSError naming no file and no full or
    read-only disk is a bug, shown in full rather than as "None; once fixed, continue it"."""
    stubbed.fail_with = OSError(errno.EINVAL, "Invalid argument")
    with pytest.raises(OSError, match="Invalid argument"):
        _demo(tmp_path / "d")

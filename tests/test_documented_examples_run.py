"""The README's examples, as they are written there: every Python block runs (with the files it names
made by tiny runs of the project's own commands), and every ``dwq`` command line of its shell blocks,
and of docs/workflow.md's (the paper's runs), parses with the CLI's own parser; the deploy and bench
lines also run; so do the ``>>>`` examples of the package's docstrings. An API or flag renamed without
the documentation fails here instead of on a reader's machine."""
import doctest
import importlib
import json
import os
import pkgutil
import re
import shlex
import shutil

import pytest
import torch
from deploy_models import calibrated
from test_deploy_cli_checks_before_the_work import _fake_latency
from test_reference_import import _as_reference

import dwq
from dwq.cli.main import build_parser, main
from dwq.models import QuantPolicy, preact_resnet18, small_cnn
from dwq.ops import HAS_EXT

# (runs/y's one tiny epoch trains a few of its switchable-BN branches; the examples run at the others too)
pytestmark = [pytest.mark.filterwarnings("ignore:SwitchableBatchNorm2d. the branch of precision"),
              pytest.mark.filterwarnings("ignore:convert. the switchable batch norm never saw")]

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
WORKFLOW = os.path.join(os.path.dirname(__file__), "..", "docs", "workflow.md")


def _blocks(lang, path=README):
    with open(path, encoding="utf-8") as f:
        return re.findall(rf"^```{lang}\n(.*?)^```$", f.read(), flags=re.S | re.M)


def _dwq_lines(block):
    """The ``dwq ...`` (or ``torchrun ... -m dwq.cli.main ...``) command lines of a shell block as argv
    lists from the subcommand on, continuation lines joined, comments and a ``$ `` prompt dropped; lines
    with placeholders (``[--flag X]``, ``a|b``, ``$1``) and printed output (``dwq eval 0.1.0: ...``) left out."""
    lines = []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        line = line.strip().removeprefix("$ ")
        if not line.startswith(("dwq ", "torchrun ")):
            continue
        tokens = shlex.split(line, comments=True)
        if tokens[:1] == ["dwq"]:
            argv = tokens[1:]
        elif "dwq.cli.main" in tokens:
            argv = tokens[tokens.index("dwq.cli.main") + 1:]
        else:
            continue
        if argv and (len(argv) == 1 or argv[1].startswith("-")) and not re.search(r"[\[|$]", " ".join(argv)):
            lines.append(argv)
    return lines


def _python(name):
    """A README Python block, found by a line of it (the blocks are few; the order may change)."""
    found = [b for b in _blocks("python") if name in b]
    assert len(found) == 1, f"README: {len(found)} python blocks hold {name!r}, expected 1"
    return found[0]


def test_the_readme_has_the_blocks_this_file_runs():
    """A new Python block is added here too (else it is never run); the shell blocks hold dwq commands."""
    assert len(_blocks("python")) == 3, "README: a python block was added or removed; run it in this file"
    assert sum(len(_dwq_lines(b)) for b in _blocks("bash")) >= 5, "README: the shell blocks lost their dwq commands"


def test_every_dwq_command_line_of_the_readme_and_the_workflow_guide_parses():
    """Each ``dwq`` line of the README and of docs/workflow.md (the paper's runs: flags, choices,
    values) is one the CLI's parser takes as written."""
    guide = [line for b in _blocks("", WORKFLOW) for line in _dwq_lines(b)]
    assert len(guide) >= 10, f"docs/workflow.md: {len(guide)} dwq command lines found, expected the paper's runs"
    parser = build_parser()
    for argv in guide + [line for b in _blocks("bash") for line in _dwq_lines(b)]:
        assert parser.parse_args(argv).command == argv[0], argv


def test_the_using_it_block_runs():
    """The first example: precision switching and RandomPrecision on the PreActResNet18 of 13 precisions."""
    ns = {}
    exec(_python("preact_resnet18(num_classes=10"), ns)
    assert ns["logits"].shape == (2, 10) and ns["rpi"].last_precision in [4, 5, 6, 7, 8]
    assert dwq.precision_set(ns["model"]) == list(range(4, 17))


@pytest.fixture(scope="module")
def run_y(tmp_path_factory):
    """The README's ``runs/y``: a ``dwq train`` run over 4..8 bits (RPT, switchable BN), one tiny epoch."""
    root = tmp_path_factory.mktemp("readme")
    out = root / "runs" / "y"
    assert main(["train", "--out", str(out), "--train-subset", "64", "--epochs", "1", "--attack-iters", "1",
                 "--width", "4", "--num-bits-schedule", "4", "8", "--random-precision-training", "--switchable-bn",
                 "--val-size", "32", "--val-pgd-steps", "1", "--batch-size", "32", "--no-progress",
                 "--workers", "0"]) == 0
    return root


def _in(folder, run_y, monkeypatch):
    """A fresh working folder holding a copy of runs/y, the README's relative paths."""
    shutil.copytree(run_y / "runs", folder / "runs")
    monkeypatch.chdir(folder)


def test_the_loading_block_runs(run_y, tmp_path, monkeypatch, capsys):
    """The second example: a dwq train checkpoint, then a reference-code checkpoint of PreActResNet18."""
    _in(tmp_path, run_y, monkeypatch)
    ref = preact_resnet18(precisions=list(range(4, 17)), switchable_bn=True,
                          policy=QuantPolicy(zero_point="float", shared_act_range=True))
    os.mkdir("ckpt")
    torch.save(_as_reference(ref.eval()), "ckpt/model.pth")
    ns = {}
    exec(_python("load_reference_state_dict(ref"), ns)
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["1", str(ns["flags"]["epsilon"])] and dwq.precision_set(ns["model"]) == [4, 5, 6, 7, 8]
    assert dwq.precision_set(ns["ref"]) == list(range(4, 17))


@needs_ext
def test_the_deploy_block_runs(run_y, tmp_path, monkeypatch):
    """The deploy example: convert, run at 4 bits, RandomPrecision, save and load, with ``images`` a batch."""
    _in(tmp_path, run_y, monkeypatch)
    ns = {"images": torch.rand(2, 1, 28, 28)}
    exec(_python("dwq.deploy.convert(model"), ns)
    assert ns["logits"].shape == (2, 10) and os.path.isfile("model.safetensors")
    with dwq.precision(ns["int_model"], 4):
        assert torch.equal(ns["int_model"](ns["images"]), ns["logits"]), "the loaded model is another model"


@needs_ext
def test_the_deploy_and_bench_command_lines_run(run_y, tmp_path, monkeypatch, capsys):
    """``dwq deploy`` then ``dwq bench`` as the README writes them, in a folder holding runs/y (bench's
    timings are a stand-in: whether 5 ms holds a precision depends on the machine, not on the README)."""
    _in(tmp_path, run_y, monkeypatch)
    fast = {str(b): (0.1 * b, 0.1 * b) for b in (4, 5, 6, 7, 8)}
    monkeypatch.setattr("dwq.deploy.latency_per_precision", _fake_latency({1: fast, 32: fast}))
    lines = [line for b in _blocks("bash") for line in _dwq_lines(b) if line[0] in ("deploy", "bench")]
    assert [line[0] for line in lines] == ["deploy", "bench"], lines
    for argv in lines:
        assert main(argv) == 0, argv
    assert "largest set within 5 ms at batch 1: 4 5 6 7 8" in capsys.readouterr().out
    assert os.path.isfile("model.safetensors") and len(json.load(open("latency.json"))) == 10


@needs_ext
def test_the_docstring_examples_run(tmp_path, monkeypatch):
    """Every ``>>>`` example of a dwq module runs; dwq.deploy's gets the trained ``model`` and the
    ``images`` its comment leaves to the reader (a calibrated small CNN over 4, 6, 8 bits)."""
    monkeypatch.chdir(tmp_path)  # (dwq.deploy's example saves model.safetensors)
    given = {"model": calibrated(small_cnn(precisions=[4, 6, 8], width=4), (8, 1, 28, 28)),
             "images": torch.rand(2, 1, 28, 28)}
    finder, runner, ran = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS), []
    for info in pkgutil.walk_packages(dwq.__path__, "dwq."):
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name, globs=dict(vars(module), **given)):
            if test.examples:
                failed = runner.run(test, out=lambda text: None).failed
                assert failed == 0, f"{test.name}: {failed} of its {len(test.examples)} examples failed"
                ran.append(test.name)
    assert "dwq.deploy" in ran and "dwq.ops.qgemm" in ran and len(ran) >= 6, ran
    assert os.path.isfile("model.safetensors")

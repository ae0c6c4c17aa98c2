"""Figures quoted in user-facing help texts equal the benchmark records they cite (a rerun that
replaces the records must update the text, or this fails)."""
import json
import pathlib
import re

from dwq.cli.main import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _subcommand_help(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices[name].format_help().split())


def test_train_compile_help_quotes_results_compile_cpu():
    records = json.loads((ROOT / "benchmarks" / "results_compile_cpu.json").read_text())
    step = {(r["shape"].split()[0], r["impl"]): r["median_ms"] for r in records if r["op"] == "train_step"}
    expected = [f"{step[(net, 'compiled')] / step[(net, 'eager')]:.2f}x" for net in ("small_cnn", "preact_resnet18")]
    text = _subcommand_help("train")
    m = re.search(r"a step took (\S+x) the eager time for the small CNN and (\S+x) for PreActResNet18", text)
    assert m, f"dwq train --help no longer quotes the compile benchmark: {text[:200]}..."
    assert [m.group(1), m.group(2)] == expected, \
        f"--compile help says {m.groups()}, benchmarks/results_compile_cpu.json gives {expected}"

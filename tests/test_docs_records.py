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


def _wide_over_fp32_time(name):
    """(min, max) over the shapes of benchmarks/<name> of dwq's 12- and 16-bit median latency over
    torch fp32's, each ratio within that run."""
    records = json.loads((ROOT / "benchmarks" / name).read_text())
    ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in records}
    ratios = [ms[(op, shape, "dwq", b)] / ms[(op, shape, "torch_fp32", 32)]
              for op, shape, impl, bits in ms if impl == "torch_fp32" for b in (12, 16)]
    return f"{min(ratios):.2f}", f"{max(ratios):.2f}"


def test_avx2_wide_widths_quote_their_fp32_time_ratio():
    """The READMEs' "X-Y× the fp32 time" of AVX2's 12/16-bit widths is their latency over fp32's in
    results_avx2_wide_quick_1thread.json, then results_avx2_quick_1thread.json (a speed-up quoted as
    a time ratio once read "0.48-0.94x the fp32 time" for widths slower than fp32)."""
    expected = [_wide_over_fp32_time("results_avx2_wide_quick_1thread.json"),
                _wide_over_fp32_time("results_avx2_quick_1thread.json")]
    for doc in ("README.md", "benchmarks/README.md"):
        text = " ".join((ROOT / doc).read_text().split())
        m = re.search(r"and (\S+?)[-–](\S+?)[x×] the fp32 time\S* [^(]*\((\S+?)[-–](\S+?)[x×]", text)
        assert m, f"{doc} no longer quotes the AVX2 12/16-bit time against fp32"
        assert [m.group(1, 2), m.group(3, 4)] == expected, f"{doc} says {m.groups()}, the records give {expected}"

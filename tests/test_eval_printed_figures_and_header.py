"""dwq eval's printed lines (dwq.cli.main._eval) with the evaluation stood in for by a report made in the test:
the first line, the settings header (each setting's value, then where it came from), the per-precision
and RPI lines (percentages with their 95% intervals, low then high), the AutoAttack lines and the files
line, which names only the files written."""
import dwq.eval
from dwq._version import __version__
from dwq.cli.main import main
from test_eval_command_passes_its_settings import N, fake  # noqa: F401  (fake: a pytest fixture)


def _acc(acc, lo, hi):
    return {"acc": acc, "ci95": [lo, hi]}


REPORT = {
    "clean_acc": {"2": _acc(0.5, 0.25, 0.75), "8": _acc(0.875, 0.5, 1.0)},
    "pgd_acc": {"2": _acc(0.125, 0.0, 0.5), "8": _acc(0.375, 0.125, 0.625)},
    "rpi": {"set": ["2", "8"], "clean": _acc(0.625, 0.375, 0.875), "pgd_paper": _acc(0.25, 0.0625, 0.5),
            "pgd_adaptive": _acc(0.1875, 0.0625, 0.375),
            "pgd_adaptive_per_precision": {"2": _acc(0.0, 0.0, 0.25), "8": _acc(0.375, 0.125, 0.625)},
            "autoattack_rand": {"n": 4, "original": _acc(0.5, 0.25, 0.75), "expected": _acc(0.625, 0.375, 0.875)},
            "autoattack_standard_per_precision": {"2": _acc(0.0, 0.0, 0.25), "8": _acc(0.25, 0.0625, 0.5)}},
    "seconds": 12.4,
}


def _run(fake, monkeypatch, capsys, writes, extra=None):  # noqa: F811
    """Runs dwq eval over the whole stand-in test set with REPORT (plus ``extra``) as the evaluation's
    result; the stand-in report writer creates the files named in ``writes``. Returns the printed lines."""
    def evaluate(target, x, y, ps, **kw):
        fake["calls"].append(dict(x=x, **kw))
        return {**REPORT, **(extra or {})}

    def write_report(rep, out, title):
        fake["reports"].append(rep)
        for name in writes:
            with open(f"{out}/{name}", "w") as f:
                f.write("{}")

    monkeypatch.setattr(dwq.eval, "evaluate", evaluate)
    monkeypatch.setattr(dwq.eval, "write_report", write_report)
    capsys.readouterr()
    assert main(fake["argv"] + ["--precisions", "2", "8", "--protocols", "paper"]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_first_line_and_the_header_give_each_value_then_its_source(fake, monkeypatch, capsys):  # noqa: F811
    out = _run(fake, monkeypatch, capsys, ["report.json"])
    ck, folder = fake["argv"][2], fake["argv"][4]
    assert out[0] == f"dwq eval {__version__}: {ck} (epoch 1) -> {folder}"
    settings = fake["reports"][0]["settings"]
    w = max(len(s["value"]) for s in settings.values()) + 2
    assert out[1] == "  setting     " + "value".ljust(w) + "from"
    rows = out[2:2 + len(settings)]
    assert rows == [f"  {name:<12}{s['value']:<{w}}{s['from']}" for name, s in settings.items()]
    assert f"  test images {f'{N} of {N}':<{w}}default: all" in rows  # no --n-test: the whole set
    # the longest value is still followed by two spaces before its source
    longest = max(settings.items(), key=lambda kv: len(kv[1]["value"]))
    assert f"{longest[1]['value']}  {longest[1]['from']}" in rows[list(settings).index(longest[0])]
    assert out[2 + len(settings)] == f"accuracy, % [95% interval], n={N}:"


def test_per_precision_and_rpi_lines_are_percentages_with_their_intervals(fake, monkeypatch, capsys):  # noqa: F811
    out = _run(fake, monkeypatch, capsys, ["report.json"])
    start = out.index(f"accuracy, % [95% interval], n={N}:")
    assert out[start + 1:-1] == [
        "  clean_acc      2: 50.0% [25.0, 75.0]  8: 87.5% [50.0, 100.0]",
        "  pgd_acc        2: 12.5% [0.0, 50.0]  8: 37.5% [12.5, 62.5]",
        "  RPI clean                     62.5% [37.5, 87.5]",
        "  RPI pgd_paper                 25.0% [6.2, 50.0]",
        "  RPI pgd_adaptive              18.8% [6.2, 37.5]",
        "  RPI autoattack_rand (n=4)  original count 50.0% [25.0, 75.0], expected 62.5% [37.5, 87.5]",
        "  autoattack_standard  2: 0.0% [0.0, 25.0]  8: 25.0% [6.2, 50.0]",
    ]


def test_the_files_line_names_the_files_written_and_a_resumed_run(fake, monkeypatch, capsys):  # noqa: F811
    out = _run(fake, monkeypatch, capsys, ["report.json", "transfer.json"])
    folder = fake["argv"][4]
    assert out[-1] == f"done in 12 s; wrote {folder}/: report.json, transfer.json"
    import shutil
    shutil.rmtree(folder)
    out = _run(fake, monkeypatch, capsys, ["report.json"], extra={"resumed": {"stages_read_back": ["clean"]}})
    assert out[-1] == (f"done in 12 s (this process only: it resumed an interrupted evaluation); "
                       f"wrote {folder}/: report.json")

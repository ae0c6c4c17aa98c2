"""The demo's report readers (dwq.cli.demo: table, markdown_rows, findings, deploy_summary, reprint) on the
kept report and on small edits of it: every figure they print is the report's, in the column its header
names, and the README's demo rows are the kept report's rows."""
import json
import os
import re

import pytest
from test_cli import KEPT_REPORT, kept_report

from dwq.cli import demo

ROOT = os.path.join(os.path.dirname(__file__), "..")


def fmt(r):  # "acc ±half-width" in %, written out here rather than through demo._fmt
    return f"{100 * r['acc']:5.1f} ±{100 * (r['ci95'][1] - r['ci95'][0]) / 2:3.1f}"


def pct(r):
    return f"{100 * r['acc']:.1f} [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"


def test_readme_demo_rows_are_the_kept_reports():
    """The README says `python -m dwq.cli.demo docs/demo/report.json` prints its rows: they are
    markdown_rows of the kept report, column for column."""
    rep = kept_report()
    rows = demo.markdown_rows(rep)
    with open(os.path.join(ROOT, "README.md")) as f:
        assert rows in f.read()
    # and each column holds the figure its header names
    lines = rows.splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    keys = {"clean RPI": "clean", "PGD, paper protocol": "pgd_paper", "PGD, adaptive (EOT)": "pgd_adaptive",
            "best of 6 attacks": "best_of_attacks", "worst case over precisions, EOT-PGD": "pgd_adaptive_worst_case",
            "worst case over precisions, all 6 attacks": "worst_case_of_attacks"}
    for name, m in rep["models"].items():
        cells = [c.strip() for c in next(r for r in lines if r.startswith(f"| {name} |")).strip("|").split("|")]
        for h, c in zip(head[1:], cells[1:]):
            if h in keys:
                assert c == pct(m["rpi"][keys[h]]), (name, h)
    aa = rep["models"]["rpt"]["rpi"]["autoattack_rand"]
    assert lines[-1].startswith(f"| rpt | {pct(aa['original'])} | {pct(aa['expected'])} | ")


def test_pct_and_fmt_write_the_interval_and_its_half_width():
    r = {"acc": 0.5, "ci95": [0.4, 0.62]}
    assert demo._pct(r) == "50.0 [40.0, 62.0]"
    assert demo._fmt(r) == " 50.0 ±11.0"


def test_table_columns_hold_the_figures_their_headers_name():
    rep = kept_report()
    lines = demo.table(rep).splitlines()
    hdr = lines[1].split()
    assert hdr == ["model", "metric", "fp"] + [str(b) for b in rep["rpi_set"]]
    for name, m in rep["models"].items():
        for key, label in (("clean_acc", "clean"), ("pgd_acc", "PGD (same precision)")):
            row = next(x for x in lines if x.startswith(f"{name:<8}{label:<22}"))
            assert row == f"{name:<8}{label:<22}" + "".join(
                f"{fmt(m[key][p]):>13}" if p in m[key] else f"{'-':>13}" for p in hdr[2:]), (name, key)
        g = m["bitops"]["per_precision"]
        row = next(x for x in lines if x.startswith(f"{name:<8}MBitOPs/image"))
        assert row.split()[2:] == [f"{g[p] / 1e6:.1f}" if p in g else "-" for p in hdr[2:]]
    # the RPI table: clean, paper, adaptive, best of, worst EOT, worst all, mean MBitOPs over the set
    i = next(i for i, x in enumerate(lines) if x.split()[:3] == ["model", "clean", "PGD"])
    for name, m in rep["models"].items():
        r = m["rpi"]
        row = next(x for x in lines[i:] if x.startswith(f"{name:<8}"))
        mean = sum(m["bitops"]["per_precision"][str(p)] for p in rep["rpi_set"]) / len(rep["rpi_set"])
        assert row == (f"{name:<8}" + "".join(f"{fmt(r[k]):>14}" for k in (
            "clean", "pgd_paper", "pgd_adaptive", "best_of_attacks", "pgd_adaptive_worst_case",
            "worst_case_of_attacks")) + f"{mean / 1e6:>10.1f}"), name
    aa = rep["models"]["rpt"]["rpi"]["autoattack_rand"]
    assert (f"AutoAttack rand on rpt (APGD-CE + APGD-DLR, {aa['steps']} steps, {aa['eot_iter']} EOT samples; first "
            f"{aa['n']} test images): original count {pct(aa['original'])}, expected accuracy {pct(aa['expected'])}"
            ) in lines


def test_table_labels_the_transfer_rows_by_their_attack_precision():
    """A matrix whose attack precisions come in another order than its inference precisions: each row is
    labelled with its own attack precision, the header with the inference precisions."""
    rep = kept_report()
    tm = rep["models"]["rpt"]["transfer_matrix"]
    tm["attack_precisions"], tm["acc"] = tm["attack_precisions"][::-1], tm["acc"][::-1]
    lines = demo.table(rep).splitlines()
    i = lines.index(next(x for x in lines if x.startswith("transfer matrix rpt")))
    assert lines[i + 1].split() == [str(p) for p in tm["inference_precisions"]]
    assert len(lines) == i + 2 + len(tm["acc"])  # (rpt's matrix ends the table)
    for p, acc, line in zip(tm["attack_precisions"], tm["acc"], lines[i + 2:]):
        assert line.split() == [str(p)] + [f"{100 * v:.1f}" for v in acc]


def test_say_counts_an_interval_that_touches_zero_as_including_it():
    assert demo._say({"diff": 0.01, "ci95": [0.0, 0.02]}) == \
        "+1.0 points [+0.0, +2.0] (the interval includes 0: no difference shown)"
    assert demo._say({"diff": -0.01, "ci95": [-0.02, 0.0]}).endswith("(the interval includes 0: no difference shown)")
    assert demo._say({"diff": -0.052, "ci95": [-0.08, -0.024]}) == \
        "-5.2 points [-8.0, -2.4] (the interval excludes 0)"
    assert demo._say({"diff": 0.05, "ci95": [0.001, 0.09]}).endswith("(the interval excludes 0)")


def test_say_prints_a_bound_near_zero_to_its_first_nonzero_decimal():
    """[+0.0, +2.0] beside "excludes 0" read as a contradiction; the verdict is on the exact bounds."""
    assert demo._say({"diff": .01, "ci95": [.0004, .02]}) == "+1.0 points [+0.04, +2.0] (the interval excludes 0)"
    assert demo._say({"diff": -.01, "ci95": [-.03, -.00004]}) == \
        "-1.0 points [-3.0, -0.004] (the interval excludes 0)"
    assert demo._say({"diff": .01, "ci95": [-.0004, .02]}) == \
        "+1.0 points [-0.04, +2.0] (the interval includes 0: no difference shown)"


def test_transfer_rows_of_a_one_row_matrix():
    tm = {"attack_precisions": ["4"], "inference_precisions": ["2", "4"], "acc": [[0.5, 0.6]]}
    assert demo._transfer_rows("m", tm) == "m: one row."


def test_transfer_rows_quote_the_own_attack_against_the_other_rows():
    tm = {"attack_precisions": ["2", "4", "8"], "inference_precisions": ["2", "4", "8"],
          "acc": [[0.01, 0.90, 0.80],    # row 2: off-diagonal mean 0.85 (transfers least)
                  [0.30, 0.40, 0.50],    # row 4: 0.40
                  [0.05, 0.60, 0.70]]}   # row 8: 0.325
    assert demo._transfer_rows("m", tm) == (
        "m: attacks crafted at 2 bits transfer least (mean accuracy 85.0% on the other inference precisions; "
        "the other rows 32.5-40.0%); at 2-bit inference the 2-bit attack leaves 1.0%, the others 5.0-30.0% "
        "(point estimates).")


def test_findings_with_the_worst_case_of_every_attack_in_one_model_only():
    """A report where fp lacks worst_case_of_attacks (a report from before it existed, for that model):
    only rpt minus fixed4 quotes the worst case over every attack."""
    rep = kept_report()
    del rep["models"]["fp"]["per_image"]["worst_case_of_attacks"]
    said = [f for f in demo.findings(rep) if "every attack run" in f]
    assert len(said) == 1 and said[0].startswith("rpt minus fixed4")


def test_findings_count_an_exact_figure_on_the_replica_bound_as_inside():
    rep = kept_report()
    r = rep["models"]["rpt"]["rpi"]
    r["pgd_paper_sampled"]["ci95"][0] = r["pgd_paper"]["acc"]
    r["clean_sampled"]["ci95"][1] = r["clean"]["acc"]
    assert not any(f.startswith("rpt:") and "lies outside" in f for f in demo.findings(rep))


def test_deploy_summary_is_the_rpt_models_check():
    from dwq.deploy import format_check

    rep = kept_report()
    d = rep["models"]["rpt"]["deploy"]
    assert demo.deploy_summary(rep) == format_check(d, "rpt as a true-integer model (dwq.deploy)")
    rep["models"]["fixed4"]["deploy"] = d  # another model's check is not rpt's
    del rep["models"]["rpt"]["deploy"]
    assert demo.deploy_summary(rep) == "(no deploy check in this report)"


def test_reprint_prints_the_tables_findings_deploy_check_and_rows(capsys):
    rep = kept_report()
    assert demo.reprint([KEPT_REPORT]) == 0
    out = capsys.readouterr().out
    for part in [demo.table(rep), demo.deploy_summary(rep), demo.markdown_rows(rep)] + demo.findings(rep):
        assert part in out


@pytest.mark.parametrize("argv, code, stream", [([], 2, "err"), (["a.json", "b.json"], 2, "err"),
                                                (["-h"], 0, "out"), (["--help"], 0, "out")])
def test_reprint_usage(argv, code, stream, capsys):
    assert demo.reprint(argv) == code
    printed = capsys.readouterr()
    assert getattr(printed, stream).startswith("usage: python -m dwq.cli.demo REPORT_JSON")
    assert getattr(printed, "out" if stream == "err" else "err") == ""


def test_reprint_refuses_a_report_missing_fields_or_of_wrong_types(tmp_path, capsys):
    (tmp_path / "set_only.json").write_text(json.dumps({"rpi_set": [2, 4]}))
    assert demo.reprint([str(tmp_path / "set_only.json")]) == 2
    assert "is not a report.json of dwq demo" in capsys.readouterr().err
    rep = kept_report()
    rep["rpi_set"] = 5  # (a TypeError in the tables)
    (tmp_path / "typed.json").write_text(json.dumps(rep))
    assert demo.reprint([str(tmp_path / "typed.json")]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and re.search(r"is not a complete report\.json of dwq demo \(TypeError: ", printed.err)


def test_findings_name_the_replica_batches_of_two_draws():
    """Two draws of 100 and 50 images: one per 100 images, the last of 50 (the first size against the last)."""
    rep = kept_report()
    for m in rep["models"].values():
        s = m["rpi"]["pgd_paper_sampled"]
        s["clusters"], s["batches"]["sizes"] = 2, [100, 50]
    assert sum("(2 draws, one per 100 images, the last of 50)" in f for f in demo.findings(rep)) == 3
    for m in rep["models"].values():
        m["rpi"]["pgd_paper_sampled"]["clusters"], m["rpi"]["pgd_paper_sampled"]["batches"]["sizes"] = 1, [100]
    assert sum("(1 draws, one per 100 images)" in f for f in demo.findings(rep)) == 3


def test_table_of_a_report_from_before_the_worst_case_of_every_attack():
    rep = kept_report()
    for m in rep["models"].values():
        del m["rpi"]["worst_case_of_attacks"], m["per_image"]["worst_case_of_attacks"]
    lines = demo.table(rep).splitlines()
    i = next(i for i, x in enumerate(lines) if x.split()[:3] == ["model", "clean", "PGD"])
    for name, m in rep["models"].items():
        row = next(x for x in lines[i:] if x.startswith(f"{name:<8}"))
        assert row.split()[-2:] == ["-", row.split()[-1]] and row.count("±") == 5, row

"""dwq.cli.demo's report readers on edits of the kept report that the kept report itself never exercises:
a precision set other than the module's SET (the MBitOPs means are over the report's set), a report from
before the replica's batch sizes were kept (the batch is n_test // draws), and interval bounds so near 0
that they need up to six decimals to show their sign, transfer matrices whose attack precisions come in
another order than their inference precisions, and a reprint of a report with a short transfer row."""
import json

import pytest
from test_cli import kept_report

from dwq.cli import demo


def _mbitops_mean(m, ps):  # written out here rather than through demo._bitops_mean
    return sum(m["bitops"]["per_precision"][str(p)] for p in ps) / len(ps) / 1e6


def test_mbitops_are_the_mean_over_the_reports_own_set():
    """rpi_set [2, 4, 8] (not the module's five precisions): the RPI table's MBitOPs column, the README rows'
    last column and the cost finding are the mean over those three."""
    rep = kept_report()
    rep["rpi_set"] = [2, 4, 8]
    lines = demo.table(rep).splitlines()
    i = next(i for i, x in enumerate(lines) if x.split()[:3] == ["model", "clean", "PGD"])
    rows = demo.markdown_rows(rep).splitlines()
    for name, m in rep["models"].items():
        want = f"{_mbitops_mean(m, [2, 4, 8]):.1f}"
        table_row = next(x for x in lines[i:] if x.startswith(f"{name:<8}"))
        assert table_row.split()[-1] == want, (name, table_row, want)
        md_row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert md_row.endswith(f"| {want} |"), (name, md_row, want)
    fp = rep["models"]["fp"]
    cost = next(f for f in demo.findings(rep) if f.startswith("cost:"))
    assert cost == (f"cost: RPI over [2, 4, 8] costs {_mbitops_mean(fp, [2, 4, 8]):.1f} MBitOPs per image against "
                    f"{fp['bitops']['per_precision']['fp'] / 1e6:.1f} at full precision."), cost


@pytest.mark.parametrize("n_test, clusters, per", [(1000, 10, 100), (950, 10, 95), (7, 0, 7)])
def test_findings_of_a_report_without_the_replica_batch_sizes(n_test, clusters, per):
    """A report from before the batch sizes were kept: each draw is taken to cover n_test // draws images
    (and a report of no draw at all does not divide by zero)."""
    rep = kept_report()
    rep["n_test"] = n_test
    for m in rep["models"].values():
        s = m["rpi"]["pgd_paper_sampled"]
        del s["batches"]
        s["clusters"] = clusters
    said = [f for f in demo.findings(rep) if "sampled replica" in f]
    assert len(said) == 3 and all(f"({clusters} draws, one per {per} images)" in f for f in said), said


@pytest.mark.parametrize("ci95, shown", [
    ([0.000004, 0.02], "[+0.0004, +2.0]"),      # four decimals
    ([-0.03, -0.0000004], "[-3.0, -0.00004]"),  # five
    ([0.00000001, 0.02], "[+0.000001, +2.0]"),  # six
    ([1e-12, 0.02], "[+0.000000, +2.0]"),       # and no more: a bound below that is printed as 0 to six places
])
def test_a_bound_near_zero_shows_up_to_six_decimals(ci95, shown):
    said = demo._say({"diff": 0.01 if ci95[0] > 0 else -0.01, "ci95": ci95})
    assert shown in said and said.endswith("(the interval excludes 0)"), said


def test_transfer_rows_match_the_diagonal_by_precision_not_by_position():
    """Attack precisions listed in another order than the inference precisions (the table's reader allows
    it): the off-diagonal of a row is every inference precision but the row's own, wherever it stands, and
    the own attack at the weakest row's inference precision is read from that row."""
    tm = {"attack_precisions": ["8", "4", "2"], "inference_precisions": ["2", "4", "8"],
          "acc": [[0.05, 0.60, 0.70],    # row 8: off-diagonal (inference 2 and 4) mean 0.325
                  [0.30, 0.40, 0.50],    # row 4: 0.40
                  [0.01, 0.90, 0.80]]}   # row 2: 0.85 (transfers least)
    assert demo._transfer_rows("m", tm) == (
        "m: attacks crafted at 2 bits transfer least (mean accuracy 85.0% on the other inference precisions; "
        "the other rows 32.5-40.0%); at 2-bit inference the 2-bit attack leaves 1.0%, the others 5.0-30.0% "
        "(point estimates).")


def test_reprint_of_a_report_with_a_short_transfer_row_is_one_line(tmp_path, capsys):
    """A transfer matrix row shorter than its inference precisions (an IndexError in the readers) is
    refused in one line naming the error, exit status 2, with nothing printed on stdout."""
    rep = kept_report()
    rep["models"]["fixed4"]["transfer_matrix"]["acc"][0] = []
    path = tmp_path / "short.json"
    path.write_text(json.dumps(rep))
    assert demo.reprint([str(path)]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith(
        f"python -m dwq.cli.demo: error: {path} is not a complete report.json of dwq demo (IndexError: "), printed.err
    assert printed.err.count("\n") == 1, printed.err

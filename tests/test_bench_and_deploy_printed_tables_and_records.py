"""dwq deploy's and dwq bench's printed lines and bench's --json records (found by mutation), with the
timing stood in for: the header names the input size timed and only the precisions timed, each record
holds exactly its fields (the thread count actually used), records follow the table's order, --seconds
reaches the timing, the proposed set is given in set order whatever the order of --precisions, and a mean
latency equal to the budget fits; deploy's lines name the network, the precisions kept and the artifact
file's own size."""
import json
import os

import pytest
import torch
from deploy_models import calibrated
from test_deploy_cli_checks_before_the_work import _fake_latency, artifact, checkpoint, model  # noqa: F401

from dwq.cli.main import main
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

FIELDS = {"op", "shape", "bits", "impl", "median_ms", "min_ms", "threads"}


def test_bench_header_and_records_name_the_input_and_the_precisions_timed(artifact, tmp_path, capsys,  # noqa: F811
                                                                         monkeypatch):
    budgets = []
    timing = _fake_latency({2: {"8": (3.0, 2.5)}})

    def lat(model, x, ps, budget_s):
        budgets.append(budget_s)
        return timing(model, x, ps, budget_s)

    monkeypatch.setattr("dwq.deploy.latency_per_precision", lat)
    js = tmp_path / "lat.json"
    capsys.readouterr()
    # the model records 1x28x28; the size given is the one timed, named in the header and the records
    assert main(["bench", "--model", artifact, "--precisions", "8", "--batch-size", "2", "--input-size", "1", "20",
                 "24", "--seconds", "0.25", "--json", str(js)]) == 0
    threads = torch.get_num_threads()
    assert capsys.readouterr().out.splitlines() == [
        f"small_cnn integer model, {threads} threads, input 1x20x24",
        " batch         8   (median ms per forward)",
        "     2     3.000",
        f"wrote {js}"]
    assert budgets == [0.25]
    assert json.load(open(js)) == [{"op": "small_cnn", "shape": "b2 1x20x24", "bits": 8, "impl": "dwq_int",
                                    "median_ms": 3.0, "min_ms": 2.5, "threads": threads}]


def test_bench_records_follow_the_table_and_the_choice_is_in_set_order(artifact, tmp_path, capsys,  # noqa: F811
                                                                      monkeypatch):
    # the stand-in answers in the order of the precisions given (8 first), as latency_per_precision does
    monkeypatch.setattr("dwq.deploy.latency_per_precision", _fake_latency({1: {"8": (3.0, 2.5), "2": (1.0, 0.5)}}))
    js = tmp_path / "lat.json"
    capsys.readouterr()
    # a mean latency equal to the budget fits: (1 + 3) / 2 = 2
    assert main(["bench", "--model", artifact, "--precisions", "8", "2", "--json", str(js), "--budget-ms", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [" batch         8         2   (median ms per forward)",
                       "     1     3.000     1.000",
                       f"wrote {js}",
                       "largest set within 2 ms at batch 1: 2 8 (expected 2.000 ms)"]
    recs = json.load(open(js))
    assert [r["bits"] for r in recs] == [8, 2] and all(set(r) == FIELDS for r in recs)


def test_deploy_lines_name_the_network_the_precisions_kept_and_the_file_size(checkpoint, tmp_path,  # noqa: F811
                                                                            capsys):
    from dwq.deploy import format_size_report, load, size_report

    out = tmp_path / "m.safetensors"
    capsys.readouterr()
    assert main(["deploy", "--checkpoint", str(checkpoint), "--precisions", "8", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out}: small_cnn integer model, precisions 8"
    size = os.path.getsize(out)
    assert size > 2000  # (the stand-in checkpoint has 8 bytes: a table naming its size would say 0.000 MB)
    m = load(str(out))
    assert lines[1:] == format_size_report(size_report(m), size).splitlines()
    assert [line.split()[0] for line in lines[2:-1]] == ["8"]  # one row, of the precision kept
    assert lines[-1].endswith(f"artifact file (all precisions) {size / 1e6:.3f} MB")
    assert (m.info["network"], m.info["dataset"]) == ("small_cnn", "mnist5k")


def test_deploy_of_full_precision_only_says_no_layer_is_quantized(tmp_path, capsys, monkeypatch):
    """A set of fp alone wrote "integer model, precisions fp" with not one integer layer in it."""
    m = calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28))
    ck = {"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k"}}}
    monkeypatch.setattr("dwq.train.load_trained_model", lambda p, device="cpu": (m, ck))
    (tmp_path / "c.pt").write_bytes(b"stand-in")
    capsys.readouterr()
    for ps, note in ((["fp"], True), (["4", "fp"], False)):
        out = tmp_path / f"{'-'.join(ps)}.safetensors"
        assert main(["deploy", "--checkpoint", str(tmp_path / "c.pt"), "--precisions", *ps, "--out", str(out)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == (f"wrote {out}: small_cnn integer model, precisions {' '.join(ps)}"
                         + (" (no quantized precision: every layer computes in float32)" if note else ""))

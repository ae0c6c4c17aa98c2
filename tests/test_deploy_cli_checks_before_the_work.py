"""dwq deploy / dwq bench (found by mutation): what is refused before the conversion or the timing, what
the file and the table say, and which batch size the budget choice uses. The checkpoint loader, the
conversion and the timing are stood in for where only the command's own logic is checked."""
import json
import os

import pytest
import torch
from deploy_models import calibrated

from dwq.cli.main import main
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.fixture(scope="module")
def model():
    return calibrated(small_cnn(precisions=[2, 8], width=4), (8, 1, 28, 28))


@pytest.fixture
def checkpoint(model, tmp_path, monkeypatch):
    """A file standing for a dwq train checkpoint: the loader returns ``model`` and a config naming it."""
    path = tmp_path / "c.pt"
    path.write_bytes(b"stand-in")
    ck = {"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k"}}}
    monkeypatch.setattr("dwq.train.load_trained_model", lambda p, device="cpu": (model, ck))
    return path


@pytest.fixture(scope="module")
def artifact(model, tmp_path_factory):
    from dwq.deploy import convert, save

    path = str(tmp_path_factory.mktemp("art") / "m.safetensors")
    save(convert(model, info={"network": "small_cnn", "input_size": [1, 28, 28]}), path)
    return path


def _fails(argv, capsys, msg):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _not_called(*args, **kw):
    raise AssertionError("the work ran although an input was refused")


@pytest.mark.parametrize("budget", ["inf", "0", "-1"])
def test_bench_refuses_a_budget_that_is_not_finite_and_positive_before_loading(tmp_path, capsys, monkeypatch, budget):
    """(inf and 0 were timed first and then refused by choose_precisions with another message)"""
    monkeypatch.setattr("dwq.deploy.latency_per_precision", _not_called)
    _fails(["bench", "--model", str(tmp_path / "none.safetensors"), "--budget-ms", budget], capsys,
           f"--budget-ms must be a finite number > 0, got {float(budget)}")


def test_bench_refuses_an_existing_json_before_loading_the_model(tmp_path, capsys):
    js = tmp_path / "lat.json"
    js.write_text("keep")
    # the model does not exist either: the --json check comes first, before any load or timing
    _fails(["bench", "--model", str(tmp_path / "none.safetensors"), "--json", str(js)], capsys,
           f"--json {js} already exists; choose another path (dwq never overwrites)")
    assert js.read_text() == "keep"


def test_a_link_to_a_missing_file_as_json_or_out_is_refused_before_the_work(artifact, checkpoint, tmp_path, capsys,
                                                                            monkeypatch):
    """os.path.exists follows a link: one to a missing file passed the check, the model was timed and the
    exclusive write then refused it as "written by another process meanwhile"."""
    monkeypatch.setattr("dwq.deploy.latency_per_precision", _not_called)
    monkeypatch.setattr("dwq.deploy.convert", _not_called)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "missing.json")
    for argv, flag in ((["bench", "--model", artifact, "--json", str(link)], "--json"),
                       (["deploy", "--checkpoint", str(checkpoint), "--out", str(link)], "--out")):
        _fails(argv, capsys, f"{flag} {link} already exists (a link to {tmp_path / 'missing.json'}, which does "
                             f"not exist); choose another path")
    assert link.is_symlink() and not (tmp_path / "missing.json").exists()


def test_bench_threads_sets_torchs_thread_count(artifact, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert main(["bench", "--model", artifact, "--seconds", "0.01", "--threads", "1"]) == 0
    assert calls == [1]


def test_bench_refuses_a_recorded_input_size_with_a_zero(artifact, tmp_path, capsys):
    from deploy_models import rewrite_artifact

    path = rewrite_artifact(artifact, tmp_path / "m.safetensors", lambda m: m["info"].update(input_size=[1, 0, 28]))
    _fails(["bench", "--model", path, "--seconds", "0.01"], capsys,
           "records input_size [1, 0, 28], expected three positive ints [C, H, W]; give --input-size C H W")


def _fake_latency(per_batch):
    """latency_per_precision stand-in: ``per_batch[batch size]`` = {precision name: (median, min)}."""
    def lat(model, x, ps, budget_s):
        return {k: {"median_ms": med, "min_ms": mn, "reps": 3} for k, (med, mn) in per_batch[x.shape[0]].items()}
    return lat


def test_bench_table_records_and_budget_choice_use_the_measured_values(artifact, tmp_path, capsys, monkeypatch):
    """The choice is made on the first batch size (as the line says), and the records keep min_ms."""
    monkeypatch.setattr("dwq.deploy.latency_per_precision", _fake_latency(
        {1: {"2": (1.0, 0.5), "8": (3.0, 2.5)}, 3: {"2": (10.0, 9.0), "8": (30.0, 29.0)}}))
    js = tmp_path / "lat.json"
    capsys.readouterr()
    assert main(["bench", "--model", artifact, "--batch-size", "1", "3", "--json", str(js), "--budget-ms", "2.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "     1     1.000     3.000" in out and "     3    10.000    30.000" in out, out
    assert "largest set within 2.5 ms at batch 1: 2 8 (expected 2.000 ms)" in out, out
    recs = {(r["shape"], r["bits"]): (r["median_ms"], r["min_ms"]) for r in json.load(open(js))}
    assert recs == {("b1 1x28x28", 2): (1.0, 0.5), ("b1 1x28x28", 8): (3.0, 2.5),
                    ("b3 1x28x28", 2): (10.0, 9.0), ("b3 1x28x28", 8): (30.0, 29.0)}


def test_bench_json_written_by_another_process_during_the_write_is_not_replaced(artifact, tmp_path, capsys,
                                                                                monkeypatch):
    """Past both checks (stood in for by a no-op) the write itself is exclusive."""
    js = tmp_path / "lat.json"
    timing = _fake_latency({1: {"2": (1.0, 1.0), "8": (2.0, 2.0)}})

    def meanwhile(*args, **kw):
        js.write_text("theirs")
        return timing(*args, **kw)

    monkeypatch.setattr("dwq.deploy.latency_per_precision", meanwhile)
    monkeypatch.setattr("dwq.cli.deploy._new_file", lambda path, flag: None)
    _fails(["bench", "--model", artifact, "--json", str(js)], capsys,
           f"--json {js} was written by another process meanwhile; not overwritten")
    assert js.read_text() == "theirs"


def test_deploy_refuses_an_existing_folder_as_out_before_the_conversion(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dwq.deploy.convert", _not_called)
    folder = tmp_path / "taken"
    folder.mkdir()
    _fails(["deploy", "--checkpoint", str(checkpoint), "--out", str(folder)], capsys,
           f"--out {folder} already exists; choose another path (dwq never overwrites)")
    assert list(folder.iterdir()) == []


def test_deploy_checks_out_again_after_the_conversion(checkpoint, tmp_path, capsys, monkeypatch):
    """A file that appeared while the model converted is named as existing, and kept."""
    import dwq.deploy

    out = tmp_path / "m.safetensors"
    conversion = dwq.deploy.convert

    def meanwhile(*args, **kw):
        m = conversion(*args, **kw)
        out.write_text("theirs")
        return m

    monkeypatch.setattr(dwq.deploy, "convert", meanwhile)
    _fails(["deploy", "--checkpoint", str(checkpoint), "--out", str(out)], capsys,
           f"--out {out} already exists; choose another path (dwq never overwrites)")
    assert out.read_text() == "theirs"


def test_deploy_records_the_checkpoint_as_an_absolute_path(checkpoint, tmp_path, capsys, monkeypatch):
    from dwq.deploy import load

    monkeypatch.chdir(tmp_path)
    assert main(["deploy", "--checkpoint", "c.pt", "--precisions", "8", "--out", "m.safetensors"]) == 0
    info = load(str(tmp_path / "m.safetensors")).info
    assert info["checkpoint"] == os.path.join(str(tmp_path), "c.pt")
    assert info["num_classes"] == 10 and info["input_size"] == [1, 28, 28] and info["network"] == "small_cnn"


def test_deploy_conversion_error_is_one_line_and_writes_nothing(checkpoint, tmp_path, capsys, monkeypatch):
    """A model that cannot be converted is the user's input, not a fault of the library: one line even
    where DWQ_TRACEBACK=1 asks for the traceback of library errors."""
    from dwq.deploy import ConversionError

    def refused(*args, **kw):
        raise ConversionError("conv1: cannot be converted (stand-in)")

    monkeypatch.setattr("dwq.deploy.convert", refused)
    monkeypatch.setenv("DWQ_TRACEBACK", "1")
    _fails(["deploy", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.safetensors")], capsys,
           "dwq deploy: error: conv1: cannot be converted (stand-in)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_bench_defaults():
    from dwq.cli.main import build_parser

    a = build_parser().parse_args(["bench", "--model", "m.safetensors"])
    assert (a.seconds, a.batch_size, a.precisions, a.input_size, a.threads, a.json, a.budget_ms) == (
        2.0, [1], None, None, None, None, None)
    d = build_parser().parse_args(["deploy", "--checkpoint", "c.pt", "--out", "m.safetensors"])
    assert d.precisions is None

"""dwq deploy / dwq bench: a checkpoint from dwq train -> an integer model file -> latency per precision;
bad input gives one line and exit status 2, and nothing is overwritten."""
import json
import os

import pytest
import torch
from deploy_models import rewrite_artifact

import dwq
from dwq.cli.main import main
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

TRAIN = ["train", "--train-subset", "320", "--epochs", "1", "--attack-iters", "1", "--width", "8",
         "--precisions", "2", "4", "8", "--random-precision-training", "--switchable-bn", "--val-size", "48",
         "--val-pgd-steps", "1", "--epsilon", "0.1", "--alpha", "0.05", "--batch-size", "32", "--no-progress",
         "--workers", "0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(TRAIN + ["--out", str(out / "r")]) == 0
    return str(out / "r" / "last.pt")


@pytest.fixture(scope="module")
def artifact(checkpoint, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("art") / "model.safetensors")
    assert main(["deploy", "--checkpoint", checkpoint, "--precisions", "2", "8", "--out", path]) == 0
    return path


def _fails(argv, capsys, msg):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err, err
    assert err.count("\n") == 1 and err.startswith(f"dwq {argv[0]}: error: ") and "Traceback" not in err
    return err


def test_deploy_writes_a_loadable_integer_model(checkpoint, artifact, capsys):
    from dwq.deploy import convert, load
    from dwq.train import load_trained_model

    m = load(artifact)
    assert m.precisions == [2, 8] and m.info["network"] == "small_cnn" and m.info["input_size"] == [1, 28, 28]
    fq, _ = load_trained_model(checkpoint)
    x = torch.rand(4, 1, 28, 28)
    ref = convert(fq, [2, 8])
    for p in (2, 8):
        with torch.no_grad(), dwq.precision(m, p), dwq.precision(ref, p):
            assert torch.equal(m(x), ref(x))


def test_deploy_prints_the_size_report(checkpoint, tmp_path, capsys):
    path = tmp_path / "all.safetensors"
    capsys.readouterr()
    assert main(["deploy", "--checkpoint", checkpoint, "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "precisions 2 4 8" in out and "of fp32" in out and "artifact file" in out
    assert " 0.0625 " in out and " 0.2500 " in out  # 2/32 and 8/32 of the float32 weight bytes


def test_deploy_bad_input(checkpoint, artifact, tmp_path, capsys):
    before = open(artifact, "rb").read()
    _fails(["deploy", "--checkpoint", checkpoint, "--out", artifact], capsys, "already exists")
    assert open(artifact, "rb").read() == before
    new = tmp_path / "n.safetensors"
    _fails(["deploy", "--checkpoint", checkpoint, "--precisions", "4", "6", "--out", str(new)], capsys,
           "--precisions: precision 6 is not in the checkpoint's precision set 2 4 8")
    _fails(["deploy", "--checkpoint", checkpoint, "--precisions", "4", "4", "--out", str(new)], capsys,
           "--precisions repeats a precision: 4 4")
    _fails(["deploy", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(new)], capsys, "does not exist")
    _fails(["deploy", "--checkpoint", str(tmp_path), "--out", str(new)], capsys,
           f"--checkpoint {tmp_path} is a run folder; give a checkpoint file in it, e.g. {tmp_path}/best.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    _fails(["deploy", "--checkpoint", str(tmp_path / "bad.pt"), "--out", str(new)], capsys,
           "not a loadable dwq checkpoint")
    _fails(["deploy", "--checkpoint", checkpoint, "--out", str(tmp_path / "no" / "dir.safetensors")], capsys,
           "does not exist")
    # a trailing slash: abspath dropped it, so the parent looked fine and only the write failed
    _fails(["deploy", "--checkpoint", checkpoint, "--out", f"{tmp_path}/new/"], capsys,
           f"--out {tmp_path}/new/: names a folder; give the new file's name")
    assert not new.exists() and not (tmp_path / "new").exists()


def test_files_that_cannot_be_written_are_one_line_errors(checkpoint, artifact, tmp_path, capsys, monkeypatch):
    """A read-only --out / --json folder raised a raw PermissionError / OSError traceback, after the
    conversion or the timing; now it is refused first, and a write that fails (disk full) is one line."""
    import os

    from dwq.cli import common

    def refused(**kw):  # a read-only mount (root passes permission bits)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(common.tempfile, "mkstemp", refused)
    out = tmp_path / "m.safetensors"
    _fails(["deploy", "--checkpoint", checkpoint, "--out", str(out)], capsys,
           f"--out {tmp_path}: cannot write into the folder (Read-only file system)")
    _fails(["bench", "--model", artifact, "--json", str(tmp_path / "l.json")], capsys,
           f"--json {tmp_path}: cannot write into the folder (Read-only file system)")
    monkeypatch.undo()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    _fails(["deploy", "--checkpoint", checkpoint, "--precisions", "2", "--out", str(out)], capsys,
           f"--out {out}: cannot write (No space left on device)")
    _fails(["bench", "--model", artifact, "--seconds", "0.01", "--json", str(tmp_path / "l.json")], capsys,
           f"--json {tmp_path / 'l.json'}: cannot write (No space left on device)")
    assert list(tmp_path.iterdir()) == []


def test_bench_times_every_precision_and_proposes_a_set(artifact, tmp_path, capsys):
    js = tmp_path / "lat.json"
    capsys.readouterr()
    assert main(["bench", "--model", artifact, "--batch-size", "1", "3", "--seconds", "0.05", "--json", str(js),
                 "--budget-ms", "1000"]) == 0
    out = capsys.readouterr().out
    assert "largest set within 1000 ms at batch 1: " in out
    recs = json.load(open(js))
    assert {(r["shape"], r["bits"], r["impl"]) for r in recs} == {
        (s, b, "dwq_int") for s in ("b1 1x28x28", "b3 1x28x28") for b in (2, 8)}
    assert all(r["median_ms"] > 0 and r["min_ms"] <= r["median_ms"] for r in recs)
    from dwq.deploy import latency_from_records
    assert set(latency_from_records(str(js), shape="b3 1x28x28")) == {"2", "8"}


def test_bench_bad_input(artifact, tmp_path, capsys):
    _fails(["bench", "--model", artifact, "--precisions", "4"], capsys,
           "--precisions: precision 4 is not in the model's precision set 2 8")
    js = tmp_path / "exists.json"
    js.write_text("keep")
    _fails(["bench", "--model", artifact, "--json", str(js)], capsys, "already exists")
    assert js.read_text() == "keep"
    data = open(artifact, "rb").read()
    (tmp_path / "cut.safetensors").write_bytes(data[:len(data) // 2])
    _fails(["bench", "--model", str(tmp_path / "cut.safetensors")], capsys, "corrupt or truncated")
    kept = tmp_path / "kept.json"
    _fails(["bench", "--model", artifact, "--budget-ms", "0.000001", "--seconds", "0.01", "--json", str(kept)], capsys,
           "no precision fits a budget")
    assert {r["bits"] for r in json.load(open(kept))} == {2, 8}  # the measurements are kept
    _fails(["bench", "--model", artifact, "--budget-ms", "nan"], capsys, "--budget-ms must be a finite number > 0, got nan")


def test_bench_refuses_repeats_that_would_write_records_latency_from_records_refuses(artifact, tmp_path, capsys):
    js = tmp_path / "lat.json"
    _fails(["bench", "--model", artifact, "--batch-size", "1", "1", "--seconds", "0.01", "--json", str(js)], capsys,
           "--batch-size repeats a size: 1 1")
    _fails(["bench", "--model", artifact, "--precisions", "8", "2", "8w8a", "--seconds", "0.01", "--json", str(js)],
           capsys, "--precisions repeats a precision: 8 2 8")
    assert not js.exists()


@pytest.mark.parametrize("argv,msg", [
    (["--seconds", "nan"], "argument --seconds: must be a finite number, got nan"),
    (["--seconds", "inf"], "argument --seconds: must be a finite number, got inf"),
    (["--seconds", "0"], "argument --seconds: must be > 0, got 0"),
    (["--threads", "100000"], "argument --threads: 100000 threads, but this process may use"),
])
def test_bench_refuses_nonsense_seconds_and_thread_counts(tmp_path, capsys, argv, msg):
    """inf/nan seconds ran 50 rounds as if given; 100,000 threads segfaulted in the OpenMP runtime."""
    js = tmp_path / "lat.json"
    with pytest.raises(SystemExit) as e:
        main(["bench", "--model", str(tmp_path / "m.safetensors"), "--json", str(js)] + argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and err.count("\n") == 1, err
    assert not js.exists()


def test_bench_input_that_cannot_be_allocated_is_one_line(artifact, capsys):
    n = 2**31 - 1  # (the largest count the flags take: 6.7 TB of float32 images)
    _fails(["bench", "--model", artifact, "--batch-size", str(n)], capsys,
           f"cannot allocate a random input of {n}x1x28x28 (--batch-size x --input-size): ")


def test_bench_json_that_appeared_during_the_timing_is_not_overwritten(artifact, tmp_path, capsys, monkeypatch):
    import dwq.deploy

    js = tmp_path / "lat.json"
    timing = dwq.deploy.latency_per_precision

    def meanwhile(*args, **kw):  # another program writes the file while dwq bench times
        js.write_text("theirs")
        return timing(*args, **kw)

    monkeypatch.setattr(dwq.deploy, "latency_per_precision", meanwhile)
    _fails(["bench", "--model", artifact, "--seconds", "0.01", "--json", str(js)], capsys, "already exists")
    assert js.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["lat.json"]


def test_an_out_written_by_another_deploy_meanwhile_is_not_replaced(checkpoint, tmp_path, capsys, monkeypatch):
    """Two `dwq deploy` given one new --out both checked it was absent and both said "wrote": the later
    rename replaced the earlier one's artifact."""
    import dwq.deploy

    out = tmp_path / "m.safetensors"
    conversion = dwq.deploy.convert

    def meanwhile(*args, **kw):  # the other command's write ends while this one converts
        model = conversion(*args, **kw)
        out.write_text("theirs")
        return model

    # (cmd_deploy checks before and after the conversion; the write's own check is the one left)
    monkeypatch.setattr(dwq.deploy, "convert", meanwhile)
    monkeypatch.setattr("dwq.cli.deploy._new_file", lambda path, flag: None)
    _fails(["deploy", "--checkpoint", checkpoint, "--out", str(out)], capsys,
           "was written by another process meanwhile; not overwritten")
    assert out.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_an_out_name_too_long_for_the_temporary_file_is_refused_before_the_conversion(checkpoint, tmp_path, capsys):
    out = tmp_path / ("m" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 10))
    _fails(["deploy", "--checkpoint", checkpoint, "--out", str(out)], capsys, "file name too long")
    assert list(tmp_path.iterdir()) == []


def test_every_deploy_flag_has_help():
    from dwq.cli.main import build_parser

    subs = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in ("deploy", "bench"):
        for act in subs[name]._actions:
            assert act.help, f"dwq {name} {act.option_strings} has no help"


def test_eval_integer_attacks_the_integer_model(checkpoint, tmp_path, capsys):
    """dwq eval --integer: the protocols run against the true-integer model (straight-through gradients
    from the fake-quant twin); clean accuracy equals the integer model's own predictions."""
    from dwq.data import load_mnist5k
    from dwq.deploy import convert
    from dwq.train import load_trained_model

    ev = tmp_path / "ev"
    assert main(["eval", "--checkpoint", checkpoint, "--out", str(ev), "--integer", "--n-test", "40", "--steps", "2",
                 "--no-progress"]) == 0
    rep = json.load(open(ev / "report.json"))
    assert rep["integer"] is True and rep["settings"]["model"]["from"] == "given: --integer"
    assert set(rep["bitops"]["per_precision"]) == {"2", "4", "8"}
    fq, _ = load_trained_model(checkpoint)
    im = convert(fq)
    x, y = load_mnist5k("test").tensors
    for p in (2, 4, 8):
        with torch.no_grad(), dwq.precision(im, p):
            acc = (im(x[:40]).argmax(1) == y[:40]).float().mean().item()
        assert rep["clean_acc"][str(p)]["acc"] == pytest.approx(acc)
    assert "true-integer" in capsys.readouterr().out


def test_an_integer_model_given_as_a_checkpoint_is_named_with_its_source(checkpoint, artifact, tmp_path, capsys):
    """dwq deploy's output handed back to dwq eval or dwq deploy: torch.load reads some safetensors
    files as a bare dict of tensors, and the file was then called a reference-code checkpoint. It is
    named as what it is, with the checkpoint it came from; a foreign safetensors file is named too."""
    import os

    from safetensors.torch import save_file

    src = os.path.abspath(checkpoint)
    for argv in (["eval", "--checkpoint", artifact, "--out", str(tmp_path / "e")],
                 ["deploy", "--checkpoint", artifact, "--out", str(tmp_path / "again.safetensors")]):
        err = _fails(argv, capsys, f"{artifact} is a dwq integer model (written by dwq deploy), not a checkpoint "
                                   f"of dwq train; give the best.pt or last.pt it was converted from ({src})")
        assert "reference" not in err
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    _fails(["eval", "--checkpoint", str(foreign), "--out", str(tmp_path / "e")], capsys,
           f"{foreign} is a safetensors file, not a dwq checkpoint")
    assert not (tmp_path / "e").exists() and not (tmp_path / "again.safetensors").exists()


@pytest.mark.parametrize("size", ["1x28x28", [1, 28.0, 28], [1, 28], [1, -28, 28], [True, 28, 28]])
def test_bench_refuses_a_recorded_input_size_that_is_not_three_positive_ints(artifact, tmp_path, capsys, size):
    """A string or a float in the file's info.input_size gave torch.rand's traceback."""
    path = rewrite_artifact(artifact, tmp_path / "m.safetensors", lambda m: m["info"].update(input_size=size))
    _fails(["bench", "--model", path, "--seconds", "0.01"], capsys,
           f"records input_size {size!r}, expected three positive ints [C, H, W]; give --input-size C H W")
    capsys.readouterr()
    assert main(["bench", "--model", path, "--seconds", "0.01", "--input-size", "1", "28", "28"]) == 0


def test_bench_of_a_pooling_step_with_kernel_0_is_one_line(artifact, tmp_path, capsys):
    """The file loaded and the forward on codes divided by zero: a ZeroDivisionError traceback."""
    def kernel_0(m):
        next(s for s in m["program"] if s.get("fn") == "max_pool2d")["kwargs"]["kernel_size"] = 0

    path = rewrite_artifact(artifact, tmp_path / "m.safetensors", kernel_0)
    _fails(["bench", "--model", path, "--seconds", "0.01"], capsys,
           "(max_pool2d): kernel_size must be an int or a pair of ints >= 1, got 0")

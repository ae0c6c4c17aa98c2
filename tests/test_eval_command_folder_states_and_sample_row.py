"""dwq eval's glue (dwq.cli.main._eval) with the checkpoint, the test set and the evaluation stood in for (the
fixture of test_eval_command_passes_its_settings): the error a run without --resume gets for an --out that
holds a finished evaluation killed before it removed its stages (no "interrupted" hint: it holds report.json),
the stages folder removed once the report is written, and the "test images" row of a class-sorted test set,
which says its --n-test images are a random sample."""
import os

import dwq.data
import dwq.eval
from dwq.cli.main import main
from test_eval_command_passes_its_settings import N, fake  # noqa: F401  (fake: a pytest fixture)


def test_a_finished_evaluation_with_stages_left_is_not_called_interrupted(fake, tmp_path, capsys):  # noqa: F811
    """--out holding stages/ and report.json (killed after the report, before removing the stages): refused as
    a non-empty folder, without the hint for an interrupted evaluation (it has its report)."""
    out = tmp_path / "e"
    (out / "stages").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    assert main(fake["argv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dwq eval: error: ") and "holds no report.json" not in err, err
    assert not fake["calls"], "the evaluation ran in a folder that was not fresh"
    # an --out with stages/ alone is the interrupted one: the hint names --resume
    os.remove(out / "report.json")
    assert main(fake["argv"]) == 2
    assert "it holds no report.json: an interrupted evaluation; continue it with --resume" in capsys.readouterr().err


def test_the_stages_folder_is_removed_once_the_report_is_written(fake, tmp_path, monkeypatch):  # noqa: F811
    """A finished evaluation is its report: the stages it saved (stage_dir) are gone after main returns."""
    stand_in = dwq.eval.evaluate

    def evaluate(target, x, y, ps, **kw):  # saves a stage, as the real evaluation does
        os.makedirs(kw["stage_dir"], exist_ok=True)
        open(os.path.join(kw["stage_dir"], "clean.pt"), "wb").close()
        return stand_in(target, x, y, ps, **kw)

    monkeypatch.setattr(dwq.eval, "evaluate", evaluate)
    assert main(fake["argv"] + ["--protocols", "paper"]) == 0
    assert fake["calls"][0]["stage_dir"] == str(tmp_path / "e" / "stages")
    assert not (tmp_path / "e" / "stages").exists(), f"stages kept beside the report: {os.listdir(tmp_path / 'e')}"


def test_n_test_of_a_class_sorted_test_set_is_said_to_be_a_random_sample(fake, monkeypatch):  # noqa: F811
    """An ImageNet-like (class-sorted: samples and class_to_idx) test set's row says "a random sample (seed 0)";
    (an unsorted one's plain "4 of N" is pinned in test_eval_command_passes_its_settings)."""
    _, test, info = dwq.data.get_datasets()
    test.samples, test.class_to_idx = [None] * N, {}  # (what ImageFolder has)
    fake["dataset"] = "imagenet"
    assert main(fake["argv"] + ["--n-test", "4", "--protocols", "paper"]) == 0
    row = fake["reports"][0]["settings"]["test images"]
    assert row == {"value": f"4 of {N}, a random sample (seed 0)", "from": "given"}, row

"""dwq.cli.demo_resume called directly on folders made in the test: which folder an interrupted demo
leaves and --resume takes, the settings compared (a changed or missing one refused, by its flag), the
kept results read back as written, a model's training resumed or restarted, and what the finish removes."""
import json
import os

import pytest

from dwq.cli.common import CLIError
from dwq.cli.demo_resume import (SETTINGS, check_resumable, finish, interrupted, keep_result, kept_result,
                                 resume_training, stage_dir, start)
from dwq.eval.stages import ADDED_LATER

SETTINGS_HERE = {"epochs": 2, "n_test": 16, "train_images": 64, "autoattack_n": 8, "autoattack_steps": 100,
                 "autoattack_eot": 20, "seed": 0, "threads": 1, "dwq_version": "1.0", "torch": "2.5.0",
                 "kernels": "cpu AVX2"}


def _demo(tmp_path, settings=SETTINGS_HERE):
    out = tmp_path / "demo"
    out.mkdir()
    start(str(out), settings)
    return out


def test_an_empty_folder_or_one_with_a_temporary_settings_file_is_a_start(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    assert check_resumable(str(out), SETTINGS_HERE) is False and os.listdir(out) == []
    (out / (SETTINGS + ".host.1.0a1b2c3d.tmp")).write_text('{"sett')
    assert check_resumable(str(out), SETTINGS_HERE) is False and os.listdir(out) == []


def test_which_folders_a_run_without_resume_names_as_an_interrupted_demo(tmp_path):
    """The hint "continue it with --resume" of dwq demo's refusal: a folder holding only a temporary
    settings file (a kill while it was written) got none, though --resume takes it."""
    out = tmp_path / "demo"
    assert not interrupted(str(out))
    out.mkdir()
    assert not interrupted(str(out))  # (empty: a run without --resume takes it anyway)
    tmp = out / (SETTINGS + ".host.1.0a1b2c3d.tmp")
    tmp.write_text('{"sett')
    assert interrupted(str(out))
    (out / "other.txt").write_text("")
    assert not interrupted(str(out))
    os.remove(out / "other.txt")
    start(str(out), SETTINGS_HERE)
    assert interrupted(str(out))
    (out / "report.json").write_text("{}")
    assert not interrupted(str(out))


def test_a_settings_file_beside_a_temporary_one_is_the_demo_resumed(tmp_path):
    """Only a folder holding nothing but temporary files is emptied: demo_run.json beside a temporary
    one (a kill while a result was written, say) is the run to resume, kept as it is."""
    out = _demo(tmp_path)
    (out / (SETTINGS + ".host.1.0a1b2c3d.tmp")).write_text("{")
    (out / "result_fp.json.host.1.0a1b2c3d.tmp").write_text("{")
    assert check_resumable(str(out), SETTINGS_HERE) is True
    assert json.loads((out / SETTINGS).read_text())["settings"] == SETTINGS_HERE


def test_a_folder_of_a_dwq_that_recorded_no_kernels_resumes(tmp_path):
    """torch and kernels were added to the settings later: a folder without them is compared on the rest."""
    assert set(ADDED_LATER) == {"torch", "kernels"}
    old = {k: v for k, v in SETTINGS_HERE.items() if k not in ADDED_LATER}
    out = _demo(tmp_path, old)
    assert check_resumable(str(out), SETTINGS_HERE) is True
    with pytest.raises(CLIError, match=r"--epochs 2 there, 3 here$"):
        check_resumable(str(out), {**SETTINGS_HERE, "epochs": 3})


def test_a_setting_recorded_on_one_side_only_is_refused(tmp_path):
    """A key the interrupted demo did not record (other than the kernels) is a changed setting."""
    old = {k: v for k, v in SETTINGS_HERE.items() if k != "threads"}
    out = _demo(tmp_path, old)
    with pytest.raises(CLIError, match=r"ran with other settings: --threads None there, 1 here$"):
        check_resumable(str(out), SETTINGS_HERE)
    out2 = tmp_path / "other"
    out2.mkdir()
    start(str(out2), {**SETTINGS_HERE, "extra": 1})
    with pytest.raises(CLIError, match=r"extra 1 there, None here$"):
        check_resumable(str(out2), SETTINGS_HERE)


@pytest.mark.parametrize("key, named", [("epochs", "--epochs"), ("n_test", "--n-test"),
                                        ("train_images", "--train-images"), ("autoattack_n", "--autoattack-n"),
                                        ("seed", "--seed"), ("threads", "--threads"),
                                        ("autoattack_steps", "autoattack_steps"), ("dwq_version", "dwq_version"),
                                        ("kernels", "kernels")])
def test_each_changed_setting_is_refused_and_named_by_its_flag_where_one_sets_it(tmp_path, key, named):
    out = _demo(tmp_path)
    before = sorted(os.listdir(out))
    with pytest.raises(CLIError) as e:
        check_resumable(str(out), {**SETTINGS_HERE, key: "changed"})
    assert str(e.value) == (f"--resume: the interrupted demo ran with other settings: "
                            f"{named} {SETTINGS_HERE[key]!r} there, 'changed' here")
    assert sorted(os.listdir(out)) == before


@pytest.mark.parametrize("content", ['{"settings": [1, 2]}', '{"settings": "x"}', '{"other": {}}', "[1]", "{",
                                     '{"settings": null}'])
def test_an_unreadable_settings_file_is_refused_in_one_line(tmp_path, content):
    out = tmp_path / "demo"
    out.mkdir()
    (out / SETTINGS).write_text(content)
    with pytest.raises(CLIError, match=rf"--resume: {out} is not an interrupted dwq demo \(no readable {SETTINGS}\)$"):
        check_resumable(str(out), SETTINGS_HERE)
    assert os.listdir(out) == [SETTINGS]


def test_a_folder_without_settings_is_not_a_demo(tmp_path):
    out = tmp_path / "demo"
    (out / "fp").mkdir(parents=True)
    with pytest.raises(CLIError, match="is not an interrupted dwq demo"):
        check_resumable(str(out), SETTINGS_HERE)
    assert os.listdir(out) == ["fp"]


def test_a_finished_demo_is_refused_and_the_resume_files_a_kill_left_are_removed(tmp_path):
    out = _demo(tmp_path)
    (out / "report.json").write_text("{}")
    (out / "result_fp.json").write_text("{}")
    (out / "stages_rpt").mkdir()
    (out / "fp").mkdir()
    with pytest.raises(CLIError, match=r"holds a finished demo \(report.json\); nothing to resume \(removed "
                                       r"demo_run.json, result_fp.json, stages_rpt, which"):
        check_resumable(str(out), SETTINGS_HERE)
    assert sorted(os.listdir(out)) == ["fp", "report.json"]


def test_the_finish_removes_the_temporary_files_a_kill_left_too(tmp_path):
    """A kill while result_<model>.json was written (on an earlier run of a resumed demo) left its
    temporary file, which nothing reads, beside the report."""
    out = _demo(tmp_path)
    (out / "result_fp.json").write_text("{}")
    (out / "result_rpt.json.h1a2b.0f3c9a1e.tmp").write_text("{")
    (out / f"{SETTINGS}.h1a2b.77aa00ff.tmp").write_text("{")
    (out / "report.json").write_text("{}")
    finish(str(out))
    assert sorted(os.listdir(out)) == ["report.json"]


def test_a_kept_result_reads_back_as_written_and_its_stages_are_removed(tmp_path):
    out = _demo(tmp_path)
    result = {"what": "RPT", "clean_acc": {"4": {"acc": 0.1 + 0.2, "ci95": [1 / 3, 2 / 3]}},
              "transfer_matrix": [[0.5, 0.25], [0.125, 1e-17]], "rpi": {"paper": {"acc": 0.7}}, "n": 16}
    stages = stage_dir(str(out), "rpt")
    assert stages == str(out / "stages_rpt")
    os.makedirs(stages)
    (out / "stages_rpt" / "clean.json").write_text("{}")
    (out / "stages_fp").mkdir()
    assert kept_result(str(out), "rpt") is None
    keep_result(str(out), "rpt", result)
    assert kept_result(str(out), "rpt") == result and kept_result(str(out), "fp") is None
    assert not os.path.exists(stages) and (out / "stages_fp").is_dir()  # (only the kept model's stages)


def test_a_resumed_training_says_its_epoch_and_keeps_its_folder(tmp_path):
    class Saved:
        epoch = 3

        def resume(self):
            return True

    (tmp_path / "rpt").mkdir()
    (tmp_path / "rpt" / "last.pt").write_bytes(b"x")
    assert resume_training(Saved(), str(tmp_path), "rpt") == 3
    assert (tmp_path / "rpt" / "last.pt").read_bytes() == b"x"


def test_a_model_that_had_not_started_its_training_starts_it(tmp_path):
    """No last.pt and no folder at all (a kill before this model began): nothing to remove."""
    class NeverSaved:
        def resume(self):
            return False

    assert resume_training(NeverSaved(), str(tmp_path), "fixed4") is None
    assert os.listdir(tmp_path) == []


def test_the_finish_removes_every_resume_file_and_nothing_else(tmp_path):
    out = _demo(tmp_path)
    for name in ("fp", "fixed4", "rpt"):
        (out / name).mkdir()
        (out / name / "last.pt").write_bytes(b"x")
        (out / f"result_{name}.json").write_text("{}")
        (out / f"transfer_{name}.png").write_bytes(b"png")
    (out / "stages_rpt").mkdir()
    (out / "stages_rpt" / "clean.json").write_text("{}")
    (out / "report.json").write_text("{}")
    finish(str(out))
    assert sorted(os.listdir(out)) == ["fixed4", "fp", "report.json", "rpt", "transfer_fixed4.png", "transfer_fp.png",
                                       "transfer_rpt.png"]
    assert all((out / name / "last.pt").is_file() for name in ("fp", "fixed4", "rpt"))

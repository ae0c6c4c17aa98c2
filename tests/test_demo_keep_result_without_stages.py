"""dwq.cli.demo_resume.keep_result where the model's evaluation left no stages folder (found by a second
mutation audit): the result is kept all the same, and another model's stages are left alone."""
import os

from dwq.cli.demo_resume import keep_result, kept_result, stage_dir


def test_a_result_without_a_stages_folder_is_kept(tmp_path):
    os.mkdir(stage_dir(str(tmp_path), "rpt"))
    keep_result(str(tmp_path), "fp", {"clean": 0.5})
    assert kept_result(str(tmp_path), "fp") == {"clean": 0.5}
    assert sorted(os.listdir(tmp_path)) == ["result_fp.json", "stages_rpt"]

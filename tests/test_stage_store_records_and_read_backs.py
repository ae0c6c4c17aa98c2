"""dwq.eval.stages.StageStore on hand-made identities and stages: settings no stage depends on (the
protocols) do not make another evaluation, PGD settings a resume fills in are recorded for the next one,
a folder of a dwq before --cw-steps ran its CW attacks at the reference's steps, a stage file renamed by
hand is refused, and what a resume took back (stages and batches) is counted."""
import json

import pytest
import torch
from test_stage_identity import settings_ident as _ident

from dwq.eval.attacks import CW_ATTACKS, REFERENCE_CW_STEPS
from dwq.eval.stages import StageDirError, StageStore, resumable_map


def test_other_protocols_are_the_same_evaluation(tmp_path):
    StageStore(str(tmp_path), _ident(seed=1, protocols=["paper"]))
    StageStore(str(tmp_path), _ident(seed=1, protocols=["adaptive", "paper"]))


def test_pgd_settings_filled_in_by_a_resume_are_recorded(tmp_path):
    StageStore(str(tmp_path), _ident(steps=None))
    StageStore(str(tmp_path), _ident(steps=1))
    assert json.loads((tmp_path / "evaluation.json").read_text())["settings"]["steps"] == 1
    with pytest.raises(StageDirError, match="another evaluation: steps 1 there, 3 here"):
        StageStore(str(tmp_path), _ident(steps=3))


def test_a_folder_without_cw_steps_ran_the_reference_steps(tmp_path):
    attack = sorted(CW_ATTACKS)[0]
    (tmp_path / "evaluation.json").write_text(json.dumps(_ident(attack=attack)))
    StageStore(str(tmp_path), _ident(attack=attack, cw_steps=REFERENCE_CW_STEPS))
    with pytest.raises(StageDirError, match=f"cw_steps {REFERENCE_CW_STEPS} there, 7 here"):
        StageStore(str(tmp_path), _ident(attack=attack, cw_steps=7))


def test_a_renamed_stage_file_is_refused(tmp_path):
    StageStore(str(tmp_path), _ident()).run("a", lambda: 1)
    (tmp_path / "a.pt").rename(tmp_path / "b.pt")
    with pytest.raises(StageDirError, match="holds the result of stage 'a', not 'b'"):
        StageStore(str(tmp_path), _ident()).run("b", lambda: 2)


def test_a_resume_counts_the_stages_and_batches_it_read_back(tmp_path):
    def stage(kill_at=None):
        def fn(i):
            if i == kill_at:
                raise KeyboardInterrupt
            return torch.tensor(i)
        return torch.stack(resumable_map(fn, [(i,) for i in range(4)]))

    StageStore(str(tmp_path), _ident()).run("a", stage)
    with pytest.raises(KeyboardInterrupt):
        StageStore(str(tmp_path), _ident()).run("b", lambda: stage(kill_at=2))
    s = StageStore(str(tmp_path), _ident())
    assert s.run("a", stage).tolist() == [0, 1, 2, 3] and s.run("b", stage).tolist() == [0, 1, 2, 3]
    assert s.read_back == ["a"] and s.batches_read_back == 2


def test_refuse_others_passes_over_a_temporary_file_a_killed_write_left(tmp_path):
    s = StageStore(str(tmp_path), _ident())
    name = "autoattack-rand steps=2"
    (tmp_path / (s._path(name).rsplit("/", 1)[1] + ".host.0a1b2c3d.tmp")).write_bytes(b"partial")
    s.refuse_others(name, "autoattack-rand", "--autoattack-steps")
    (tmp_path / "autoattack-rand_steps_3.pt").write_bytes(b"")
    with pytest.raises(StageDirError, match="autoattack-rand_steps_3.pt holds autoattack-rand with other settings"):
        s.refuse_others(name, "autoattack-rand", "--autoattack-steps")

"""dwq.eval.stages.StageStore on hand-made identities and stages: a record or stage file that is not what
dwq wrote (a JSON list, a file without its keys) is refused with StageDirError naming it, a finished stage
leaves no batch folder, a resume restores the stage's generators and its map's own together, counts the
batches of every stage it read back, and refuse_others looks only at names that start with the kind."""
import pytest
import torch
from test_stage_identity import settings_ident as _ident

from dwq._torch_file import torch_save_atomic
from dwq.eval.stages import StageDirError, StageStore, resumable_map


def test_a_record_that_is_not_a_json_object_is_another_evaluation(tmp_path):
    """An evaluation.json holding a JSON list (a hand-edited file) differs from every identity: refused
    with StageDirError naming what differs, not an AttributeError of reading a list as a dict."""
    (tmp_path / "evaluation.json").write_text("[1, 2]")
    with pytest.raises(StageDirError, match=r"holds the stages of another evaluation: the model: a \? there"):
        StageStore(str(tmp_path), _ident(seed=1))


@pytest.mark.parametrize("name,saved,msg", [
    ("s.pt", {"result": 1}, r"s.pt holds no stage result; remove .*s.pt to run that stage again"),
    ("s.parts/0.0.pt", {"result": 1}, r"0.0.pt holds no batch result; remove .*0.0.pt to run that batch again")],
    ids=["stage", "batch"])
def test_a_file_without_its_entries_is_refused_naming_it(tmp_path, name, saved, msg):
    """A stage file without its stage name, or a batch file without its generator states, is a file dwq
    did not write: StageDirError saying which file to remove, not a KeyError."""
    store = StageStore(str(tmp_path), _ident())
    (tmp_path / "s.parts").mkdir()
    torch_save_atomic(str(tmp_path / name), saved)
    with pytest.raises(StageDirError, match=msg):
        store.run("s", lambda: resumable_map(lambda i: i, [(0,), (1,)]))


def test_a_finished_stage_leaves_only_its_stage_file(tmp_path):
    """Once the stage file holds the result, the finished batches of the stage are removed with their
    folder: the folder holds the record and the stage file alone."""
    store = StageStore(str(tmp_path), _ident())
    assert store.run("s", lambda: resumable_map(lambda i: i * 2, [(i,) for i in range(3)])) == [0, 2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "s.pt"]


def _stage(g_stage, g_map, kill_at=None):
    """A stage that seeds its own generator and draws from it and from its map's generator per item."""
    g_stage.manual_seed(1)

    def fn(i):
        if i == kill_at:
            raise KeyboardInterrupt
        return float(torch.rand(1, generator=g_stage) + 10 * torch.rand(1, generator=g_map))
    return resumable_map(fn, [(i,) for i in range(4)], generators=[g_map])


def test_a_resume_restores_the_stages_generators_and_the_maps_own(tmp_path):
    """A batch saves the states of the generators given to the stage and of the ones given to the map: a
    stage killed at its third batch and resumed gives the uninterrupted run's results, both streams
    continuing where the last finished batch left them."""
    g_stage, g_map = torch.Generator(), torch.Generator()
    want = StageStore(None).run("s", lambda: _stage(g_stage, g_map.manual_seed(2)), [g_stage])
    with pytest.raises(KeyboardInterrupt):
        StageStore(str(tmp_path), _ident()).run("s", lambda: _stage(g_stage, g_map.manual_seed(2), kill_at=2),
                                                [g_stage])
    store = StageStore(str(tmp_path), _ident())
    got = store.run("s", lambda: _stage(g_stage, g_map.manual_seed(2)), [g_stage])
    assert store.batches_read_back == 2
    assert got == want, f"resumed {got}, uninterrupted {want}"


def test_batches_read_back_are_counted_over_every_stage(tmp_path):
    """Two stages each killed after two finished batches and resumed by one store: it took back 4
    batches (the second stage's count replaced the first's: 2)."""
    def stage(kill_at=None):
        def fn(i):
            if i == kill_at:
                raise KeyboardInterrupt
            return i
        return resumable_map(fn, [(i,) for i in range(3)])

    for name in ("a", "b"):
        with pytest.raises(KeyboardInterrupt):
            StageStore(str(tmp_path), _ident()).run(name, lambda: stage(kill_at=2))
    store = StageStore(str(tmp_path), _ident())
    assert store.run("a", stage) == store.run("b", stage) == [0, 1, 2]
    assert store.batches_read_back == 4, store.batches_read_back


def test_refuse_others_looks_only_at_names_that_start_with_the_kind(tmp_path):
    """A stage whose name holds the kind further in (another stage) is not the kind's: left alone; one
    that starts with it is refused."""
    store = StageStore(str(tmp_path), _ident())
    store.run("pgd at 4, autoattack-rand steps 3", lambda: 1)
    store.refuse_others("autoattack-rand steps 2", "autoattack-rand", "--autoattack-steps")
    store.run("autoattack-rand steps 3", lambda: 1)
    with pytest.raises(StageDirError, match=r"autoattack-rand_steps_3.pt holds autoattack-rand with other settings"):
        store.refuse_others("autoattack-rand steps 2", "autoattack-rand", "--autoattack-steps")

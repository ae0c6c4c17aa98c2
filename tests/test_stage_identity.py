"""dwq.eval.stages on small hand-made stores: what makes a folder another evaluation's (the images and
labels, the layers' options, a straight-through model's twin), a resume whose stage draws from another
number of generators, and refuse_others leaving the stage of the running evaluation alone."""
import pytest
import torch
from torch import nn

from dwq.eval.stages import StageDirError, StageStore, evaluation_identity, resumable_map


def _ident(**kw):
    return dict({"settings": {}, "model": "M 0", "layers": "0", "data": "0"}, **kw)


def settings_ident(**settings):
    """An identity that differs from :func:`_ident`'s only in its settings."""
    return _ident(settings=settings)


def test_a_folder_of_other_images_or_layer_options_is_refused(tmp_path):
    StageStore(str(tmp_path), _ident())
    StageStore(str(tmp_path), _ident())  # the same evaluation: taken
    with pytest.raises(StageDirError, match=r"another evaluation: the images or labels"):
        StageStore(str(tmp_path), _ident(data="1"))
    with pytest.raises(StageDirError, match=r"another evaluation: the model's layer or quantizer options"):
        StageStore(str(tmp_path), _ident(layers="1"))


class _WithTwin(nn.Module):
    """A model whose gradients come from a twin kept out of its state (as dwq.deploy.StraightThrough)."""

    def __init__(self, twin):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        object.__setattr__(self, "twin", twin)


def test_the_identity_covers_a_twins_state():
    torch.manual_seed(0)
    twin = nn.Linear(2, 2)
    m = _WithTwin(twin)
    assert "twin.weight" not in m.state_dict()  # (else the test checks nothing)
    x, y = torch.rand(3, 2), torch.tensor([0, 1, 0])
    before = evaluation_identity(m, x, y, {})
    with torch.no_grad():
        twin.weight.add_(1.0)
    after = evaluation_identity(m, x, y, {})
    assert before["model"] != after["model"]
    assert evaluation_identity(m, x, y, {})["model"] == after["model"]


def test_a_batch_saved_with_other_generators_is_refused(tmp_path):
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)

    def stage(gens, kill_at):
        def fn(i):
            if i == kill_at:
                raise KeyboardInterrupt
            return torch.rand(1, generator=g1) + i
        return resumable_map(fn, [(i,) for i in range(3)], generators=gens)

    with pytest.raises(KeyboardInterrupt):
        StageStore(str(tmp_path), _ident()).run("s", lambda: stage([g1], kill_at=1))
    with pytest.raises(StageDirError, match=r"holds 1 generator state\(s\), this stage draws from 2"):
        StageStore(str(tmp_path), _ident()).run("s", lambda: stage([g1, g2], kill_at=None))


def test_refuse_others_leaves_this_evaluations_own_stage(tmp_path):
    store = StageStore(str(tmp_path), _ident())
    store.run("aa, n 4", lambda: 1)
    store.refuse_others("aa, n 4", "aa", "--n")  # its own finished stage: no refusal
    store.run("aa, n 3", lambda: 2)
    with pytest.raises(StageDirError, match=r"aa_n_3.pt holds aa with other settings than this evaluation's \(n 4\)"):
        store.refuse_others("aa, n 4", "aa", "--n")

"""dwq.deploy.save/load keep the precision the model was at: a model saved at 5 bits loaded at the set's
last (full precision), so its logits were another precision's. save(overwrite=False) refuses an
existing file before it serialises anything, naming the flag."""
import pytest
import torch
from deploy_models import calibrated, rewrite_metadata

import dwq
from dwq.deploy import ArtifactError, convert, load, read_metadata, save
from dwq.deploy.artifact import _model_digest
from dwq.deploy.layers import IntConv2d
from dwq.models import QuantPolicy, small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 5, (4, 8), None]


@pytest.fixture(scope="module")
def int_model():
    return convert(calibrated(small_cnn(precisions=SET, width=4, policy=QuantPolicy(classifier=True)), (8, 1, 28, 28)))


@pytest.mark.parametrize("p, name", [(5, "5"), ((4, 8), "4w8a"), (2, "2"), (None, "fp")])
def test_a_loaded_model_is_at_the_precision_it_was_saved_at(int_model, tmp_path, p, name):
    path = str(tmp_path / "m.safetensors")
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with dwq.precision(int_model, p):
        save(int_model, path)
        with torch.no_grad():
            want = int_model(x)
    assert read_metadata(path)["model"]["precision"] == name
    loaded = load(path)
    assert dwq.get_precision(loaded) == p
    with torch.no_grad():
        assert torch.equal(loaded(x), want)


def test_a_file_without_a_precision_loads_at_the_sets_last(int_model, tmp_path):
    """Files written before the precision was recorded; one whose layers were set apart records none."""
    path = str(tmp_path / "m.safetensors")
    with dwq.precision(int_model, 5):
        save(int_model, path)

    def drop(m):
        del m["model"]["precision"]
        m["model_sha256"] = _model_digest(m["model"])
    rewrite_metadata(path, drop)
    assert dwq.get_precision(load(path)) is None

    conv = next(m for m in int_model.modules() if isinstance(m, IntConv2d))
    with dwq.precision(int_model, 5), dwq.precision(conv, 2):
        with pytest.raises(ValueError, match="different precisions"):
            dwq.get_precision(int_model)
        save(int_model, path)
    assert "precision" not in read_metadata(path)["model"]
    assert dwq.get_precision(load(path)) is None


def test_a_recorded_precision_outside_the_set_is_refused_at_load(int_model, tmp_path):
    path = str(tmp_path / "m.safetensors")
    save(int_model, path)

    def to_8(m):
        m["model"]["precision"] = "8"
        m["model_sha256"] = _model_digest(m["model"])
    rewrite_metadata(path, to_8)
    with pytest.raises(ArtifactError, match=r"m.safetensors: the model description is invalid .*8"):
        load(path)


def test_overwrite_false_refuses_an_existing_file_before_serialising(int_model, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"kept")
    serialised = []
    monkeypatch.setattr(type(int_model), "config", lambda self: serialised.append(1) or {})
    with pytest.raises(FileExistsError, match=r"save: .*m.safetensors exists and overwrite=False"):
        save(int_model, path, overwrite=False)
    assert not serialised and path.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]

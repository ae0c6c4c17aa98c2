"""dwq.deploy layers: a float batch norm's (FloatAffine's) bytes shared out over its precisions in the
size report, and a saved description with codes out at full precision refused at load."""

import pytest
import torch
from deploy_models import calibrated, rewrite_artifact

import dwq
from dwq.deploy import ArtifactError, convert, load, save, size_report
from dwq.deploy.layers import FloatAffine
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

SET = [2, 4, None]


@pytest.fixture(scope="module")
def int_model():
    torch.manual_seed(0)
    return convert(calibrated(small_cnn(precisions=SET, width=4), (8, 1, 28, 28)))


def _table_bytes(m):
    """The bytes of a FloatAffine's per-precision tables (not the precision_set every dwq layer has)."""
    return sum(t.numel() * t.element_size() for t in (m.scale, m.bias, m.out_scale, m.out_zero_point))


def test_float_affine_bytes_are_shared_out_over_its_precisions(int_model):
    """A FloatAffine holds one row of scale/bias (and output qparams) per precision; each precision's share
    is 1/P of them, so the shares add up to the layer's bytes (each precision was charged all P rows,
    P times the float layer bytes of the size report)."""
    affines = [m for m in int_model.layers.values() if isinstance(m, FloatAffine)]
    assert affines, "small_cnn's bn1 (after the full-precision conv1) should be a FloatAffine"
    n = len(SET)
    for m in affines:
        total = _table_bytes(m)
        assert m.out_scale is not None  # (it emits conv2's codes: its output qparams count too)
        shares = [m.nbytes(i)["float"] for i in range(n)]
        assert sum(shares) == total and len(set(shares)) == 1, (shares, total)
    rows = size_report(int_model)  # (the report's float layer bytes add every layer's share)
    for i, r in enumerate(rows):
        assert r["float_layer_bytes"] == sum(m.nbytes(i)["float"] for m in int_model.layers.values())


def test_codes_out_at_full_precision_are_refused_at_load(int_model, tmp_path):
    """A float batch norm emits no codes at full precision: a description with out_bits set on its full
    precision entry loaded (the entry was dropped without a word) instead of being named as invalid."""
    path = str(tmp_path / "m.safetensors")
    save(int_model, path)
    ok = load(path)
    assert ok.layers["bn1"].out_bits == [2, 4, None]

    def codes_at_fp(m):
        assert m["layers"]["bn1"]["out_bits"] == [2, 4, None]
        m["layers"]["bn1"]["out_bits"][2] = 4

    rewrite_artifact(path, path, codes_at_fp)
    with pytest.raises(ArtifactError, match=r"bn1 at precision fp: out_bits must be null \(no codes at full "
                                            r"precision\), got 4"):
        load(path)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad(), dwq.precision(ok, None), dwq.precision(int_model, None):
        assert torch.equal(ok(x), int_model(x))

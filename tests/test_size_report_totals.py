"""dwq.deploy.size_report: each row's totals are the sums of its parts over every layer (weights,
scales, float layers; in memory the kernels' weights instead of the codes), and the float checkpoint
size comes from the model's info unless given."""
import pytest
import torch
from deploy_models import calibrated

from dwq.deploy import convert, size_report
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_size_report_totals_add_up_the_layers_parts():
    torch.manual_seed(0)
    im = convert(calibrated(small_cnn(precisions=[2, 4, None], width=4), (8, 1, 28, 28)))
    rows = size_report(im)
    assert [r["precision"] for r in rows] == ["2", "4", "fp"]
    for i, r in enumerate(rows):
        part = {"weight": 0, "float32_weight": 0, "scale": 0, "float": 0, "runtime_weight": 0}
        for m in im.layers.values():
            for k, v in m.nbytes(i).items():
                part[k] += v
        assert r["scale_bytes"] == part["scale"] and r["float_layer_bytes"] == part["float"]
        assert r["total_bytes"] == part["weight"] + part["scale"] + part["float"], r
        assert r["runtime_bytes"] == part["runtime_weight"] + part["scale"] + part["float"], r
        assert r["float_checkpoint_bytes"] == im.info["float_checkpoint_bytes"] > 0
    assert rows[0]["scale_bytes"] > 0  # (the quantized precisions' scales count: a total without them is less)
    assert size_report(im, float_checkpoint_bytes=123)[0]["float_checkpoint_bytes"] == 123

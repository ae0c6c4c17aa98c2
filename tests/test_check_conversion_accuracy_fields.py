"""dwq.deploy.check_conversion reports each model's accuracy under its own name: the fake-quant model's
as "fake_quant", the integer model's as "dwq_int" (the two agree on a converted model, so the test makes
compare report different ones to see which goes where)."""
import pytest
import torch
from deploy_models import calibrated

import dwq.deploy.check as check_mod
from dwq.deploy import check_conversion
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_accuracies_are_reported_under_their_models_names(monkeypatch):
    real = check_mod.compare

    def compare(*args, **kwargs):
        out = real(*args, **kwargs)
        for r in out.values():
            r["fq_accuracy"], r["int_accuracy"] = 0.25, 0.75
        return out

    monkeypatch.setattr(check_mod, "compare", compare)
    m = calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28))
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    rep = check_conversion(m, x, y, latency_batch=2, budget_s=0.01)
    assert rep["accuracy"] == {p: {"fake_quant": 0.25, "dwq_int": 0.75} for p in ("4", "fp")}
    assert all("fq_accuracy" not in r and "int_accuracy" not in r for r in rep["agreement"].values())

"""Robustness on the integer path: a straight-through wrapper (integer outputs, fake-quant gradients)
and the paper / adaptive protocols of dwq.eval run against it, giving the fake-quant model's numbers
within their 95% intervals."""
import pytest
import torch
from deploy_models import trained_mnist_cnn

import dwq
from dwq import eval as E
from dwq.attacks import pgd
from dwq.deploy import StraightThrough, convert
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 4, 8]


@pytest.fixture(scope="module")
def models():
    from dwq.data import load_mnist5k

    m = trained_mnist_cnn(SET)
    x, y = load_mnist5k("test").tensors
    return m, StraightThrough(convert(m), m), x[:200], y[:200]


def test_forward_is_integer_gradient_is_fake_quant(models):
    m, st, x, _ = models
    xb = x[:16].clone().requires_grad_(True)
    w = torch.randn(16, 10)
    for p in SET:
        with dwq.precision(st, p):
            out = st(xb)
            with torch.no_grad():
                assert torch.equal(out, st.int_model(xb))
            g_st, = torch.autograd.grad((out * w).sum(), xb)
        with dwq.precision(m, p):
            g_fq, = torch.autograd.grad((m(xb) * w).sum(), xb)
        assert torch.equal(g_st, g_fq), p
    assert dwq.precision_set(st) == SET  # only the integer model's layers are precision controls' business


def _within(a, b):
    """Each accuracy lies within the other's 95% interval."""
    return b["ci95"][0] <= a["acc"] <= b["ci95"][1] and a["ci95"][0] <= b["acc"] <= a["ci95"][1]


def test_protocols_on_the_integer_path_match_fake_quant(models):
    m, st, x, y = models
    eps = 0.1
    atk = lambda f, xb, yb: pgd(f, xb, yb, eps, eps / 4, 5)  # noqa: E731
    fq_paper = E.paper_protocol(m, x, y, SET, atk, batch_size=100, seed=0)
    int_paper = E.paper_protocol(st, x, y, SET, atk, batch_size=100, seed=0)
    fq_ad = E.adaptive_protocol(m, x, y, SET, eps, eps / 4, 5, seed=0)
    int_ad = E.adaptive_protocol(st, x, y, SET, eps, eps / 4, 5, seed=0)
    assert fq_paper["clean"]["acc"] > 0.25 and fq_paper["robust"]["acc"] < fq_paper["clean"]["acc"]
    for a, b in ((int_paper["clean"], fq_paper["clean"]), (int_paper["robust"], fq_paper["robust"]),
                 (int_ad["expected"], fq_ad["expected"]), (int_ad["worst_case"], fq_ad["worst_case"])):
        assert _within(a, b), (a, b)
    for p in ("2", "4", "8"):
        assert _within(int_ad["per_precision"][p], fq_ad["per_precision"][p]), p

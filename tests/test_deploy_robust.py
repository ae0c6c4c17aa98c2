"""Robustness on the integer path: a straight-through wrapper (integer outputs, fake-quant gradients)
and the paper / adaptive protocols of dwq.eval run against it, giving the fake-quant model's numbers
within their 95% intervals."""
import pytest
import torch
from deploy_models import trained_mnist_cnn

import dwq
from dwq import eval as E
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


def test_a_twin_without_the_integer_models_precisions_is_refused_at_construction(models):
    """The first forward at such a precision failed with "precision 4 is not in the model's precision
    set [8]", not saying which model."""
    from dwq.models import small_cnn

    m, st, _, _ = models
    with pytest.raises(ValueError, match=r"StraightThrough: precision\(s\) 2, 4 of the integer model are not in "
                                         r"the fake-quant model's set \[8\]"):
        StraightThrough(st.int_model, small_cnn(precisions=[8], width=8))


def _within(a, b):
    """Each accuracy lies within the other's 95% interval."""
    return b["ci95"][0] <= a["acc"] <= b["ci95"][1] and a["ci95"][0] <= b["acc"] <= a["ci95"][1]


def test_protocols_on_the_integer_path_match_fake_quant(models):
    m, st, x, y = models
    kw = dict(attack="pgd", epsilon=0.1, alpha=0.025, steps=5, protocols=("paper", "adaptive", "transfer"), seed=0)
    fq = E.evaluate(m, x, y, SET, **kw)
    it = E.evaluate(st, x, y, SET, **kw)
    assert fq["rpi"]["clean"]["acc"] > 0.25 and fq["rpi"]["pgd_paper"]["acc"] < fq["rpi"]["clean"]["acc"]
    for key in ("clean", "pgd_paper", "pgd_adaptive", "pgd_adaptive_worst_case", "best_of_attacks"):
        assert _within(it["rpi"][key], fq["rpi"][key]), key
    for p in ("2", "4", "8"):
        assert _within(it["rpi"]["pgd_adaptive_per_precision"][p], fq["rpi"]["pgd_adaptive_per_precision"][p]), p
        assert _within(it["pgd_acc"][p], fq["pgd_acc"][p]), p


def test_the_twin_runs_in_eval_mode_and_keeps_its_modes():
    """The twin was put in eval mode once, at construction: a model put back in training mode (m.train()
    after wrapping) ran an attack's forward on batch statistics and moved 11 of its buffers (BN running
    statistics, activation ranges). Each forward now runs the twin in eval mode and restores its modes."""
    from deploy_models import calibrated

    from dwq.models import small_cnn

    m = calibrated(small_cnn(precisions=[4, 8], width=8), (16, 1, 28, 28))
    st = StraightThrough(convert(m), m)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with dwq.precision(m, 4):
        xe = x.clone().requires_grad_(True)
        g_eval, = torch.autograd.grad(m(xe).sum(), xe)
    m.train()
    m.bn1.eval()  # a mixed state, restored as it was
    dwq.set_precision(m, 8)  # restored too (an evaluation of st left m at its last precision)
    modes = {n: mod.training for n, mod in m.named_modules()}
    before = {k: v.clone() for k, v in m.state_dict().items()}
    xs = x.clone().requires_grad_(True)
    with dwq.precision(st, 4):
        g_st, = torch.autograd.grad(st(xs).sum(), xs)
    assert [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])] == []
    assert {n: mod.training for n, mod in m.named_modules()} == modes and dwq.get_precision(m) == 8
    assert torch.equal(g_st, g_eval)


def test_evaluate_counts_an_integer_models_cost_on_its_twin_before_attacking(models):
    """With input_size, evaluate ran every attack and then failed in profile ("profile counts fake-quant
    models"), throwing the report away."""
    from dwq.quant.cost import bitops_summary

    m, st, x, y = models
    rep = E.evaluate(st, x[:8], y[:8], [2, 4], attack="pgd", epsilon=0.1, alpha=0.025, steps=1,
                     protocols=("paper",), input_size=(1, 28, 28), per_image=False)
    assert rep["bitops"]["per_precision"] == bitops_summary(m, (1, 28, 28), [2, 4])["per_precision"]
    stages = []
    for model, size, message in ((st.int_model, (1, 28, 28), "profile counts fake-quant models"),
                                 (st, (3, 32, 32), r"expected input \[N, 1, H, W\]")):
        with pytest.raises(ValueError, match=message):
            E.evaluate(model, x[:8], y[:8], [2, 4], attack="pgd", epsilon=0.1, alpha=0.025, steps=1,
                       protocols=("paper",), input_size=size, progress=lambda *a: stages.append(a))
    assert stages == []  # refused before the first attack

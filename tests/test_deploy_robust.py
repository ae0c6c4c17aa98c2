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
    # (bandits: no gradient, so a bare integer model gets as far as the cost count)
    for model, size, attack, message in ((st.int_model, (1, 28, 28), "bandits", "profile counts fake-quant models"),
                                         (st, (3, 32, 32), "pgd", r"expected input \[N, 1, H, W\]")):
        with pytest.raises(ValueError, match=message):
            E.evaluate(model, x[:8], y[:8], [2, 4], attack=attack, epsilon=0.1, alpha=0.025, steps=1,
                       protocols=("paper",), input_size=size, progress=lambda *a: stages.append(a))
    assert stages == []  # refused before the first attack


def test_a_twin_that_has_no_gradients_is_refused_and_a_drifted_twin_keeps_the_integer_values(models):
    """StraightThrough(im, im) failed at every quantized precision ("element 0 of tensors does not require
    grad"); None failed in precision_set. With a twin that no longer agrees with the integer model,
    y_fq + (y_int - y_fq) rounded: the forward was ulps off the integer model's values."""
    import copy

    m, st, x, _ = models
    for bad in (st.int_model, None):
        with pytest.raises(TypeError, match="fake_quant_model must be the fake-quant"):
            StraightThrough(st.int_model, bad)
    drifted = copy.deepcopy(m)
    st_drifted = StraightThrough(st.int_model, drifted)  # (a twin that differs already is refused: trained on after)
    with torch.no_grad():
        for p in drifted.parameters():
            p.mul_(1.7)
    xb = x[:32].clone().requires_grad_(True)
    for p in SET + [None] if None in dwq.precision_set(st) else SET:
        with dwq.precision(st_drifted, p) as d:
            out = d(xb)
            with torch.no_grad():
                assert torch.equal(out, st.int_model(xb)), p


def test_evaluate_refuses_a_bare_integer_model_for_gradient_attacks_and_resumes_only_with_its_twin(models, tmp_path):
    """A bare IntegerModel passed the checks and failed at the first quantized precision's attack; a stage
    folder made with one twin was read back for another (the twin was not in the evaluation's identity)."""
    import copy

    m, st, x, y = models
    kw = dict(epsilon=0.1, alpha=0.025, steps=1, seed=0)
    with pytest.raises(ValueError, match=r"an IntegerModel has no gradients .* attack='pgd', adaptive need"):
        E.evaluate(st.int_model, x[:8], y[:8], SET, protocols=["paper", "adaptive"], **kw)
    E.evaluate(st, x[:8], y[:8], SET, protocols=["paper"], stage_dir=str(tmp_path / "s"), **kw)
    other = copy.deepcopy(m)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    from dwq.eval.stages import StageDirError

    with pytest.raises(StageDirError):
        E.evaluate(StraightThrough(st.int_model, other), x[:8], y[:8], SET, protocols=["paper"],
                   stage_dir=str(tmp_path / "s"), **kw)


def test_the_integer_model_computes_in_float32_under_autocast(models):
    """Its float layers ran in bfloat16 under autocast: the next integer op refused the input, and at full
    precision the logits came out in bfloat16."""
    _, st, x, _ = models
    im = st.int_model
    for p in dwq.precision_set(im):
        with dwq.precision(im, p), torch.no_grad():
            want = im(x[:8])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = im(x[:8])
        assert got.dtype == torch.float32 and torch.equal(got, want), p

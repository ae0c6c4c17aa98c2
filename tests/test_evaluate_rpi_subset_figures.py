"""dwq.eval.evaluate with an RPI set smaller than the evaluated precisions: the per-image scores and the
per-precision figures behind the RPI figures read the RPI set's rows only, and the adaptive protocol is the
one adaptive_protocol computes from ``seed``. A small untrained model labelled with its own 8-bit
predictions, so that the precisions disagree image by image (no training, a few seconds)."""
import warnings

import pytest
import torch

from dwq import attacks as A
from dwq import eval as E
from dwq.models import small_cnn
from dwq.nn.control import precision

SET, RPI = [2, 4, 8], [2, 4]


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    m = small_cnn(precisions=SET, width=8)
    with warnings.catch_warnings():  # (untrained BN branches and activation ranges: warned, and fine here)
        warnings.simplefilter("ignore")
        m.train()
        x = torch.rand(24, 1, 28, 28)
        for p in SET:  # give every branch statistics and ranges
            with torch.no_grad(), precision(m, p):
                m(x)
        m.eval()
        with torch.no_grad(), precision(m, 8):
            y = m(x).argmax(1)
    return m, x, y


def _eval(m, x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return E.evaluate(m, x, y, SET, rpi_precisions=RPI, epsilon=0.2, alpha=0.1, steps=1, batch_size=16, **kw)


def test_clean_scores_are_the_rpi_sets_mean(data):
    m, x, y = data
    rep = _eval(m, x, y, protocols=["paper"])
    _, corr = E.clean_accuracy(m, x, y, RPI, return_correct=True)
    want = [round(v, 7) for v in corr.float().mean(0).tolist()]
    assert rep["per_image"]["clean"] == want
    _, corr_all = E.clean_accuracy(m, x, y, SET, return_correct=True)
    assert want != [round(v, 7) for v in corr_all.float().mean(0).tolist()]  # (the test can tell them apart)


def test_a_two_precision_rpi_set_gets_the_transfer_scores(data):
    m, x, y = data
    rep = _eval(m, x, y, protocols=["transfer"])
    assert {"transfer_diagonal", "transfer_off_diagonal"} <= set(rep["per_image"])
    assert len(rep["per_image"]["transfer_off_diagonal"]) == len(y)


def test_adaptive_figures_are_adaptive_protocols_at_the_seed(data):
    m, x, y = data
    rep = _eval(m, x, y, protocols=["adaptive"], seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad, ad_c = E.adaptive_protocol(m, x, y, RPI, 0.2, 0.1, 1, 1, 16, 3, return_correct=True)
    assert rep["rpi"]["pgd_adaptive"] == ad["expected"]
    assert rep["per_image"]["adaptive"] == [round(v, 7) for v in ad_c.float().mean(0).tolist()]
    assert rep["per_image"]["adaptive_worst_case"] == [float(v) for v in ad_c.all(0).tolist()]


def test_autoattack_standard_figures_cover_the_rpi_set_only(data, monkeypatch):
    m, x, y = data
    monkeypatch.setattr(A, "autoattack", lambda f, x, y, eps, version, **kw: x)  # (the attack itself: elsewhere)
    rep = _eval(m, x[:8], y[:8], attack="autoattack", protocols=["autoattack-standard"])
    assert list(rep["rpi"]["autoattack_standard_per_precision"]) == ["2", "4"]
    assert list(rep["autoattack_acc"]) == ["2", "4", "8"]


def test_without_the_matrix_each_precision_is_attacked_in_batches_of_batch_size(data):
    m, x, y = data
    seen = []
    hook = m.register_forward_pre_hook(lambda mod, inp: seen.append(len(inp[0])))
    try:
        rep = _eval(m, x, y, protocols=["adaptive"])
    finally:
        hook.remove()
    assert list(rep["pgd_acc"]) == ["2", "4", "8"] and max(seen) == 16


def test_a_training_model_comes_back_with_its_state_untouched(data):
    m, x, y = data
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    try:
        _eval(m, x, y, protocols=["paper"], input_size=(1, 28, 28))
        assert m.training
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    finally:
        m.eval()


def test_the_chosen_attack_has_a_stream_of_its_own_restarted_at_each_precision(data, monkeypatch):
    # EOT-PGD, the paper replica and AutoAttack seed their generators with seed itself: the chosen attack
    # drawing from that same stream started from the same noise as EOT-PGD (best of attacks then pairs twins)
    m, x, y = data
    states = []

    def fake_pgd(f, xb, yb, *a, generator=None, **kw):
        states.append(generator.get_state().clone())
        return xb

    monkeypatch.setattr(A, "pgd", fake_pgd)
    _eval(m, x[:8], y[:8], protocols=["paper"], seed=3)
    assert len(states) == 3 and all(torch.equal(s, states[0]) for s in states)  # one batch per precision
    assert not torch.equal(states[0], torch.Generator().manual_seed(3).get_state())

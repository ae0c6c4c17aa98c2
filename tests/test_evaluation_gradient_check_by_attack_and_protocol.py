"""dwq.eval.checks' refusal of a bare IntegerModel (no gradients at its quantized precisions) for each
gradient attack and each gradient protocol, before the first forward: every attack but bandits (FGSM, the
CW attacks and AutoAttack need gradients as PGD does) under the paper protocol alone, and bandits with
each of the protocols that run gradient attacks whatever the chosen attack. Bandits under the protocols
that run only the chosen attack, and a StraightThrough wrapper under any, pass the check."""
import pytest
import torch
from deploy_models import calibrated
from test_evaluation_input_checks import SET, _checks

from dwq.deploy import StraightThrough, convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.fixture(scope="module")
def int_data():
    m = calibrated(small_cnn(precisions=SET, width=4), (8, 1, 28, 28))
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return m, convert(m), x, torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize("attack", ["pgd", "fgsm", "cw-l2", "cw-linf", "autoattack"])
def test_a_bare_integer_model_is_refused_for_every_gradient_attack(int_data, attack):
    """Under the paper protocol alone only the chosen attack runs: any attack but bandits needs gradients."""
    _, im, x, y = int_data
    with pytest.raises(ValueError, match=rf"an IntegerModel has no gradients at quantized precisions, which "
                                         rf"attack='{attack}' need; evaluate dwq.deploy.StraightThrough"):
        _checks(im, x, y, attack=attack, protocols=["paper"])


@pytest.mark.parametrize("protocol", ["adaptive", "autoattack-rand", "autoattack-standard"])
def test_a_bare_integer_model_is_refused_for_every_gradient_protocol_even_with_bandits(int_data, protocol):
    """EOT-PGD (adaptive) and AutoAttack run with gradients whatever the chosen attack: bandits does not save them."""
    _, im, x, y = int_data
    with pytest.raises(ValueError, match=rf"which {protocol} need;"):
        _checks(im, x, y, attack="bandits", protocols=["paper", protocol])


@pytest.mark.parametrize("protocols", [["paper"], ["paper", "paper-sampled", "transfer"]])
def test_bandits_on_a_bare_integer_model_passes_the_check(int_data, protocols):
    """Protocols that run only the chosen attack, with a gradient-free attack: nothing to refuse."""
    _, im, x, y = int_data
    assert _checks(im, x, y, attack="bandits", protocols=protocols) == 10


@pytest.mark.parametrize("attack", ["pgd", "fgsm"])
def test_a_straight_through_integer_model_passes_the_check(int_data, attack):
    """The fake-quant twin gives the gradients: gradient attacks and the adaptive protocol are fine."""
    m, im, x, y = int_data
    assert _checks(StraightThrough(im, m), x, y, attack=attack, protocols=["paper", "adaptive"]) == 10

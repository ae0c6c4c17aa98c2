"""QLinear/QConv2d and switchable BN pinned where the suite left them open (found by mutation): at a (w, a)
precision the weight gets w bits and the input a bits, a lone pre-hook on a quantizer runs, QLinear's
reset_parameters forgets its activation range, and mark_trained marks only the current precision's branch."""
import pytest
import torch
from test_nn import _layer_at_4_bits

from dwq.nn import QLinear, SwitchableBatchNorm2d
from dwq.nn.sbn import mark_trained


def test_a_mixed_precision_quantizes_the_weight_at_w_bits_and_the_input_at_a_bits():
    torch.manual_seed(0)
    lin = QLinear(64, 3, precisions=[(2, 8), 8]).train()
    lin.set_precision((2, 8))
    seen = []
    lin.input_quant.register_forward_hook(lambda q, args, out: seen.append(out.detach()))
    x = torch.linspace(-1, 1, 64).repeat(2, 1)
    lin(x)
    w_hat = lin.quant_weight().detach()
    assert max(row.unique().numel() for row in w_hat) <= 4  # 2-bit weight codes per output channel
    assert seen[0].unique().numel() > 4  # an 8-bit input grid, not a 2-bit one


@pytest.mark.parametrize("layer", ["conv", "linear"])
def test_a_lone_pre_hook_on_a_quantizer_runs(layer):
    m, x = _layer_at_4_bits(layer)
    seen = []
    h1 = m.input_quant.register_forward_pre_hook(lambda q, args: seen.append(("act", args[1])))
    h2 = m.weight_quant.register_forward_pre_hook(lambda q, args: seen.append(("weight", args[1])))
    m(x)
    h1.remove()
    h2.remove()
    assert seen == [("act", 4), ("weight", 4)]


def test_qlinear_reset_parameters_forgets_its_activation_range():
    lin = QLinear(3, 2, precisions=[4, None]).train()
    lin.set_precision(4)
    lin(torch.rand(2, 3))
    assert lin.input_quant.initialized.any()
    lin.reset_parameters()
    assert not lin.input_quant.initialized.any()


def test_mark_trained_marks_only_the_current_precisions_branch():
    sbn = SwitchableBatchNorm2d(3, [4, 8, None])
    sbn.set_precision(8)
    mark_trained(torch.nn.Sequential(sbn))
    assert sbn.untrained_precisions() == ["4", "fp"]

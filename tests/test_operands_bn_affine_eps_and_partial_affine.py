"""dwq.deploy.operands.bn_affine is the batch norm's eval forward for any ``eps`` (not only torch's default
1e-5), without learned affine (affine=False) and with only one of gamma / beta, per channel."""
import pytest
import torch
from torch import nn

from dwq.deploy.operands import bn_affine


def _bn(eps, weight, bias):
    bn = nn.BatchNorm2d(3, eps=eps).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([0.04, 0.25, 0.0]))  # (small variances: eps weighs)
        bn.weight.copy_(torch.tensor([1.5, -2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    if not weight:
        bn.weight = None
    if not bias:
        bn.bias = None
    return bn


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.1])
@pytest.mark.parametrize("weight,bias", [(True, True), (False, False), (True, False), (False, True)],
                         ids=["affine", "no_affine", "gamma_only", "beta_only"])
def test_bn_affine_is_the_eval_forward(eps, weight, bias):
    """a * x + b equals bn(x) in eval mode: a = gamma / sqrt(var + eps) (gamma 1 if absent), b = beta - mean * a
    (beta 0 if absent)."""
    bn = _bn(eps, weight, bias)
    a, b = bn_affine(bn, "bn")
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (3,)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = bn(x)
    torch.testing.assert_close(a.view(1, -1, 1, 1) * x + b.view(1, -1, 1, 1), want,
                               msg=lambda m: f"eps {eps}, gamma {weight}, beta {bias}: {m}")

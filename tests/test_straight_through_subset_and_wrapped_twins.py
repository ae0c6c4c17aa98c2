"""dwq.deploy.StraightThrough pinned where the suite left it open (found by mutation): the twin stays out of
the module tree, so an integer model converted at a subset of the twin's set is what the precision controls
see, and a twin holding an IntegerModel anywhere inside it is refused."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import StraightThrough, convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_an_integer_model_at_a_subset_of_the_twins_set_is_what_the_controls_see():
    m = calibrated(small_cnn(precisions=[4, 8], width=4), (8, 1, 28, 28))
    st = StraightThrough(convert(m, [4]), m)
    assert all(mod is not m for mod in st.modules())
    assert dwq.precision_set(st) == [4]
    dwq.set_precision(m, 8)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    xs = x.clone().requires_grad_(True)
    with dwq.precision(st, 4):
        g_st, = torch.autograd.grad(st(xs).sum(), xs)
    assert dwq.get_precision(m) == 8
    with dwq.precision(m, 4):
        xe = x.clone().requires_grad_(True)
        g_fq, = torch.autograd.grad(m(xe).sum(), xe)
    assert torch.equal(g_st, g_fq)


def test_a_twin_that_wraps_an_integer_model_is_refused():
    m = calibrated(small_cnn(precisions=[4], width=4), (8, 1, 28, 28))
    im = convert(m)
    with pytest.raises(TypeError, match="fake_quant_model must be the fake-quant"):
        StraightThrough(im, nn.Sequential(im))

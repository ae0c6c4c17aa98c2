"""An IntegerModel under ordinary torch idioms (found by an audit): a gradient through it, edits of its
buffers (in place, by assignment, torch.func.functional_call), forward hooks on the layers a fused
residual step reads or writes into, a move to the meta device, and converting a compiled model."""
import copy

import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.attacks import pgd
from dwq.deploy import ConversionError, StraightThrough, convert
from dwq.models import preact_resnet18, small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

PSET = [None, 4, 8]


@pytest.fixture(scope="module")
def preact():
    torch.manual_seed(0)
    m = calibrated(preact_resnet18(num_classes=10, precisions=PSET), (4, 3, 32, 32))
    return m, convert(m)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    m = calibrated(small_cnn(num_classes=10, precisions=PSET, width=8), (8, 1, 28, 28))
    return m, convert(m)


def test_a_gradient_through_the_quantized_precisions_is_refused(preact):
    """Only the float stem and shortcuts passed a gradient (cosine ~0.1 with the fake-quant model's): an
    attack on the integer model itself ran, silently weak. At fp the whole model is float: it flows."""
    m, im = preact
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    for p in (4, 8):
        with dwq.precision(im, p):
            with pytest.raises(ValueError, match=f"IntegerModel at precision {p} passes no gradient through its "
                                                 "integer layers.*StraightThrough"):
                im(x.clone().requires_grad_())
            with pytest.raises(ValueError, match="passes no gradient"):
                pgd(im, x, y, 8 / 255, 2 / 255, 1)
            with torch.no_grad():  # (an input that requires grad, without a gradient asked for)
                assert torch.equal(im(x.clone().requires_grad_()), im(x))
            with dwq.precision(m, p):  # the supported way: the integer values, the twin's gradients
                assert pgd(StraightThrough(im, m), x, y, 8 / 255, 2 / 255, 1).shape == x.shape
    with dwq.precision(im, None), dwq.precision(m, None):
        xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        im(xg)[:, 0].sum().backward()
        m(xr)[:, 0].sum().backward()
        # (the same up to the folded batch norms' rounding, which can flip a ReLU near 0)
        assert torch.nn.functional.cosine_similarity(xg.grad.flatten(), xr.grad.flatten(), dim=0) > 0.999


def test_edits_of_the_buffers_reach_the_kernels(cnn):
    """The packed weights and the cached op arguments follow the buffers: an in-place edit of the codes
    or zero points (a bit-flip study), a replaced buffer, functional_call; each gives what a model
    loaded from the edited state_dict gives (they were ignored: the model and its saved file differed)."""
    _, im = cnn
    x = torch.rand(4, 1, 28, 28)
    pre = "layers.conv2.plans.1."

    def loaded(model):  # a fresh model of the same state: its layout packed from the buffers
        fresh = copy.deepcopy(im)
        fresh.load_state_dict(model.state_dict())
        return fresh

    edits = (lambda p: p.w_codes.bitwise_xor_(1), lambda p: p.w_zero_point.fill_(0),
             lambda p: setattr(p, "x_scale", p.x_scale * 2), lambda p: setattr(p, "w_scale", p.w_scale * 3))
    with dwq.precision(im, 4):
        base = im(x)
        for edit in edits:
            e = copy.deepcopy(im)
            e(x)  # (the caches built before the edit)
            with torch.no_grad():
                edit(e.layers.conv2.plans[1])
            got = e(x)
            assert not torch.equal(got, base) and torch.equal(got, loaded(e)(x))
        sd = {k: v.clone() for k, v in im.state_dict().items()}
        sd[pre + "x_scale"] *= 2
        changed = copy.deepcopy(im)
        changed.load_state_dict(sd)
        got = torch.func.functional_call(im, {pre + "x_scale": sd[pre + "x_scale"]}, (x,))
        assert torch.equal(got, changed(x)) and not torch.equal(got, base)
        assert torch.equal(im(x), base)  # (the model's own buffers back: its own layout again)


def test_a_replaced_batch_norm_buffer_is_read(preact):
    """A float batch norm's cached rows are views of its buffers: a replaced buffer is read afresh."""
    _, im = preact
    x = torch.rand(2, 3, 32, 32)
    with dwq.precision(im, 4):
        e = copy.deepcopy(im)
        base = e(x)
        bn = e.layers.layer2_0_bn1
        bn.bias = bn.bias + 1
        got = e(x)
        fresh = copy.deepcopy(im)
        fresh.load_state_dict(e.state_dict())
        assert not torch.equal(got, base) and torch.equal(got, fresh(x))


def test_hooks_on_the_layers_of_a_fused_residual_step_run_and_keep_what_the_layer_returned(preact):
    """A batch norm whose output codes a fused residual add made was never called (its hooks skipped, a
    hook's output ignored); a conv whose output the add overwrote in place changed what a hook kept."""
    m, im = preact
    x = torch.rand(2, 3, 32, 32)
    for p in (None, 4):
        fired, kept, snap = set(), {}, {}

        def hook(mod, inputs, out, name):
            fired.add(name)
            kept[name], snap[name] = out, out.clone()

        hs = [layer.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
              for n, layer in im.layers.named_children()]
        with dwq.precision(im, p):
            y = im(x)
        for h in hs:
            h.remove()
        with dwq.precision(im, p):
            assert torch.equal(im(x), y)  # (the same values hooked or not: the plan without in-place steps)
        assert fired == set(im.layers.keys())
        assert [n for n in kept if not torch.equal(kept[n], snap[n])] == []
    with dwq.precision(im, 4), dwq.precision(m, 4):
        base_int, base_fq = im(x), m(x)
        h = im.layers.layer1_1_bn1.register_forward_hook(lambda mod, i, o: torch.zeros_like(o))
        g = m.layer1[1].bn1.register_forward_hook(lambda mod, i, o: torch.zeros_like(o))
        try:
            d_int, d_fq = (im(x) - base_int).abs().max(), (m(x) - base_fq).abs().max()
        finally:
            h.remove()
            g.remove()
        assert d_int > 0 and torch.isclose(d_int, d_fq, rtol=1e-3)


def test_a_move_to_the_meta_device_is_refused_before_anything_moves(cnn):
    _, im = cnn
    e = copy.deepcopy(im)
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="IntegerModel cannot move to the meta device"):
        e.to("meta")
    assert {t.device.type for t in e.state_dict().values()} == {"cpu"}
    with dwq.precision(e, 4), dwq.precision(im, 4):
        assert torch.equal(e(x), im(x))


def test_converting_a_compiled_model_names_the_module_it_wraps(cnn):
    m, _ = cnn
    with pytest.raises(ConversionError, match=r"not a OptimizedModule wrapping it: convert its \._orig_mod "
                                              r"\(SmallCNN\)"):
        convert(torch.compile(m))

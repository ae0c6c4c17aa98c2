"""dwq.deploy.layers refuses, when a layer is built (as ``load`` builds it), a config or tensor that the ops would
misread or refuse only at a forward, naming the layer, the precision, the field and the value: tensors of
another dtype, bools where ints go, a null bit width, a weight zero point that is no code of the weight bits
(though one of the wider activation bits), more plans than precisions; a float plan without a ``bias`` key has
no bias; and a quantized plan's bytes count every scale and zero point it holds."""
import pytest
import torch

import dwq
from dwq.deploy.layers import layer_from_config
from dwq.ops import HAS_EXT
from test_int_layers_from_config_match_the_integer_reference import PRECISIONS, layer_config

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
I_4W8A, I_FP = PRECISIONS.index("4w8a"), PRECISIONS.index("fp")


def _linear(codes_out=True):
    return layer_config("int_linear", {"in_features": 7, "out_features": 3}, (3, 7), codes_out, True, False, 0)


def _plan(i, **kv):
    return lambda cfg, t: cfg["plans"][i].update(kv)


def _tensor(key, fn):
    return lambda cfg, t: t.__setitem__(key, fn(t[key]))


@pytest.mark.parametrize("edit,msg", [
    (_tensor(f"plans.{I_4W8A}.w_scale", lambda v: v.double()),
     "layer at precision 4w8a: tensor 'w_scale' must be torch.float32 [3], got torch.float64 [3]"),
    (_tensor("plans.0.x_zero_point", lambda v: v.long()),
     "layer at precision 2: tensor 'x_zero_point' must be torch.int32 [1], got torch.int64 [1]"),
    (_tensor(f"plans.{I_FP}.weight", lambda v: v.half()),
     "layer at precision fp: tensor 'weight' must be torch.float32 [3, 7]"),
    (lambda cfg, t: cfg.update(in_features=True), "layer: in_features must be an int >= 1, got True"),
    (lambda cfg, t: cfg.update(out_features=False), "layer: out_features must be an int >= 1, got False"),
    (_plan(I_4W8A, w_bits=None), "layer at precision 4w8a: w_bits must be 4 (the precision's weight bits), got None"),
    (_plan(I_4W8A, a_bits=None), "layer at precision 4w8a: a_bits must be 8 (the precision's activation bits), got"),
    (_plan(I_4W8A, w_bits=True), "layer at precision 4w8a: w_bits must be 4 (the precision's weight bits), got True"),
    # 16 is a code of the 8 activation bits, not of the 4 weight bits: read as 0 by the 4-bit packing
    (_tensor(f"plans.{I_4W8A}.w_zero_point", lambda v: v.fill_(16)),
     "layer at precision 4w8a (w_scale, w_zero_point): zero_point[0] = 16 is not a code of 4 bits (0..15)"),
    (_tensor(f"plans.{I_4W8A}.x_zero_point", lambda v: v.fill_(256)),
     "layer at precision 4w8a (x_scale, x_zero_point): zero_point[0] = 256 is not a code of 8 bits (0..255)"),
    (lambda cfg, t: cfg["plans"].append(dict(cfg["plans"][0])), "layer: 6 plans for 5 precisions"),
], ids=["w_scale_float64", "x_zero_point_int64", "float_weight_half", "in_features_true", "out_features_false",
        "w_bits_null", "a_bits_null", "w_bits_true", "w_zero_point_of_a_bits", "x_zero_point_256", "extra_plan"])
def test_a_layer_config_the_ops_would_misread_is_refused_when_built(edit, msg):
    """Each edit of a valid config (or its tensors) is a ValueError at construction whose message names the
    layer, the precision where there is one, the field, the value and what was expected."""
    cfg, tensors, _ = _linear()
    layer_from_config(cfg, dict(tensors))  # (the unedited config builds)
    edit(cfg, tensors)
    with pytest.raises(ValueError) as e:
        layer_from_config(cfg, tensors)
    assert msg in str(e.value), str(e.value)


def test_a_float_plan_without_a_bias_key_has_no_bias():
    """``bias`` of a float plan defaults to false: without the key (and without a bias tensor) the fp plan is
    F.linear without bias."""
    cfg, tensors, refs = _linear()
    del cfg["plans"][I_FP]["bias"], tensors[f"plans.{I_FP}.bias"]
    layer = layer_from_config(cfg, tensors)
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    assert layer.plans[I_FP].bias is None and layer.plans[I_FP].config()["bias"] is False
    with torch.no_grad(), dwq.precision(layer, None):
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, refs[I_FP]["weight"]))


@pytest.mark.parametrize("codes_out", [True, False])
def test_a_quantized_plans_bytes_count_each_of_its_tensors(codes_out):
    """nbytes of a quantized plan: ``weight`` its codes at w_bits, ``float32_weight`` 4 bytes a weight, ``scale``
    every per-channel and per-tensor scale and zero point (the output's too where it emits codes), ``float`` 0,
    ``runtime_weight`` the kernels' packed weights; the fp plan: its weight and bias as ``float``."""
    cfg, tensors, _ = _linear(codes_out)
    layer = layer_from_config(cfg, tensors)
    o, k = 3, 7
    for i, p in enumerate(PRECISIONS):
        got = layer.nbytes(i)
        if p == "fp":
            assert got == {"weight": 0, "float32_weight": 0, "scale": 0, "float": 4 * (o * k + o),
                           "runtime_weight": 0}, (p, got)
            continue
        plan = layer.plans[i]
        assert got["weight"] == (o * k * plan.w_bits + 7) // 8 and got["float32_weight"] == 4 * o * k, (p, got)
        # w_scale, w_zero_point, affine_scale, affine_bias [O]; x_scale, x_zero_point (and out's) [1]
        assert got["scale"] == 4 * 4 * o + 4 * 2 + (4 * 2 if codes_out else 0), (p, got)
        assert got["float"] == 0 and got["runtime_weight"] == plan.w_packed.numel() * plan.w_packed.element_size() > 0

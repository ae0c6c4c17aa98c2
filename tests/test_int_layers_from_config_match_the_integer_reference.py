"""dwq.deploy.layers.IntLinear / IntConv2d built straight from a config and plan tensors (as ``load`` builds
them) compute what the pure-PyTorch references of dwq.ops compute, bit for bit where the output is codes:
at the edge widths 2 and 16 and a mixed 2w16a / 4w8a, with zero points at 0 and at 2^b - 1, codes or
float32 in and out, and a float plan (bias, ReLU) beside them. The weight codes go through the bit
packing at their exact width and the kernels' layout is rebuilt from them, also after load_state_dict."""
import pytest
import torch

import dwq
from dwq.deploy.layers import layer_from_config, quant_plan_tensors
from dwq.ops import HAS_EXT
from dwq.ops.qgemm_reference import codes_dtype, qconv2d_ref, qlinear_ref, quantize_act_ref
from dwq.quant.precision import normalize_precision, parse_precision

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

# the edge widths 2 and 16, mixed widths both ways, and a full-precision plan beside them
PRECISIONS = ["2", "16", "2w16a", "4w8a", "fp"]


def _operands(p, out_features, weight_shape, gen, codes_out, affine):
    """Plan tensors (``quant_plan_tensors``) and the unpacked operands the reference takes, for precision ``p``."""
    w_bits, a_bits = normalize_precision(parse_precision(p))
    wq, aq = (1 << w_bits) - 1, (1 << a_bits) - 1
    codes = torch.randint(0, wq + 1, weight_shape, generator=gen, dtype=torch.int32)
    codes.view(out_features, -1)[:, 0] = wq  # (the largest code and the smallest in every channel)
    codes.view(out_features, -1)[:, -1] = 0
    w_zp = torch.tensor([0, wq] + [(wq + 1) // 3] * (out_features - 2), dtype=torch.int32)
    w_scale = (torch.rand(out_features, generator=gen) + 0.5) / (wq + 1)  # (codes minus zero point: about -1..1)
    x_scale = torch.tensor([1.0 / (aq + 1)])
    # the input's zero point at an edge: 0, or 2^b - 1 where the weights are narrower than the input
    x_zp = torch.tensor([aq if w_bits < a_bits else 0], dtype=torch.int32)
    ops = dict(w_scale=w_scale, w_zero_point=w_zp, x_scale=x_scale, x_zero_point=x_zp)
    if affine:
        ops.update(affine_scale=torch.rand(out_features, generator=gen) + 0.5,
                   affine_bias=torch.randn(out_features, generator=gen) * 0.1)
    if codes_out:
        # (the output codes cover -2..6: a quarter of the range below zero; at 2 bits, 0..8 with zero point 0)
        ops.update(out_scale=torch.tensor([8.0 / aq]), out_zero_point=torch.tensor([aq // 4], dtype=torch.int32))
    return quant_plan_tensors(codes, w_bits=w_bits, **ops), dict(ops, w_codes=codes), (w_bits, a_bits)


def layer_config(kind, geometry, weight_shape, codes_out, affine, relu, seed):
    """(config, tensors, reference operands per precision) of an int layer of ``kind`` over PRECISIONS."""
    gen = torch.Generator().manual_seed(seed)
    o = weight_shape[0]
    cfg = dict(geometry, kind=kind, source="layer", precisions=PRECISIONS, plans=[])
    tensors, refs = {}, []
    for i, p in enumerate(PRECISIONS):
        if p == "fp":
            cfg["plans"].append({"float": True, "relu": relu, "bias": True})
            ref = {"weight": torch.randn(weight_shape, generator=gen) * 0.3, "bias": torch.randn(o, generator=gen)}
            tensors.update({f"plans.{i}.{k}": v for k, v in ref.items()})
            refs.append(ref)
            continue
        t, ref, (w_bits, a_bits) = _operands(p, o, weight_shape, gen, codes_out, affine)
        cfg["plans"].append({"w_bits": w_bits, "a_bits": a_bits, "relu": relu,
                             "out_bits": a_bits if codes_out else None,
                             "affine_scale": affine, "affine_bias": affine})
        tensors.update({f"plans.{i}.{k}": v for k, v in t.items()})
        refs.append(dict(ref, a_bits=a_bits, relu=relu, out_bits=a_bits if codes_out else 8))
    return cfg, tensors, refs


def _layer(*args):
    """The layer of ``layer_config(*args)`` built as ``load`` builds it, and its reference operands."""
    cfg, tensors, refs = layer_config(*args)
    return layer_from_config(cfg, tensors).eval(), refs


def _x_codes(shape, a_bits, gen):
    x = torch.randint(0, 1 << a_bits, shape, generator=gen, dtype=torch.int32)
    x.view(-1)[:2] = torch.tensor([0, (1 << a_bits) - 1])
    return x.to(codes_dtype(a_bits))


def _ref_args(r):
    keys = ("x_scale", "x_zero_point", "w_codes", "w_scale", "w_zero_point")
    return [r[k] for k in keys], {k: r.get(k) for k in ("affine_scale", "affine_bias", "relu", "out_scale",
                                                         "out_zero_point", "out_bits")}


def _check(y, want, what):
    if want.is_floating_point():
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{what}: {m}")
    else:
        assert y.dtype == want.dtype, f"{what}: codes of dtype {y.dtype}, the reference's are {want.dtype}"
        bad = (y.long() != want.long()).sum().item()
        assert bad == 0, f"{what}: {bad} of {y.numel()} codes differ from the reference"


@pytest.mark.parametrize("codes_out,affine,relu", [(True, True, True), (True, False, False), (False, True, False),
                                                   (False, False, True)])
def test_int_linear_from_config_is_the_reference_at_every_precision(codes_out, affine, relu):
    """Codes in: IntLinear's output equals qlinear_ref's (codes bit-exact, float to rounding) at each precision;
    float in: the layer quantizes x with its plan's x_scale, x_zero_point and a_bits; the fp plan is F.linear
    with its bias (and ReLU)."""
    layer, refs = _layer("int_linear", {"in_features": 19, "out_features": 5}, (5, 19), codes_out, affine, relu, 1)
    gen = torch.Generator().manual_seed(2)
    xf = torch.randn(6, 19, generator=gen)
    for p, r in zip(PRECISIONS, refs):
        with torch.no_grad(), dwq.precision(layer, p):
            if p == "fp":
                want = torch.nn.functional.linear(xf, r["weight"], r["bias"])
                _check(layer(xf), torch.relu(want) if relu else want, "fp plan")
                continue
            args, kw = _ref_args(r)
            xc = _x_codes((6, 19), r["a_bits"], gen)
            _check(layer(xc), qlinear_ref(xc, *args, **kw), f"precision {p}, codes in")
            # (values over the whole code range and past both ends of it)
            x = ((torch.rand(6, 19, generator=gen) * 1.2 - 0.1) * ((1 << r["a_bits"]) - 1) - r["x_zero_point"]) * \
                r["x_scale"]
            xq = quantize_act_ref(x, r["x_scale"], r["x_zero_point"], r["a_bits"])
            _check(layer(x), qlinear_ref(xq, *args, **kw), f"precision {p}, float in")


@pytest.mark.parametrize("codes_out,relu", [(True, True), (False, False)])
def test_int_conv2d_from_config_is_the_reference_at_every_precision(codes_out, relu):
    """As the linear test, for IntConv2d with a 3 x 2 kernel, stride (2, 1) and padding (1, 0) (asymmetric, so a
    swapped pair shows): qconv2d_ref at each precision, F.conv2d for the fp plan."""
    geo = {"in_channels": 3, "out_channels": 4, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0]}
    layer, refs = _layer("int_conv2d", geo, (4, 3, 3, 2), codes_out, True, relu, 3)
    gen = torch.Generator().manual_seed(4)
    xf = torch.randn(2, 3, 7, 6, generator=gen)
    for p, r in zip(PRECISIONS, refs):
        with torch.no_grad(), dwq.precision(layer, p):
            if p == "fp":
                want = torch.nn.functional.conv2d(xf, r["weight"], r["bias"], (2, 1), (1, 0))
                _check(layer(xf), torch.relu(want) if relu else want, "fp plan")
                continue
            args, kw = _ref_args(r)
            xc = _x_codes((2, 3, 7, 6), r["a_bits"], gen)
            _check(layer(xc), qconv2d_ref(xc, *args, (2, 1), (1, 0), **kw), f"precision {p}, codes in")


def test_load_state_dict_rebuilds_the_kernels_weights():
    """load_state_dict writes new codes and zero points into a plan's buffers: the next forward (the layer ran
    before, so its op arguments were cached) computes with them, not with the layout packed at construction."""
    a, _ = _layer("int_linear", {"in_features": 11, "out_features": 5}, (5, 11), True, True, False, 5)
    b, refs = _layer("int_linear", {"in_features": 11, "out_features": 5}, (5, 11), True, True, False, 6)
    gen = torch.Generator().manual_seed(7)
    for p, r in zip(PRECISIONS[:-1], refs):
        xc = _x_codes((4, 11), r["a_bits"], gen)
        with torch.no_grad(), dwq.precision(a, p):
            a(xc)  # (caches the op arguments)
    a.load_state_dict(b.state_dict())
    for p, r in zip(PRECISIONS[:-1], refs):
        xc = _x_codes((4, 11), r["a_bits"], gen)
        with torch.no_grad(), dwq.precision(a, p):
            args, kw = _ref_args(r)
            _check(a(xc), qlinear_ref(xc, *args, **kw), f"precision {p} after load_state_dict")

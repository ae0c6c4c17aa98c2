"""QConv2d/QLinear pinned where the suite left them open: the shortcut past ``Module.__call__`` is not taken where
a global forward hook, a quantizer's ``.compile()`` or a ``torch.jit.trace`` needs the call; a mixed (w, a)
precision tracks its input range in its own slot; under autocast the quantized weight comes in autocast's dtype;
and the layers' keyword arguments (act_ema, zero_point, quantize_input, their defaults) reach the quantizers."""
import pytest
import torch
from torch import nn

from dwq.nn import QConv2d, QLinear
from dwq.quant.quantizers import WeightQuantizer
from test_nn import _layer_at_4_bits

LAYERS = ["conv", "linear"]


def _layer(kind: str, **kwargs):
    return QConv2d(3, 4, 3, **kwargs) if kind == "conv" else QLinear(6, 4, **kwargs)


def _input(kind: str) -> torch.Tensor:
    return torch.rand(2, 3, 8, 8) if kind == "conv" else torch.rand(2, 6)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_global_forward_hook_sees_both_quantizers(layer):
    """register_module_forward_hook must see every module call, the quantizers' included (as their hooks and
    the global pre-hooks do)."""
    m, x = _layer_at_4_bits(layer)
    seen = []
    h = nn.modules.module.register_module_forward_hook(lambda q, args, out: seen.append(type(q).__name__))
    try:
        m(x)
    finally:
        h.remove()
    assert seen == ["ActQuantizer", "WeightQuantizer", type(m).__name__], seen


@pytest.mark.parametrize("layer", LAYERS)
def test_a_compiled_quantizer_is_called_through_its_compiled_call(layer, monkeypatch):
    """``quantizer.compile()`` sets the call Module.__call__ runs: a layer calling the quantizer's forward
    directly ran it uncompiled. (torch.compile is replaced by a recorder: only the routing is checked.)"""
    calls = []

    def recording_compile(fn, *args, **kwargs):
        def compiled(*a, **kw):
            calls.append(type(fn.__self__).__name__)
            return fn(*a, **kw)
        return compiled

    m, x = _layer_at_4_bits(layer)
    want = m(x)
    monkeypatch.setattr(torch, "compile", recording_compile)
    m.input_quant.compile()
    m.weight_quant.compile()
    assert torch.equal(m(x), want)
    assert calls == ["ActQuantizer", "WeightQuantizer"], calls


@pytest.mark.parametrize("layer", LAYERS)
def test_a_trace_records_the_quantizers_as_submodule_calls(layer):
    """Under torch.jit.trace the quantizers are called as modules, so that the traced graph keeps them as
    submodule methods (as any module's children) instead of inlining their ops into the layer's graph."""
    m, x = _layer_at_4_bits(layer)
    m.eval()
    with pytest.warns(Warning):  # (the tracer's warnings about data-dependent Python values)
        traced = torch.jit.trace(m, x, check_trace=False)
    graph = str(traced.graph)
    for name in ("input_quant", "weight_quant"):
        assert f'prim::GetAttr[name="{name}"]' in graph, f"{name} was inlined into the trace:\n{graph}"
    assert graph.count('prim::CallMethod[name="forward"]') == 2, graph
    assert torch.equal(traced(x), m(x))


@pytest.mark.parametrize("layer", LAYERS)
def test_a_mixed_precision_tracks_the_input_range_in_its_own_slot(layer):
    """At (2, 8) the input is quantized at 8 bits but its range belongs to the (2, 8) slot, not to 8's (a
    different precision of the set, whose weights are 8-bit)."""
    m = _layer(layer, precisions=[(2, 8), 8]).train()
    m.set_precision((2, 8))
    m(_input(layer))
    q = m.input_quant
    assert q.initialized[q.slot((2, 8))] and not q.initialized[q.slot(8)], q.initialized


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_under_autocast_the_quantized_weight_comes_in_autocasts_dtype(layer, dtype):
    """The conv/linear would cast a float32 fake-quantized weight at every forward: the layer asks for it in
    autocast's dtype, with the same values as the cast."""
    m, x = _layer_at_4_bits(layer)
    want = m.quant_weight().detach().to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        w = m.quant_weight()
        y = m(x)
    assert w.dtype == dtype, f"quantized weight in {w.dtype} under {dtype} autocast"
    assert torch.equal(w.detach(), want) and y.dtype == dtype


@pytest.mark.parametrize("layer", LAYERS)
def test_act_ema_reaches_the_input_quantizer(layer):
    """The second train batch moves the running range by (1 - act_ema) of the way to its own range."""
    m = _layer(layer, precisions=[4], act_ema=0.5).train()
    m.set_precision(4)
    x = _input(layer)
    m(x)
    m(x + 1.0)
    q = m.input_quant
    lo, hi = x.min(), x.max()
    assert q.ema == 0.5, f"act_ema=0.5 gave the input quantizer ema={q.ema}"
    assert torch.allclose(q.running_min[q.slot(4)], 0.5 * lo + 0.5 * (lo + 1.0)), q.running_min
    assert torch.allclose(q.running_max[q.slot(4)], 0.5 * hi + 0.5 * (hi + 1.0)), q.running_max


@pytest.mark.parametrize("layer", LAYERS)
def test_the_defaults_are_the_reference_codes(layer):
    """act_ema 0.1 (0.9 of the batch), an integer zero point, one range per precision, the input quantized."""
    m = _layer(layer, precisions=[4, 8, None])
    q = m.input_quant
    got = (q.ema, q.zero_point, q.shared_range, m.quantize_input)
    assert got == (0.1, "int", False, True), f"(ema, zero_point, shared_range, quantize_input) = {got}"
    got = (m.weight_quant.axis, m.weight_quant.zero_point)
    assert got == (0, "int"), f"weight quantizer (axis, zero_point) = {got}: not per output channel, integer"


@pytest.mark.parametrize("layer", LAYERS)
def test_zero_point_float_reaches_the_weight_quantizer(layer):
    """zero_point="float" is the reference's formula for the weight too, not only for the input range."""
    torch.manual_seed(0)
    m = _layer(layer, precisions=[2], zero_point="float")
    m.set_precision(2)
    got = (m.weight_quant.zero_point, m.input_quant.zero_point)
    assert got == ("float", "float"), f"zero_point (weight, input) = {got}"
    want = WeightQuantizer(axis=0, zero_point="float")(m.weight, 2)
    assert torch.equal(m.quant_weight(), want), "the weight is not quantized with the reference's formula"


@pytest.mark.parametrize("layer", LAYERS)
def test_quantize_input_false_passes_the_input_through(layer):
    """quantize_input=False (an input quantized upstream): the layer is its float op on the raw input and the
    fake-quantized weight, and tracks no range."""
    torch.manual_seed(0)
    m = _layer(layer, precisions=[4], quantize_input=False).train()
    m.set_precision(4)
    x = _input(layer)
    y = m(x)
    ref = (m._conv_forward(x, m.quant_weight(), m.bias) if layer == "conv"
           else nn.functional.linear(x, m.quant_weight(), m.bias))
    assert not m.quantize_input and torch.equal(y, ref), "the input was quantized although quantize_input=False"
    assert not m.input_quant.initialized.any(), f"a range was tracked: {m.input_quant.initialized}"

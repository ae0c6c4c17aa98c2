"""qconv2d_residual where it composes qconv2d and the add (no kernel, or a residual not in the kernel's
channels-last layout) honours ``relu``: with relu=False, y is the conv's output plus the residual, negatives
kept, and the codes are quantize_act's of that y; with relu=True, the ReLU after the add. The same values as
the fused kernel's where it runs."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import _lib  # noqa: E402
from dwq.ops import qconv2d_residual  # noqa: E402
from test_qconv_residual import _case, _composed  # noqa: E402


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "no kernel"])
@pytest.mark.parametrize("relu", [False, True])
def test_relu_is_applied_exactly_when_asked(monkeypatch, relu, kernel, layout):
    """y and codes equal qconv2d + residual (+ ReLU only with relu=True) on every route of the wrapper."""
    g = torch.Generator().manual_seed(9)
    conv, x, *_, nxt = _case(g, 6, 16, 8, 6, 3, 1, True)
    res = torch.randn(2, 8, 6, 6, generator=g) * 4
    if layout == "channels_last":
        res = res.contiguous(memory_format=torch.channels_last)
    want_y, want_q = _composed(x, conv, res, relu, nxt)
    assert relu or bool((want_y < 0).any())  # (so that a ReLU would show)
    monkeypatch.setitem(_lib._KERNELS, ("qconv2d_residual", "cpu"), kernel)
    y, q = qconv2d_residual(x, *conv, res, relu, *nxt)
    assert torch.equal(y, want_y), f"y differs from conv + residual{' + relu' if relu else ' (no relu)'}"
    assert torch.equal(q, want_q), "codes differ from quantize_act of y"

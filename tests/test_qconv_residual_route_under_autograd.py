"""qconv2d_residual takes its fused kernel only where no graph is asked for: with a residual that
requires grad (grad mode on) it composes differentiable ops, on every host. The wrapper's choice is
forced here to the fused kernel's paths (AVX-512 VNNI / AMX, or CUDA), which an AVX2-only host never
takes, so the check does not depend on the CPU the tests run on."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _args():
    from dwq.ops import qgemm as q

    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 256, (2, 16, 5, 5), generator=g, dtype=torch.uint8).contiguous(
        memory_format=torch.channels_last)
    w = torch.randint(0, 256, (16, 16, 3, 3), generator=g, dtype=torch.uint8)
    zw = torch.randint(0, 256, (16,), generator=g, dtype=torch.int32)
    zx, sx, sw = torch.tensor([128], dtype=torch.int32), torch.tensor([0.02]), torch.full((16,), 0.001)
    conv = (sx, zx, 8, q.pack_conv_weight(w, zw, 8), sw, 3, 1, 1, None, None)
    res = torch.randn(2, 16, 5, 5, generator=g).contiguous(memory_format=torch.channels_last)
    return x, conv, res, (torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32), 8)


def test_a_residual_that_requires_grad_gets_a_graph_where_the_fused_kernel_would_pay(monkeypatch):
    from dwq.ops import residual

    monkeypatch.setattr(residual, "_fused_epilogue_pays", lambda device: True)
    x, conv, res, nxt = _args()
    with torch.no_grad():
        want_y, want_q = residual.qconv2d_residual(x, *conv, res, True, *nxt)  # the fused kernel
    res.requires_grad_()
    y, q = residual.qconv2d_residual(x, *conv, res, True, *nxt)
    assert y.requires_grad and torch.equal(y.detach(), want_y) and torch.equal(q, want_q)
    y.sum().backward()
    assert torch.equal(res.grad, (want_y > 0).float())

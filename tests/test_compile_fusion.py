"""Under torch.compile the activation quantizer is traced as torch ops, not as the opaque fused ops
(issue 10: compiled against compiled, the 4-bit eval forward cost 1.57x the float one on the H200),
so that inductor can fuse it with batch norm, ReLU and the conv's layout copy. The torch ops must
give the kernels' values bit for bit, also as inductor generates them."""
import os

import pytest
import torch

import dwq
from dwq.models import small_cnn
from dwq.ops import HAS_EXT, fake_quantize

from conftest import devices

pytestmark = pytest.mark.skipif(
    not HAS_EXT and os.environ.get("DWQ_REQUIRE_EXT") != "1", reason="dwq._C is not built"
)


def _graph_targets(model, x):
    """The call targets of the graph dynamo hands to its backend."""
    targets = []

    def backend(gm, example_inputs):
        targets.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    torch.compile(model, backend=backend, fullgraph=True)(x)
    return targets


@pytest.mark.parametrize("train", [False, True])
def test_compiled_activation_quantizer_is_torch_ops(train):
    torch.manual_seed(0)
    m = small_cnn(num_classes=10, precisions=[None, 4])
    dwq.set_precision(m, 4)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        m.train()(x)  # ranges tracked, as for a trained model
    m.train(train)
    eager = [str(t) for t in _eager_ops(m, x)]
    assert "dwq.act_qparams.default" in eager and "dwq.fake_quantize.default" in eager  # (the fused path runs eagerly)
    targets = _graph_targets(m, x)
    assert not [t for t in targets if "act_qparams" in t or "fake_quantize" in t and "weight" not in t], targets
    assert any("weight_fake_quantize" in t for t in targets)  # (weights keep their op: see quantizers.py)


def _eager_ops(m, x):
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Record():
        m(x)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype,axis", [(torch.float32, None), (torch.float32, 1), (torch.bfloat16, None),
                                        (torch.float16, 1)])
def test_inductor_fake_quantize_equals_the_kernel(dtype, axis, device):
    """Inductor's code for the torch-op fake quantization (generated C++ on CPU, Triton on GPUs) against
    the kernel, bit for bit: random values, ties between codes, the floats next to them, and values beyond
    the code range. Triton's float32 division is approximate (div.full) unless inductor's
    eager_numerics.division_rounding is on (TORCHINDUCTOR_EMULATE_DIVISION_ROUNDING=1): the GPU case turns
    it on, as a user who wants the kernels' codes from a compiled model must."""
    import torch._inductor.config as inductor_config

    patch = {}
    if device == "cuda":
        if not hasattr(getattr(inductor_config, "eager_numerics", None), "division_rounding"):
            pytest.skip(f"torch {torch.__version__}'s inductor has no eager_numerics.division_rounding: its "
                        f"Triton float32 division is approximate")
        patch = {"eager_numerics.division_rounding": True}
    with inductor_config.patch(patch):
        _compare_compiled_fake_quantize(dtype, axis, torch.device(device))


def _compare_compiled_fake_quantize(dtype, axis, device):
    torch.manual_seed(0)
    c = 6 if axis else 1
    view = (1, c, 1, 1)
    zp = torch.randint(0, 16, (c,), dtype=torch.int32, device=device)
    k = torch.randint(-20, 36, (4, 6, 8, 8), device=device).float()
    as_int = torch.int32 if dtype == torch.float32 else torch.int16

    def f(x, scale, zp):
        return fake_quantize(x, scale, zp, 4, axis)[0]

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True)
    # Power-of-two scales keep exact ties (x / s = k + 1/2); with other scales, the floats next to a tie
    # are decided by the last bit of a correctly rounded x / s (a reciprocal or an approximate division
    # gets some of them wrong).
    inf = torch.tensor(float("inf"), device=device)
    for scale in (2.0 ** -torch.randint(2, 8, (c,), device=device).float(), torch.rand(c, device=device) * 0.1 + 0.01):
        tie = (k + 0.5 - zp.float().reshape(view)) * scale.reshape(view)
        near = [tie, torch.nextafter(tie, inf), torch.nextafter(tie, -inf)]
        x = torch.cat([torch.randn(4, 6, 8, 8, device=device), *near, torch.randn(1, 6, 8, 8, device=device) * 1e6])
        x = x.to(dtype)
        got, want = compiled(x, scale, zp), torch.ops.dwq.fake_quantize(x, scale, zp, 4, axis, False)[0]
        assert got.dtype == dtype and torch.equal(got.view(as_int), want.view(as_int))

"""torch.ops.dwq.fake_quantize: bit-exact against the pure-PyTorch reference, opcheck, STE."""
import os

import pytest
import torch

from dwq.ops import HAS_EXT, fake_quantize, fake_quantize_ref, has_kernel
from dwq.quant import choose_qparams

from conftest import devices

pytestmark = pytest.mark.skipif(
    not HAS_EXT and os.environ.get("DWQ_REQUIRE_EXT") != "1",
    reason="dwq._C is not built (pip install --no-build-isolation -e .)",
)


def _case(gen, device, dtype=torch.float32):
    dims = int(torch.randint(1, 5, (1,), generator=gen))
    shape = [int(s) for s in torch.randint(1, 7, (dims,), generator=gen)]
    bits = int(torch.randint(2, 17, (1,), generator=gen))
    per_channel = bool(torch.randint(0, 2, (1,), generator=gen))
    axis = int(torch.randint(0, dims, (1,), generator=gen)) if per_channel else None
    spread = float(10 ** torch.empty(1).uniform_(-4, 4, generator=gen))
    x = (torch.randn(shape, generator=gen, dtype=dtype) * spread).to(device)
    if axis is None:
        mn, mx = x.min().reshape(1), x.max().reshape(1)
    else:
        flat = x.movedim(axis, 0).reshape(x.shape[axis], -1)
        mn, mx = flat.amin(1), flat.amax(1)
    # Shrink the range sometimes so that clamping is exercised too.
    shrink = float(torch.empty(1).uniform_(0.3, 1.0, generator=gen))
    scale, zp = choose_qparams(mn * shrink, mx * shrink, bits)
    return x, scale, zp, bits, axis


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_bit_exactly(device, dtype):
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        x, scale, zp, bits, axis = _case(gen, device, dtype)
        out, codes = fake_quantize(x, scale, zp, bits, axis, return_codes=True)
        ref, ref_codes = fake_quantize_ref(x, scale, zp, bits, axis, return_codes=True)
        assert torch.equal(codes, ref_codes), (bits, axis, x.shape)
        assert torch.equal(out, ref), (bits, axis, x.shape)
        assert codes.min() >= 0 and codes.max() <= (1 << bits) - 1


def test_ties_round_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 3.5])
    _, codes = fake_quantize(x, torch.tensor([1.0]), torch.tensor([4], dtype=torch.int32), 4, return_codes=True)
    assert codes.tolist() == [4, 6, 6, 4, 2, 8]


def test_non_contiguous_input():
    x = torch.randn(6, 8).t()
    scale, zp = choose_qparams(x.amin(1), x.amax(1), 5)
    out, _ = fake_quantize(x, scale, zp, 5, axis=0)
    ref, _ = fake_quantize_ref(x.contiguous(), scale, zp, 5, axis=0)
    assert torch.equal(out, ref)


def test_half_precision_input_is_computed_in_float32():
    x = torch.randn(4, 4, dtype=torch.bfloat16)
    scale, zp = choose_qparams(x.float().min().reshape(1), x.float().max().reshape(1), 4)
    out, _ = fake_quantize(x, scale, zp, 4)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, fake_quantize_ref(x.float(), scale, zp, 4)[0].to(torch.bfloat16))


def test_ste_gradient_is_identity():
    x = torch.randn(3, 5, requires_grad=True)
    scale, zp = choose_qparams(x.detach().amin(1), x.detach().amax(1), 3)
    out, _ = fake_quantize(x, scale, zp, 3, axis=0)
    g = torch.randn(3, 5)
    out.backward(g)
    assert torch.equal(x.grad, g)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    x = torch.randn(4, 3, 5, device=device)
    for axis, c in ((None, 1), (1, 3), (-1, 5)):
        scale = torch.rand(c, device=device) + 0.05
        zp = torch.randint(0, 16, (c,), dtype=torch.int32, device=device)
        for return_codes in (False, True):
            args = (x.clone().requires_grad_(), scale, zp, 4, axis, return_codes)
            torch.library.opcheck(torch.ops.dwq.fake_quantize.default, args)


def test_torch_compile_fullgraph():
    def f(x, s, z):
        return fake_quantize(x, s, z, 6, 0)[0] * 2

    x = torch.randn(4, 7)
    s, z = choose_qparams(x.amin(1), x.amax(1), 6)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x, s, z), f(x, s, z))


def test_kernels_registered():
    assert has_kernel("fake_quantize", "cpu")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bits=1), "bits"),
        (dict(bits=17), "bits"),
        (dict(scale=torch.tensor([0.0])), "scale"),
        (dict(scale=torch.tensor([float("nan")])), "scale"),
        (dict(scale=torch.tensor([float("inf")])), "scale"),
        (dict(zero_point=torch.tensor([16], dtype=torch.int32)), "zero_point"),
        (dict(zero_point=torch.tensor([-1], dtype=torch.int32)), "zero_point"),
        (dict(scale=torch.ones(2)), "entries"),
        (dict(x=torch.tensor([1.0, float("nan")])), "NaN"),
        (dict(x=torch.arange(4)), "float"),
    ],
)
def test_bad_input(kwargs, message):
    args = dict(x=torch.randn(4), scale=torch.tensor([0.1]), zero_point=torch.tensor([3], dtype=torch.int32), bits=4)
    args.update(kwargs)
    with pytest.raises((ValueError, RuntimeError), match=message):
        fake_quantize(args["x"], args["scale"], args["zero_point"], args["bits"])

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


def _kernel(device):
    """Where the device has no kernel fake_quantize runs the reference: these tests would compare it
    with itself (a build without the CUDA sources on a GPU machine); without the extension, the whole
    module is skipped."""
    if not has_kernel("fake_quantize", device):
        pytest.skip(f"dwq was built without a {device} kernel of fake_quantize (DWQ_NO_CUDA=1?): nothing to "
                    f"compare with the reference")


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_bit_exactly(device, dtype):
    _kernel(device)
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


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_native_and_exact(device, dtype):
    _kernel(device)
    # The kernel reads and writes 16-bit floats itself, computing in float32: exactly the float32
    # result rounded to the 16-bit type, codes equal to the float32 codes.
    gen = torch.Generator().manual_seed(3)
    for _ in range(200):
        x, scale, zp, bits, axis = _case(gen, device, torch.float32)
        x = x.clamp(-6e4, 6e4).to(dtype)
        out, codes = fake_quantize(x, scale, zp, bits, axis, return_codes=True)
        ref, ref_codes = fake_quantize_ref(x.float(), scale, zp, bits, axis, return_codes=True)
        assert out.dtype == dtype
        assert torch.equal(codes, ref_codes), (dtype, bits, axis, x.shape)
        assert torch.equal(out, ref.to(dtype)), (dtype, bits, axis, x.shape)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_computes_half_precision_like_the_kernel(dtype):
    # The twin itself follows the op's contract for 16-bit x (float32 inside, rounded back): computed in
    # half, x / s and the zero point lost bits and about one code in 5,000 differed from the kernel's.
    gen = torch.Generator().manual_seed(12)
    x = (torch.randn(100_000, generator=gen) * 3).to(dtype)
    scale, zp = torch.tensor([0.1]), torch.tensor([7], dtype=torch.int32)
    out, codes = fake_quantize(x, scale, zp, 4, return_codes=True)
    ref, ref_codes = fake_quantize_ref(x, scale, zp, 4, return_codes=True)
    assert ref.dtype == dtype
    assert torch.equal(codes, ref_codes) and torch.equal(out, ref)


def _layouts(device):
    """Inputs in every memory format the kernels meet: channels-last, transposed, sliced, expanded."""
    g = torch.Generator().manual_seed(4)
    base = torch.randn(2, 3, 4, 5, generator=g).to(device)
    return {
        "contiguous": base,
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "transposed": base.transpose(1, 3),
        "sliced": base[:, :, ::2, 1:],
        "channels_last_sliced": base.contiguous(memory_format=torch.channels_last)[:, :, 1:, ::2],
        "expanded": torch.randn(2, 3, 1, 5, generator=g).to(device).expand(2, 3, 4, 5),
        "size_one_dims": torch.randn(2, 1, 4, 1, generator=g).to(device).contiguous(memory_format=torch.channels_last),
    }


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", list(_layouts("cpu")))
@pytest.mark.parametrize("axis", [None, 1, -1])
def test_outputs_follow_the_memory_format_of_x(device, layout, axis):
    _kernel(device)
    x = _layouts(device)[layout]
    c = 1 if axis is None else x.shape[axis]
    scale = torch.rand(c, device=device) + 0.05
    zp = torch.randint(0, 16, (c,), dtype=torch.int32, device=device)
    out, codes = fake_quantize(x, scale, zp, 4, axis, return_codes=True)
    want = torch.empty_like(x)  # the rule the fake (meta) impl follows too
    assert out.stride() == want.stride() and codes.stride() == want.stride(), (layout, out.stride(), want.stride())
    ref, ref_codes = fake_quantize_ref(x.contiguous(), scale, zp, 4, axis, return_codes=True)
    assert torch.equal(out, ref) and torch.equal(codes, ref_codes)


def test_ste_gradient_is_identity():
    x = torch.randn(3, 5, requires_grad=True)
    scale, zp = choose_qparams(x.detach().amin(1), x.detach().amax(1), 3)
    out, _ = fake_quantize(x, scale, zp, 3, axis=0)
    g = torch.randn(3, 5)
    out.backward(g)
    assert torch.equal(x.grad, g)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (the op's C++ Autograd kernel)")
@pytest.mark.parametrize("device", devices())
def test_a_graph_is_recorded_exactly_when_grad_mode_and_an_input_ask_for_one(device):
    """The Autograd kernels call the op directly when nothing is to be recorded (host time): the outputs
    must require grad exactly when Function::apply's would, with the same values."""
    x = torch.randn(4, 6, device=device)
    scale, zp = choose_qparams(x.amin(1), x.amax(1), 5)
    fq, wfq = torch.ops.dwq.fake_quantize.default, torch.ops.dwq.weight_fake_quantize.default
    want, want_w = fq(x, scale, zp, 5, 0, True), wfq(x, 5)
    for grad_mode in (False, True):
        for x_grad, s_grad in ((False, False), (True, False), (False, True)):
            xi, si = x.clone().requires_grad_(x_grad), scale.clone().requires_grad_(s_grad)
            with torch.set_grad_enabled(grad_mode):
                out, codes = fq(xi, si, zp, 5, 0, True)
                w = wfq(xi, 5)
            assert out.requires_grad == (grad_mode and (x_grad or s_grad)), (grad_mode, x_grad, s_grad)
            assert w.requires_grad == (grad_mode and x_grad) and not codes.requires_grad
            assert torch.equal(out, want[0]) and torch.equal(codes, want[1]) and torch.equal(w, want_w)
            if out.requires_grad and x_grad:
                out.sum().backward()
                assert torch.equal(xi.grad, torch.ones_like(x))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", list(_layouts("cpu")) + ["3d", "half", "bfloat16"])
def test_opcheck(device, layout):
    if layout == "3d":
        x = torch.randn(4, 3, 5, device=device)
    elif layout in ("half", "bfloat16"):
        x = _layouts(device)["channels_last"].to(torch.float16 if layout == "half" else torch.bfloat16)
    else:
        x = _layouts(device)[layout]
    for axis in (None, 1, -1):
        c = 1 if axis is None else x.shape[axis]
        scale = torch.rand(c, device=device) + 0.05
        zp = torch.randint(0, 16, (c,), dtype=torch.int32, device=device)
        for return_codes in (False, True):
            args = (x.detach().clone().requires_grad_(), scale, zp, 4, axis, return_codes)
            if layout != "3d":  # keep the sample's strides (clone() already preserves dense layouts)
                args = (x.detach().requires_grad_(),) + args[1:]
            torch.library.opcheck(torch.ops.dwq.fake_quantize.default, args)


def test_torch_compile_fullgraph():
    def f(x, s, z):
        return fake_quantize(x, s, z, 6, 0)[0] * 2

    x = torch.randn(4, 7)
    s, z = choose_qparams(x.amin(1), x.amax(1), 6)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x, s, z), f(x, s, z))


def test_torch_compile_channels_last_fullgraph():
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    s, z = choose_qparams(x.amin((0, 2, 3)), x.amax((0, 2, 3)), 5)

    def f(x):
        return fake_quantize(x, s, z, 5, 1)[0] + 1

    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    assert torch.equal(got, f(x)) and got.is_contiguous(memory_format=torch.channels_last)


def test_kernels_registered():
    assert has_kernel("fake_quantize", "cpu")


def test_wrapper_takes_the_reference_where_no_kernel_serves(monkeypatch):
    """A build without a kernel for the device (a C++-only dwq._C on a GPU machine) runs the
    pure-PyTorch reference instead of failing in the dispatcher; its NaN error is the reference's."""
    from dwq.ops import _lib

    x = torch.randn(4, 6)
    s, z = choose_qparams(x.min().reshape(1), x.max().reshape(1), 5)
    want = fake_quantize(x, s, z, 5)[0]
    monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    assert torch.equal(fake_quantize(x, s, z, 5)[0], want)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN has no quantized code"):
        fake_quantize(x, s, z, 5)


@pytest.mark.parametrize("scale, zero_point, message", [
    ([0.1, 0.0], [1, 2], r"scale\[1\] must be finite and > 0, got 0.0"),
    ([float("inf"), 0.1], [1, 2], r"scale\[0\] must be finite and > 0, got inf"),
    ([0.1, 0.1], [1, 32], r"zero_point\[1\] = 32 is not a code of 5 bits \(0..31\)"),
    ([0.1, 0.1], [-1, 3], r"zero_point\[0\] = -1 is not a code of 5 bits"),
])
def test_the_reference_path_checks_scale_and_zero_point_like_the_kernel(monkeypatch, scale, zero_point, message):
    # Without a kernel for the device a zero scale gave NaN and a zero point outside the codes a
    # shifted grid, silently, where the kernels raise.
    from dwq.ops import _lib

    monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    with pytest.raises(ValueError, match=message):
        fake_quantize(torch.randn(2, 3), torch.tensor(scale), torch.tensor(zero_point, dtype=torch.int32), 5, 0)


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
        # converted to int32 by saturation, not wrapping, and never from floats or bools
        # (the message names the value given, not the saturated 2^31 - 1 the kernel sees)
        (dict(zero_point=torch.tensor([2**32 + 3])), "zero_point\\[0\\] = 4294967299 is not a code"),
        (dict(zero_point=torch.tensor([-2**40])), "zero_point\\[0\\] = -1099511627776 is not a code"),
        # unsigned: a uint32's 2^32 - 1 wrapped to -1; torch has no clamp for uint32 / uint64
        (dict(zero_point=torch.tensor([2**32 - 1], dtype=torch.uint32)), "zero_point\\[0\\] = 4294967295 is not a"),
        (dict(zero_point=torch.tensor([2**64 - 1], dtype=torch.uint64)), "zero_point\\[0\\] = 18446744073709551615 is"),
        (dict(zero_point=torch.tensor([2**32 + 3], dtype=torch.uint64)), "zero_point\\[0\\] = 4294967299 is not a"),
        (dict(zero_point=torch.tensor([3.7])), "zero_point must be an integer tensor"),
        (dict(zero_point=torch.tensor([True])), "zero_point must be an integer tensor"),
        (dict(scale=torch.ones(2)), "entries"),
        (dict(x=torch.tensor([1.0, float("nan")])), "NaN"),
        (dict(x=torch.arange(4)), "float"),
        (dict(axis=1), r"axis=1 is not a dimension of x, shape \[4\]"),
        (dict(axis=-2), r"axis=-2 is not a dimension of x"),
        (dict(x=torch.tensor(0.5), axis=0), r"axis=0 is not a dimension of x, shape \[\]"),
    ],
)
def test_bad_input(kwargs, message):
    args = dict(x=torch.randn(4), scale=torch.tensor([0.1]), zero_point=torch.tensor([3], dtype=torch.int32), bits=4,
                axis=None)
    args.update(kwargs)
    with pytest.raises((ValueError, RuntimeError), match=message):
        fake_quantize(args["x"], args["scale"], args["zero_point"], args["bits"], args["axis"])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_large_and_misaligned_tensors(device, dtype):
    """Sizes past one pass of the grid with a ragged tail, per tensor and per channel (vectors of 16
    bytes where a channel's run allows, element by element where not), and views whose data pointer
    is not 16-byte aligned (the element-wise path on CUDA)."""
    gen = torch.Generator().manual_seed(6)
    base = (torch.randn(3, 700_001, generator=gen) * 3).to(dtype).to(device)
    for x, axis in [(base, None), (base, 0), (base[:, 1:], None), (base[:, :-1].reshape(3, 7, 100_000), 1),
                    (base.reshape(-1)[3:2_100_003].reshape(6, 350_000), 0)]:
        c = 1 if axis is None else x.shape[axis]
        scale = torch.rand(c, generator=gen).to(device) * 0.1 + 0.01
        zp = torch.randint(0, 256, (c,), generator=gen, dtype=torch.int32).to(device)
        out, codes = fake_quantize(x, scale, zp, 8, axis, return_codes=True)
        ref, ref_codes = fake_quantize_ref(x.float() if dtype in (torch.float16, torch.bfloat16) else x,
                                           scale, zp, 8, axis, return_codes=True)
        assert torch.equal(codes, ref_codes), (x.shape, axis)
        assert torch.equal(out, ref.to(dtype)), (x.shape, axis)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_every_cpu_isa_is_bit_exact(isa, dtype):
    """The CPU kernel is built once per ISA (csrc/cpu/float_kernels_*.cpp): each equals the reference."""
    gen = torch.Generator().manual_seed(11)
    for _ in range(60):
        x, scale, zp, bits, axis = _case(gen, "cpu", torch.float32)
        x = torch.cat([x.reshape(-1), torch.randn(1000, generator=gen)]) if axis is None else x
        x = x.clamp(-6e4, 6e4).to(dtype)
        out, codes = fake_quantize(x, scale, zp, bits, axis, return_codes=True)
        low = dtype in (torch.float16, torch.bfloat16)
        ref, ref_codes = fake_quantize_ref(x.float() if low else x, scale, zp, bits, axis, return_codes=True)
        assert torch.equal(codes, ref_codes) and torch.equal(out, ref.to(dtype)), (isa, dtype, bits, axis)
        assert torch.equal(fake_quantize(x, scale, zp, bits, axis)[0], out)  # (the loop without codes)


def test_unsigned_zero_points_are_codes_like_int32():
    x, s = torch.randn(4, 3), torch.full((3,), 0.1)
    want = fake_quantize(x, s, torch.tensor([0, 7, 15], dtype=torch.int32), 4, 1)[0]
    for dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64):
        assert torch.equal(fake_quantize(x, s, torch.tensor([0, 7, 15], dtype=dtype), 4, 1)[0], want)


@pytest.mark.parametrize("axis", [True, False, torch.tensor(True), 1.0, "1"])
def test_axis_must_be_an_int_not_a_bool(axis):
    """True is an int to operator.index: axis=True quantized along dim 1, silently (in both zero-point
    modes, which share the check)."""
    import dwq

    x, s = torch.randn(4, 5), torch.full((5,), 0.1)
    with pytest.raises(ValueError, match=r"fake_quantize: axis must be an int \(a dimension of x\) or None"):
        fake_quantize(x, s, torch.zeros(5, dtype=torch.int32), 8, axis)
    with pytest.raises(ValueError, match=r"fake_quantize: axis must be an int \(a dimension of x\) or None"):
        dwq.quant.fake_quantize_float_zp(x, s, torch.zeros(5), 8, axis)


def test_numpy_and_tensor_axes_are_ints():
    import numpy as np

    x, s, z = torch.randn(4, 5), torch.full((5,), 0.1), torch.full((5,), 3, dtype=torch.int32)
    want = fake_quantize(x, s, z, 8, 1)[0]
    for axis in (np.int64(1), torch.tensor(1), -1):
        assert torch.equal(fake_quantize(x, s, z, 8, axis)[0], want)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built")
@pytest.mark.parametrize("axis", [2, -3, 2**40])
def test_the_op_itself_names_an_axis_that_x_lacks(axis):
    # The wrapper checks the axis; torch.ops.dwq.fake_quantize called directly raised maybe_wrap_dim's
    # bare IndexError ("Dimension out of range"), naming neither the op nor the argument.
    s, z = torch.full((3,), 0.1), torch.full((3,), 3, dtype=torch.int32)
    with pytest.raises(RuntimeError, match=rf"dwq.fake_quantize: axis={axis} is not a dimension of x, shape \[3, 3\]"):
        torch.ops.dwq.fake_quantize(torch.randn(3, 3), s, z, 4, axis, True)


def test_a_float64_scale_is_taken_in_float32_by_the_op_and_its_reference():
    """The op rounds the scale to float32 (its kernels' type), the reference used it in x's dtype: a float64
    0.1 gave codes [5, 3] and [6, 3]; a float64 1e-50, 0 in float32, was refused as "got 0"."""
    x = torch.tensor([0.55, 0.35], dtype=torch.float64)
    s, z = torch.tensor([0.1], dtype=torch.float64), torch.tensor([0], dtype=torch.int32)
    got, ref = fake_quantize(x, s, z, 8, None, True), fake_quantize_ref(x, s, z, 8, None, True)
    assert torch.equal(got[1], ref[1]) and torch.equal(got[0], ref[0])
    with pytest.raises(ValueError, match=r"scale\[0\] = 1e-50 \(torch.float64\) must be finite and > 0 in float32"):
        fake_quantize(torch.randn(3), torch.tensor([1e-50], dtype=torch.float64), z, 8)

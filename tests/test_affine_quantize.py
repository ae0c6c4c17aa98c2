"""dwq.ops.affine_quantize_act: a folded batch norm, its ReLU and the next layer's activation
quantization in one pass. Bit-exact against the pure-PyTorch reference (mul, add, ReLU,
quantize_act) on every CPU ISA and memory layout, at chunk and thread boundaries and at rounding
ties; the composition used where there is no kernel gives the same codes; opcheck; bad input."""

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import _lib  # noqa: E402
from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from conftest import devices, needs_cuda_kernel  # noqa: E402
from kernel_data import rand_zp  # noqa: E402


def _layouts(x):
    """x [B, C, ...] in the layouts a model hands over: NCHW, channels-last, a permuted dense view
    and a sliced (not dense) one."""
    out = [("contiguous", x)]
    if x.dim() == 4:
        out.append(("channels_last", x.contiguous(memory_format=torch.channels_last)))
        out.append(("permuted", x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)))
    big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1])
    big[..., ::2] = x
    out.append(("sliced", big[..., ::2]))
    return out


def _case(g, shape, bits, relu, device="cpu"):
    C = shape[1]
    x = torch.randn(shape, generator=g) * 3
    scale = torch.randn(C, generator=g)
    bias = torch.randn(C, generator=g)
    out_scale = torch.rand(1, generator=g) * 0.2 + 1e-3
    zp = rand_zp(g, bits)
    return [t.to(device) for t in (x, scale, bias)] + [relu] + [t.to(device) for t in (out_scale, zp)] + [bits]


SHAPES = [(2, 3, 5, 7), (4, 64, 8, 8), (3, 17, 1, 1), (2, 5), (2, 3, 4, 5, 6), (1, 3000, 2, 2), (1, 2, 50, 50),
          (601, 11, 4, 4), (0, 3, 2, 2)]


def test_exact_on_every_layout(isa):
    # (1, 3000, ...) channels-last and (1, 2, 50, 50) NCHW have rows longer than the kernel's chunk;
    # (601, 11, 4, 4) splits its rows between threads at a row whose channel is not 0.
    g = torch.Generator().manual_seed(21)
    for shape in SHAPES:
        for bits in (2, 5, 8, 9, 16):
            relu = bool(torch.randint(0, 2, (1,), generator=g))
            x, *rest = _case(g, shape, bits, relu)
            for name, xl in _layouts(x):
                got = q.affine_quantize_act(xl, *rest)
                want = ref.affine_quantize_act_ref(xl, *rest)
                where = f"{shape} {name} bits {bits} relu {relu}"
                assert got.dtype == ref.codes_dtype(bits) and got.shape == xl.shape, where
                assert got.stride() == torch.empty_like(xl).stride(), where  # the fake impl's strides
                assert torch.equal(got, want), where


def test_rounding_ties_and_saturation(isa):
    # y = x * 1 + 0.5 with integer x: every y is a half-integer, so each code is a tie (half to even);
    # large |x| saturates at 0 and 2^bits - 1; ReLU maps y < 0 to the zero point's code.
    x = torch.arange(-40, 40, dtype=torch.float32).reshape(1, 2, 5, 8)
    ones, halves = torch.ones(2), torch.full((2,), 0.5)
    for relu in (False, True):
        for z in (0, 7, 15):
            args = (ones, halves, relu, torch.ones(1), torch.tensor([z], dtype=torch.int32), 4)
            for name, xl in _layouts(x):
                got = q.affine_quantize_act(xl, *args)
                assert torch.equal(got, ref.affine_quantize_act_ref(xl, *args)), f"{name} relu {relu} z {z}"
            y = x + 0.5
            y = y.clamp_min(0) if relu else y
            assert torch.equal(got.float(), (torch.round(y) + z).clamp(0, 15)), f"relu {relu} z {z}"


@pytest.mark.parametrize("device", devices())
def test_composition_without_a_kernel_gives_the_same_codes(monkeypatch, device):
    # Where the op has no kernel (CUDA, or a build without it) the wrapper composes torch's mul and
    # add with quantize_act: the codes must be the kernel's.
    g = torch.Generator().manual_seed(22)
    cases = [_case(g, shape, bits, relu, device) for shape in SHAPES[:5] for bits in (4, 12) for relu in (False, True)]
    want = [ref.affine_quantize_act_ref(*[a.cpu() if torch.is_tensor(a) else a for a in c]) for c in cases]
    monkeypatch.setitem(_lib._KERNELS, ("affine_quantize_act", device), False)
    for c, w in zip(cases, want):
        got = q.affine_quantize_act(*c)
        assert got.device.type == device and torch.equal(got.cpu(), w), f"{tuple(c[0].shape)} bits {c[-1]}"


def _good():
    return (torch.randn(2, 3, 4, 4), torch.ones(3), torch.zeros(3), True, torch.tensor([0.1]),
            torch.tensor([3], dtype=torch.int32), 8)


def _with(i, v):
    a = list(_good())
    a[i] = v
    return a


BAD = [
    ("x NaN", _with(0, torch.full((2, 3, 4, 4), float("nan"))), r"NaN"),
    ("inf * 0", [torch.full((2, 3, 4, 4), float("inf")), torch.zeros(3), *_good()[2:]], r"NaN"),
    ("x float64", _with(0, torch.randn(2, 3, 4, 4, dtype=torch.float64)), r"x must be float32"),
    ("x 1-D", _with(0, torch.randn(3)), r"x must be .*\[B, C, \.\.\.\]"),
    ("scale length", _with(1, torch.ones(4)), r"scale must (have shape|be float32) \[3\]"),
    ("bias dtype", _with(2, torch.zeros(3, dtype=torch.float64)), r"bias must (be )?float32"),
    ("bias inf", _with(2, torch.tensor([0.0, float("inf"), 0.0])), r"bias(\[1\])? must be finite"),
    ("out_scale 0", _with(4, torch.tensor([0.0])), r"out_scale(\[0\])? must be finite and > 0"),
    ("out_zero_point", _with(5, torch.tensor([256], dtype=torch.int32)), r"out_zero_point(\[0\])? = 256 is not a code"),
]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "composition"])
@pytest.mark.parametrize("name, args, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_problem(monkeypatch, kernel, name, args, message):
    if not kernel:
        monkeypatch.setitem(_lib._KERNELS, ("affine_quantize_act", "cpu"), False)
    with pytest.raises((RuntimeError, ValueError), match="affine_quantize_act|quantize_act"):
        q.affine_quantize_act(*args)
    with pytest.raises((RuntimeError, ValueError), match=message):
        q.affine_quantize_act(*args)
    for bits in (1, 17):
        with pytest.raises(ValueError, match="bits"):
            q.affine_quantize_act(*_good()[:-1], bits)
    with pytest.raises(TypeError, match="relu must be a bool"):
        q.affine_quantize_act(*_with(3, 1))


@pytest.mark.parametrize("bits", [4, 12])
def test_opcheck(bits):
    x = torch.randn(2, 3, 4, 5)
    args = (torch.randn(3), torch.randn(3), True, torch.tensor([0.05]), torch.tensor([1], dtype=torch.int32), bits)
    for _, xl in _layouts(x) + [("2-D", torch.randn(5, 3))]:
        torch.library.opcheck(torch.ops.dwq.affine_quantize_act.default, (xl, *args))


@needs_cuda_kernel("affine_quantize_act")
def test_cuda_kernel_matches_the_reference():
    g = torch.Generator().manual_seed(23)
    for shape in SHAPES:
        for bits in (3, 8, 11, 16):
            relu = bool(torch.randint(0, 2, (1,), generator=g))
            x, *rest = _case(g, shape, bits, relu)
            for name, xl in _layouts(x):
                want = ref.affine_quantize_act_ref(xl, *rest)
                got = q.affine_quantize_act(xl.cuda(), *[a.cuda() if torch.is_tensor(a) else a for a in rest])
                where = f"{shape} {name} bits {bits} relu {relu}"
                assert got.is_cuda and got.stride() == torch.empty_like(xl.cuda()).stride(), where
                assert torch.equal(got.cpu(), want), where
    x, s, b, relu, os_, oz, bits = _good()
    cu = [t.cuda() for t in (x, s, b)] + [relu] + [t.cuda() for t in (os_, oz)] + [bits]
    torch.library.opcheck(torch.ops.dwq.affine_quantize_act.default, tuple(cu))
    for name, args, message in BAD:
        with pytest.raises((RuntimeError, ValueError), match=message):
            q.affine_quantize_act(*[a.cuda() if torch.is_tensor(a) else a for a in args])
    with pytest.raises(RuntimeError, match="scale must be on cuda"):
        q.affine_quantize_act(cu[0], s, *cu[2:])

"""dwq.ops.add_relu_ (a ResNet block's residual add and ReLU in one pass), add_relu_quantize_ (and the
next layer's input codes in that pass), add_affine_quantize_ (a pre-activation block's add and the
next block's batch norm, ReLU and codes) and the integer model's use of them. The kernels equal
torch.relu(x + other) (or x + other) and quantize_act's (affine_quantize_act's) codes on every CPU ISA
and on CUDA: tails, chunk and thread splits, NaN,
inf, -0, an aliased other; the wrappers compose torch ops for what the kernels do not take; the ops
refuse bad input by name; opcheck. IntegerModel runs an add that only the next relu reads as one
step, handing a quantized reader its codes, with the logits (and gradients) of the program step by
step, and leaves the program (a saved model) unchanged."""

import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import IntegerModel, convert
from dwq.deploy.integer_model import _add_relu, _ConvResidualInto, _ResidualInto
from dwq.nn import QConv2d
from dwq.ops import _lib
from dwq.ops import residual as r
from dwq.ops._lib import HAS_EXT
from dwq.ops.qgemm_reference import codes_dtype
from kernel_data import rand_zp
from conftest import needs_cuda_kernel

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _bits(t):
    return t.view(torch.int32)


def _assert_same(got, want, where):
    """Bit-equal, but NaN only by position (which NaN an add returns depends on operand order)."""
    assert got.shape == want.shape and got.dtype == want.dtype, where
    nan = torch.isnan(want)
    assert torch.equal(torch.isnan(got), nan), where
    assert torch.equal(_bits(got[~nan]), _bits(want[~nan])), where


def _special(g, shape):
    """Random values with NaN, +-inf, -0 and sums that cancel to 0 sprinkled in."""
    x = torch.randn(shape, generator=g)
    o = torch.randn(shape, generator=g)
    flat_x, flat_o = x.view(-1), o.view(-1)
    n = flat_x.numel()
    if n:
        idx = torch.randint(0, n, (max(1, n // 50), 5), generator=g)
        flat_x[idx[:, 0]] = float("nan")
        flat_o[idx[:, 1]] = float("inf")
        flat_x[idx[:, 2]] = -0.0
        flat_o[idx[:, 2]] = -0.0
        flat_o[idx[:, 3]] = -flat_x[idx[:, 3]]
        flat_x[idx[:, 4]] = float("-inf")
    return x, o


SHAPES = [(1,), (15,), (17,), (33,), (2, 3, 5, 7), (4, 64, 8, 8), (1, 1000, 7, 7), (3, 2, 130, 130), (0, 4, 2, 2)]


@needs_ext
def test_kernel_equals_relu_of_the_sum(isa):
    # (3, 2, 130, 130) is 101,400 elements: several threads' ranges at the op's 32,768 grain.
    g = torch.Generator().manual_seed(1)
    for shape in SHAPES:
        x, o = _special(g, shape)
        layouts = [x]
        if x.dim() == 4:
            layouts.append(x.contiguous(memory_format=torch.channels_last))
        for xl in layouts:
            ol = o.contiguous(memory_format=torch.channels_last) if xl is not x else o
            want = torch.relu(xl + ol)
            got = xl.clone()
            torch.ops.dwq.add_relu_.default(got, ol)
            _assert_same(got, want, f"{shape} {isa}")
            assert got.stride() == xl.stride()


@needs_ext
def test_other_may_be_x_itself(isa):
    x = torch.randn(1000)
    want = torch.relu(x + x)
    torch.ops.dwq.add_relu_.default(x, x)
    _assert_same(x, want, isa)


def test_wrapper_composes_torch_ops_for_what_the_kernel_does_not_take(monkeypatch):
    g = torch.Generator().manual_seed(2)
    x, o = _special(g, (2, 4, 6, 6))
    cases = {"broadcast other": (x, o[:, :, :1, :1]),
             "float64": (x.double(), o.double()),
             "different layouts": (x, o.contiguous(memory_format=torch.channels_last)),
             "sliced x": (x[:, :, ::2], o[:, :, ::2]),
             "kernel's case": (x, o)}
    for kernel in (True, False):
        monkeypatch.setitem(_lib._KERNELS, ("add_relu_", "cpu"), kernel and HAS_EXT)
        for name, (a, b) in cases.items():
            want = r.add_relu_ref(a, b)
            a = a.clone()
            got = r.add_relu_(a, b)
            assert got is a, name
            _assert_same(got, want, f"{name} kernel={kernel}")


@needs_ext
@pytest.mark.parametrize("name, args, message", [
    ("dtype", lambda: (torch.zeros(4), torch.zeros(4, dtype=torch.float64)), "must be float32, got Float and Double"),
    ("shape", lambda: (torch.zeros(4, 3), torch.zeros(3)), r"must have x's shape \[4, 3\] \(no broadcast\)"),
    ("strides", lambda: (torch.zeros(4, 3), torch.zeros(3, 4).t()), "laid out like it"),
    ("not dense", lambda: (torch.zeros(4, 6)[:, ::2], torch.zeros(4, 6)[:, ::2]), "must be dense without overlap"),
    ("expanded", lambda: (torch.zeros(1, 3).expand(4, 3), torch.zeros(1, 3).expand(4, 3)), "must be dense"),
    ("partial overlap", lambda: (lambda t: (t[:8], t[1:9]))(torch.zeros(9)), "refer to a single memory location"),
])
def test_op_refuses_bad_input(name, args, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.dwq.add_relu_.default(*args())


@needs_ext
def test_op_refuses_to_record_a_graph_it_has_no_gradient_for():
    """Without the check, a backward through x's in-place update gave wrong gradients, silently."""
    x = torch.randn(6, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad, and this op has no gradient"):
        torch.ops.dwq.add_relu_.default(x * 1, torch.randn(6))
    with torch.no_grad():
        y = x * 1
        torch.ops.dwq.add_relu_.default(y, -y)
    assert torch.equal(y, torch.zeros(6))


_S, _Z = torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32)
_IN_PLACE = {
    "add_relu_": lambda x, o: torch.ops.dwq.add_relu_.default(x, o),
    "add_relu_quantize_": lambda x, o: torch.ops.dwq.add_relu_quantize_.default(x, o, _S, _Z, 8),
    "add_affine_quantize_": lambda x, o: torch.ops.dwq.add_affine_quantize_.default(
        x, o, torch.ones(3), torch.zeros(3), False, _S, _Z, 8),
}


@needs_ext
@pytest.mark.parametrize("name", list(_IN_PLACE))
def test_ops_bump_x_version_so_a_saved_x_is_refused(name):
    """x that needs no grad but that autograd saved for another op's backward (here w's): the ops wrote
    it without bumping its version, so backward ran on the new values and gave w a wrong gradient
    (off by up to 21 here); torch's in-place ops make that backward fail, and so do these now."""
    w = torch.ones(3, 1, 1, requires_grad=True)
    x, o = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    y = (w * x).sum()
    v = x._version
    _IN_PLACE[name](x, o)
    assert x._version > v
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    with torch.inference_mode():  # (inference tensors have no version: allowed inside, refused outside)
        xi, oi = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
        _IN_PLACE[name](xi, oi)
    before = xi.clone()
    with pytest.raises(RuntimeError, match=f"dwq.{name}: x is an inference tensor"):
        _IN_PLACE[name](xi, oi)
    assert torch.equal(xi, before)  # refused before the kernel wrote


def test_wrapper_is_differentiable_where_autograd_records():
    x, o = torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 4, 4)
    r.add_relu_(x * 1, o).sum().backward()
    assert torch.equal(x.grad, (x + o > 0).float())


@needs_ext
def test_opcheck():
    x = torch.randn(2, 3, 4, 5)
    for xl in (x, x.contiguous(memory_format=torch.channels_last), torch.randn(7)):
        torch.library.opcheck(torch.ops.dwq.add_relu_.default, (xl.clone(), torch.randn_like(xl)))


@needs_ext
@needs_cuda_kernel("add_relu_")
def test_cuda_kernel_equals_relu_of_the_sum():
    g = torch.Generator().manual_seed(3)
    for shape in SHAPES:
        x, o = _special(g, shape)
        got = x.cuda()
        torch.ops.dwq.add_relu_.default(got, o.cuda())
        _assert_same(got.cpu(), torch.relu(x + o), f"{shape} cuda")
    x = torch.randn(2, 3, 4, 5, device="cuda").contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.dwq.add_relu_.default, (x, torch.randn_like(x)))
    with pytest.raises(RuntimeError, match="other must be on cuda:0 like x, got cpu"):
        torch.ops.dwq.add_relu_.default(x, torch.randn_like(x).cpu())
    with pytest.raises(RuntimeError, match="refer to a single memory location"):
        t = torch.zeros(9, device="cuda")
        torch.ops.dwq.add_relu_.default(t[:8], t[1:9])
    # the wrappers reach the quantizing ops' CUDA kernels (test_cuda_quantizing_kernels_... below)
    qp = (torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32), 8)
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    want_x, want_q = r.add_relu_quantize_ref(a, b, *qp)
    got_x = a.cuda()
    got_q = r.add_relu_quantize_(got_x, b.cuda(), *[t.cuda() if torch.is_tensor(t) else t for t in qp])
    assert torch.equal(got_q.cpu(), want_q) and torch.equal(got_x.cpu(), want_x)
    args = (torch.rand(8) + 0.5, torch.randn(8), True) + qp
    want_x, want_q = r.add_affine_quantize_ref(a, b, *args)
    got_x = a.cuda()
    got_q = r.add_affine_quantize_(got_x, b.cuda(), *[t.cuda() if torch.is_tensor(t) else t for t in args])
    assert torch.equal(got_q.cpu(), want_q) and torch.equal(got_x.cpu(), want_x)


# ------------------------------------------------------------------------------- add_relu_quantize_

def _check_codes_op(op, ref, x, other, args, where):
    """op on a copy of x (updated in place) against ref, x and other contiguous and (4-D) channels-last:
    the same x and codes, in x's layout."""
    layouts = [(x, other)]
    if x.dim() == 4:
        layouts.append(tuple(t.contiguous(memory_format=torch.channels_last) for t in (x, other)))
    for xl, ol in layouts:
        want_x, want_q = ref(xl, ol, *args)
        got_x = xl.clone()
        got_q = op(got_x, ol, *args)
        at = f"{where} strides {xl.stride()}"
        assert got_q.dtype == codes_dtype(args[-1]) and got_q.stride() == xl.stride(), at
        assert torch.equal(got_q, want_q), at
        _assert_same(got_x, want_x, at)


def _qparams(g, bits):
    return torch.rand(1, generator=g) * 0.2 + 1e-3, rand_zp(g, bits), bits


@needs_ext
def test_quantize_kernel_equals_the_reference(isa):
    # (3, 2, 130, 130): chunks of 2,048 and several threads' ranges; NaN-free inputs (NaN is an error).
    g = torch.Generator().manual_seed(4)
    for shape in [(1,), (2047,), (2049,), (2, 3, 5, 7), (4, 64, 8, 8), (3, 2, 130, 130), (0, 4, 2, 2)]:
        for bits in (2, 5, 8, 9, 16):
            x, o = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
            if x.numel():
                o.view(-1)[0] = -x.view(-1)[0]  # a sum of exactly 0
            _check_codes_op(torch.ops.dwq.add_relu_quantize_.default, r.add_relu_quantize_ref, x, o,
                            _qparams(g, bits), f"{shape} bits {bits} {isa}")


def test_quantize_wrapper_composes_where_there_is_no_kernel(monkeypatch):
    g = torch.Generator().manual_seed(5)
    x, o = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    qp = _qparams(g, 6)
    want_x, want_q = r.add_relu_quantize_ref(x, o, *qp)
    for kernel in (True, False):
        monkeypatch.setitem(_lib._KERNELS, ("add_relu_quantize_", "cpu"), kernel and HAS_EXT)
        for a, b in ((x, o), (x, o[:, :, :1, :1].expand_as(o).contiguous())):
            xi = a.clone()
            q = r.add_relu_quantize_(xi, b, *qp)
            if b is o:
                assert torch.equal(q, want_q) and torch.equal(xi, want_x), kernel
    with pytest.raises((RuntimeError, ValueError), match="NaN has no code"):  # quantize_act's error, composed
        monkeypatch.setitem(_lib._KERNELS, ("add_relu_quantize_", "cpu"), False)
        r.add_relu_quantize_(torch.full((3,), float("nan")), torch.zeros(3), *qp)


@pytest.mark.parametrize("op", ["add_relu_quantize_", "add_affine_quantize_"])
@pytest.mark.parametrize("bad", ["scale", "bits", "dtype"])
def test_composed_wrappers_leave_x_alone_when_they_refuse(op, bad):
    # a broadcast other or a float64 x takes the composed path; it updated x before quantize_act
    # (affine_quantize_act) refused an argument, where the kernel checks them all first
    g = torch.Generator().manual_seed(11)
    x, other = torch.randn(2, 3, 4, 4, generator=g), torch.randn(3, 1, 1, generator=g)
    qp = [torch.tensor([0.1]), torch.tensor([2], dtype=torch.int32), 4]
    if bad == "scale":
        qp[0] = torch.tensor([float("nan")])
    elif bad == "bits":
        qp[2] = 20
    else:
        x = x.double()
    affine = (torch.rand(3, generator=g) + 0.5, torch.randn(3, generator=g), True)
    args = (x, other, *qp) if op == "add_relu_quantize_" else (x, other, *affine, *qp)
    before = x.clone()
    message = {"scale": "scale must be finite and > 0", "bits": "bits must be an int in 2..16, got 20",
               "dtype": "x must be float32, got (Double|torch.float64)"}[bad]
    with pytest.raises((RuntimeError, ValueError), match=message):
        getattr(r, op)(*args)
    assert torch.equal(x, before), f"{op} changed x before refusing {bad}"


@needs_ext
@pytest.mark.parametrize("name, change, message", [
    ("bits", lambda a: a.__setitem__(4, 17), "bits must be in 2..16"),
    ("scale 0", lambda a: a.__setitem__(2, torch.tensor([0.0])), "scale must be finite and > 0"),
    ("scale 2 entries", lambda a: a.__setitem__(2, torch.tensor([0.1, 0.1])), "scale must have 1 element"),
    ("zero point", lambda a: a.__setitem__(3, torch.tensor([16], dtype=torch.int32)), "zero_point = 16 is not a code"),
    ("zero point dtype", lambda a: a.__setitem__(3, torch.tensor([1.0])), "zero_point must be int32"),
    ("NaN", lambda a: a[0].__setitem__(1, float("nan")), r"relu\(x \+ other\) has 1 NaN"),
    ("shape", lambda a: a.__setitem__(1, torch.zeros(3)), "must have x's shape"),
])
def test_quantize_op_refuses_bad_input(name, change, message):
    args = [torch.randn(4), torch.randn(4), torch.tensor([0.1]), torch.tensor([2], dtype=torch.int32), 4]
    change(args)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.dwq.add_relu_quantize_.default(*args)


@needs_ext
def test_quantize_opcheck():
    x = torch.randn(2, 3, 4, 5)
    qp = (torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32))
    for xl in (x, x.contiguous(memory_format=torch.channels_last)):
        for bits in (4, 12):
            torch.library.opcheck(torch.ops.dwq.add_relu_quantize_.default, (xl.clone(), torch.randn_like(xl), *qp, bits))


# ----------------------------------------------------------------------------- add_affine_quantize_

def _affine_args(g, C, bits, relu):
    return (torch.randn(C, generator=g), torch.randn(C, generator=g), relu) + _qparams(g, bits)


@needs_ext
def test_affine_kernel_equals_the_reference(isa):
    # NCHW rows longer than a block (50 x 50) and shorter (5 x 5, 1 x 1), channels-last pixels, 2-D;
    # (601, 11, 4, 4) splits the rows between threads at a row whose channel is not 0.
    g = torch.Generator().manual_seed(6)
    for shape in [(2, 8, 5, 5), (1, 3, 50, 50), (3, 17, 1, 1), (601, 11, 4, 4), (4, 5), (0, 3, 2, 2)]:
        for bits in (2, 8, 9, 16):
            relu = bits != 9
            x, o = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
            _check_codes_op(torch.ops.dwq.add_affine_quantize_.default, r.add_affine_quantize_ref, x, o,
                            _affine_args(g, shape[1], bits, relu), f"{shape} bits {bits} {isa}")


def test_affine_wrapper_composes_where_the_kernel_does_not_apply(monkeypatch):
    g = torch.Generator().manual_seed(7)
    x, o = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    args = _affine_args(g, 4, 6, True)
    want_x, want_q = r.add_affine_quantize_ref(x, o, *args)
    for kernel in (True, False):
        monkeypatch.setitem(_lib._KERNELS, ("add_affine_quantize_", "cpu"), kernel and HAS_EXT)
        xi = x.clone()
        assert torch.equal(r.add_affine_quantize_(xi, o, *args), want_q) and torch.equal(xi, want_x), kernel
    big = torch.zeros(2, 4, 6, 12)  # x sliced: not one the kernel takes in place
    big[..., ::2] = x
    assert torch.equal(r.add_affine_quantize_(big[..., ::2], o, *args), want_q)
    assert torch.equal(big[..., ::2], want_x)


@needs_ext
@pytest.mark.parametrize("name, change, message", [
    ("bits", lambda a: a.__setitem__(7, 1), "bits must be in 2..16"),
    ("scale shape", lambda a: a.__setitem__(2, torch.ones(2)), r"scale must have shape \[3\]"),
    ("bias inf", lambda a: a[3].__setitem__(0, float("inf")), r"bias\[0\] must be finite"),
    ("out_scale", lambda a: a.__setitem__(5, torch.tensor([-1.0])), "out_scale must be finite and > 0"),
    ("NaN", lambda a: a[0].__setitem__((0, 1, 0, 0), float("nan")), r"\(x \+ other\) \* scale \+ bias has 1 NaN"),
    ("other's layout", lambda a: a.__setitem__(1, a[1].contiguous(memory_format=torch.channels_last)), "laid out like"),
    ("x not NCHW or channels-last", lambda a: a.__setitem__(0, a[0].permute(0, 1, 3, 2)) or
     a.__setitem__(1, a[1].permute(0, 1, 3, 2)), "must be contiguous or channels-last"),
])
def test_affine_op_refuses_bad_input(name, change, message):
    args = [torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), torch.rand(3) + 0.5, torch.randn(3), True,
            torch.tensor([0.1]), torch.tensor([2], dtype=torch.int32), 4]
    change(args)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.dwq.add_affine_quantize_.default(*args)


@needs_ext
def test_affine_opcheck():
    x = torch.randn(2, 3, 4, 5)
    args = (torch.randn(3), torch.randn(3), True, torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32))
    for xl in (x, x.contiguous(memory_format=torch.channels_last), torch.randn(4, 3)):
        for bits in (4, 12):
            torch.library.opcheck(torch.ops.dwq.add_affine_quantize_.default,
                                  (xl.clone(), torch.randn_like(xl), *args, bits))


@needs_ext
@needs_cuda_kernel("add_affine_quantize_")
@pytest.mark.parametrize("op", ["add_relu_quantize_", "add_affine_quantize_"])
def test_cuda_kernels_leave_x_alone_when_they_refuse(op, monkeypatch):
    """The device check of the arguments runs first; the fused kernel wrote x = x + other and only then
    did the op raise (the CPU op checks before it writes). With DWQ_CUDA_CHECKS=0 nothing is checked."""
    monkeypatch.delenv("DWQ_CUDA_CHECKS", raising=False)
    x, other = torch.randn(2, 3, 4, 4, device="cuda"), torch.randn(2, 3, 4, 4, device="cuda")
    qp = [torch.tensor([float("nan")], device="cuda"), torch.tensor([2], dtype=torch.int32, device="cuda"), 4]
    affine = (torch.rand(3, device="cuda") + 0.5, torch.randn(3, device="cuda"), True)
    before = x.clone()
    with pytest.raises(RuntimeError, match="scale"):
        if op == "add_relu_quantize_":
            torch.ops.dwq.add_relu_quantize_.default(x, other, *qp)
        else:
            torch.ops.dwq.add_affine_quantize_.default(x, other, *affine, *qp)
    assert torch.equal(x, before), f"{op} wrote x before refusing a NaN scale"


@needs_cuda_kernel("add_affine_quantize_")
def test_cuda_quantizing_kernels_equal_the_reference():
    """add_relu_quantize_ and add_affine_quantize_ in one launch each on CUDA: x and the codes of the
    reference, NCHW and channels-last, codes of 8 and 16 bits; NaN, devices and layouts refused."""
    g = torch.Generator().manual_seed(8)

    def cuda(args):
        return tuple(t.cuda() if torch.is_tensor(t) else t for t in args)

    for shape in [(1,), (4099,), (2, 3, 5, 7), (4, 64, 8, 8), (3, 2, 130, 130), (0, 4, 2, 2)]:
        for bits in (2, 8, 9, 16):
            x, o = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
            layouts = [(x, o)] + ([tuple(t.contiguous(memory_format=torch.channels_last) for t in (x, o))]
                                  if x.dim() == 4 else [])
            for xl, ol in layouts:
                for op, ref, args in ((torch.ops.dwq.add_relu_quantize_.default, r.add_relu_quantize_ref,
                                       _qparams(g, bits)),
                                      (torch.ops.dwq.add_affine_quantize_.default, r.add_affine_quantize_ref,
                                       _affine_args(g, shape[1] if len(shape) > 1 else 1, bits, bits != 9))):
                    if op is torch.ops.dwq.add_affine_quantize_.default and xl.dim() == 1:
                        continue
                    want_x, want_q = ref(xl, ol, *args)
                    got_x = xl.cuda()
                    got_q = op(got_x, ol.cuda(), *cuda(args))
                    at = f"{op} {shape} bits {bits} strides {xl.stride()}"
                    assert got_q.stride() == xl.stride() and torch.equal(got_q.cpu(), want_q), at
                    _assert_same(got_x.cpu(), want_x, at)
    x = torch.randn(2, 3, 4, 5, device="cuda").contiguous(memory_format=torch.channels_last)
    qp = cuda((torch.tensor([0.05]), torch.tensor([3], dtype=torch.int32)))
    aff = cuda((torch.rand(3) + 0.5, torch.randn(3), True)) + qp
    for bits in (4, 12):
        torch.library.opcheck(torch.ops.dwq.add_relu_quantize_.default, (x.clone(), torch.randn_like(x), *qp, bits))
        torch.library.opcheck(torch.ops.dwq.add_affine_quantize_.default, (x.clone(), torch.randn_like(x), *aff, bits))
    bad = x.clone()
    bad[0, 1, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"relu\(x \+ other\) has 1 NaN"):
        torch.ops.dwq.add_relu_quantize_.default(bad.clone(), torch.zeros_like(x), *qp, 8)
    with pytest.raises(RuntimeError, match=r"\(x \+ other\) \* scale \+ bias has 1 NaN"):
        torch.ops.dwq.add_affine_quantize_.default(bad.clone(), torch.zeros_like(x), *aff, 8)
    with pytest.raises(RuntimeError, match="out_scale must be finite and > 0"):
        torch.ops.dwq.add_affine_quantize_.default(x.clone(), torch.zeros_like(x), *aff[:3],
                                                   torch.tensor([0.0], device="cuda"), qp[1], 8)
    with pytest.raises(RuntimeError, match="other must be on cuda:0 like x, got cpu"):
        torch.ops.dwq.add_relu_quantize_.default(x.clone(), torch.zeros(x.shape), *qp, 8)
    with pytest.raises(RuntimeError, match="scale must be on cuda:0"):
        torch.ops.dwq.add_relu_quantize_.default(x.clone(), torch.zeros_like(x), qp[0].cpu(), qp[1], 8)
    with pytest.raises(RuntimeError, match="must be contiguous or channels-last"):
        t = x.permute(0, 1, 3, 2)
        torch.ops.dwq.add_affine_quantize_.default(t, torch.zeros_like(t), *aff, 8)


# ------------------------------------------------------------------- the integer model's fused step

def _fn_model(program, output):
    return IntegerModel({}, program, output, {})


def _step(out, fn, args, inplace=False):
    s = {"out": out, "fn": fn, "args": args, "kwargs": {}}
    if inplace:
        s["inplace"] = True
    return s


def test_an_add_read_only_by_the_next_relu_runs_as_one_step():
    program = [_step("a", "relu", ["input"]), _step("s", "add", ["a", "input"], inplace=True),
               _step("y", "relu", ["s"], inplace=True)]
    m = _fn_model(program, "y")
    assert len(m._plan[0]) == 2 and m._plan[0][1][0].func is _add_relu and m._plan[0][1][0].keywords == {"inplace": True}
    assert m.program == program  # what a saved model holds
    x = torch.randn(2, 3, 5, 5)
    x[0, 1, 2, 3] = float("nan")  # a broken value stays visible (aten::_add_relu_ would make it 0)
    _assert_same(m(x), torch.relu(torch.relu(x) + x).contiguous(memory_format=torch.channels_last), "fused")
    unfused = _fn_model(program, "y")
    unfused._compile(fuse=False)
    assert len(unfused._plan[0]) == 3


@pytest.mark.parametrize("why, program, output", [
    ("the sum is read again", [_step("a", "relu", ["input"]), _step("s", "add", ["a", "input"], inplace=True),
                               _step("y", "relu", ["s"]), _step("z", "add", ["y", "s"])], "z"),
    ("the sum is the output", [_step("a", "relu", ["input"]), _step("s", "add", ["a", "input"], inplace=True),
                               _step("y", "relu", ["s"])], "s"),
    ("the relu is not next", [_step("a", "relu", ["input"]), _step("s", "add", ["a", "input"]),
                              _step("b", "relu", ["input"]), _step("y", "relu", ["s"]), _step("z", "add", ["y", "b"])],
     "z"),
])
def test_other_adds_stay_two_steps(why, program, output):
    m = _fn_model(program, output)
    assert len(m._plan[0]) == len(program), why
    x = torch.randn(2, 3, 4, 4)
    unfused = _fn_model(program, output)
    unfused._compile(fuse=False)
    assert torch.equal(m(x), unfused(x)), why


def test_an_add_that_may_not_write_its_operand_leaves_it_alone():
    """Not in place (the operand is read later): the fused step makes a new tensor, and the operand
    the later step reads is unchanged."""
    program = [_step("a", "relu", ["input"]), _step("s", "add", ["a", "input"]), _step("y", "relu", ["s"]),
               _step("z", "add", ["y", "a"])]
    m = _fn_model(program, "z")
    assert len(m._plan[0]) == 3
    x = torch.randn(2, 3, 4, 4)
    a = torch.relu(x)
    _assert_same(m(x), (torch.relu(a + x) + a).contiguous(memory_format=torch.channels_last), "not in place")


class _Block(nn.Module):
    """A ResNet basic block (conv, ReLU, conv, residual add, ReLU) after a stem conv."""

    def __init__(self, precisions):
        super().__init__()
        self.stem = QConv2d(3, 8, 3, padding=1, precisions=precisions)
        self.c1 = QConv2d(8, 8, 3, padding=1, precisions=precisions)
        self.c2 = QConv2d(8, 8, 3, padding=1, precisions=precisions)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return torch.relu(self.c2(torch.relu(self.c1(x))) + x)


def test_a_converted_residual_block_gives_the_same_logits_fused():
    m = calibrated(_Block([4, 8]), (4, 3, 8, 8))
    im = convert(m)
    fns = [s.get("fn") for s in im.program]
    assert "add" in fns and len(im._plan[0]) == len(im.program) - 1
    unfused = convert(m)
    unfused._compile(fuse=False)
    x = torch.rand(3, 3, 8, 8)
    for p in (4, 8):
        with dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            assert torch.equal(im(x), unfused(x)), p


def test_gradients_through_a_float_precision_model_are_the_step_by_step_program_s():
    """At a float precision an integer model is differentiable (its float plans are torch ops); the
    fused step must not change its gradients (the kernel's in-place update had no backward)."""
    m = calibrated(_Block([4, None]), (4, 3, 8, 8))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    x = torch.rand(2, 3, 8, 8)
    grads = []
    for model in (im, unfused):
        xi = x.clone().requires_grad_()
        with dwq.precision(model, None):
            model(xi).square().sum().backward()
        grads.append(xi.grad)
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])


class _TwoBlocks(nn.Module):
    """A stem conv and two basic blocks, then a conv: each block's output is read by a quantized conv
    first (block 2's c1, the head) and, for block 1, by block 2's residual add too, as in a ResNet."""

    def __init__(self, precisions):
        super().__init__()
        self.stem = QConv2d(3, 8, 3, padding=1, precisions=precisions)
        self.convs = nn.ModuleList(QConv2d(8, 8, 3, padding=1, precisions=precisions) for _ in range(4))
        self.head = QConv2d(8, 4, 1, precisions=precisions)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for i in (0, 2):
            x = torch.relu(self.convs[i + 1](torch.relu(self.convs[i](x))) + x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.head(x), 1), 1)


def test_a_quantized_reader_gets_its_codes_from_the_fused_step():
    m = calibrated(_TwoBlocks([4, 8, None]), (4, 3, 8, 8))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    kinds = [type(fn) for fn, *_ in im._plan[0]]
    # each block's second conv, add and relu: one step (tests/test_qconv_residual.py)
    assert kinds.count(_ConvResidualInto) == 2 and len(im._plan[0]) == len(im.program) - 4
    x = torch.rand(3, 3, 8, 8)
    for p in (4, 8, None):  # (None: the readers run float plans and take the float result)
        with dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            assert torch.equal(im(x), unfused(x)), p
    assert im.program == unfused.program


def test_a_fused_steps_codes_reach_only_their_reader():
    """Block 1's codes go to block 2's first conv; block 2's residual add reads block 1's float result
    (were the codes slot handed to it, the add would fail on uint8 + float or give other logits)."""
    m = calibrated(_TwoBlocks([4]), (4, 3, 8, 8))
    im = convert(m)
    steps = im._plan[0]
    fused = [k for k, (fn, *_) in enumerate(steps) if isinstance(fn, (_ResidualInto, _ConvResidualInto))]
    first_out = steps[fused[0]][2]
    readers = [k for k, (_, ins, _, _) in enumerate(steps) if first_out[1] in ins]
    float_readers = [k for k, (_, ins, _, _) in enumerate(steps) if first_out[0] in ins]
    assert len(readers) == 1 and steps[readers[0]][0] is im.layers["convs_2"]
    assert len(float_readers) == 1 and isinstance(steps[float_readers[0]][0], (_ResidualInto, _ConvResidualInto))
    assert first_out[1] in steps[readers[0]][3]  # the codes are freed after their reader


def test_a_pre_activation_resnet_hands_each_block_its_batch_norms_codes():
    """PreActResNet-18: each residual add's result goes first to the next block's float batch norm
    (codes out, at quantized precisions) and to the next add or shortcut as float."""
    from dwq.models import preact_resnet18

    m = calibrated(preact_resnet18(num_classes=10, precisions=[4, 8, None]), (2, 3, 32, 32))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    fused = [fn for fn, *_ in im._plan[0] if isinstance(fn, _ResidualInto)]
    assert len(fused) == sum(s.get("fn") == "add" for s in im.program) == 8 and not any(f.relu for f in fused)
    x = torch.rand(2, 3, 32, 32)
    for p in (4, 8, None):
        with dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            assert torch.equal(im(x), unfused(x)), p

"""dwq.ops.add_relu_ (a ResNet block's residual add and ReLU in one pass) and the integer model's use
of it. The kernel equals torch.relu(x + other) on every CPU ISA: tails, thread splits, NaN, inf, -0,
an aliased other; the wrapper composes torch ops for what the kernel does not take; the op refuses
bad input by name; opcheck. IntegerModel runs an add that only the next relu reads as one step,
with the same logits as the program step by step, and leaves the program (a saved model) unchanged."""

import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import IntegerModel, convert
from dwq.deploy.integer_model import _add_relu
from dwq.nn import QConv2d
from dwq.ops import _lib
from dwq.ops import residual as r
from dwq.ops._lib import HAS_EXT

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
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
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
    assert len(m._steps) == 2 and m._steps[1][0].func is _add_relu and m._steps[1][0].keywords == {"inplace": True}
    assert m.program == program  # what a saved model holds
    x = torch.randn(2, 3, 5, 5)
    x[0, 1, 2, 3] = float("nan")  # a broken value stays visible (aten::_add_relu_ would make it 0)
    _assert_same(m(x), torch.relu(torch.relu(x) + x).contiguous(memory_format=torch.channels_last), "fused")
    unfused = _fn_model(program, "y")
    unfused._compile(fuse=False)
    assert len(unfused._steps) == 3


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
    assert len(m._steps) == len(program), why
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
    assert len(m._steps) == 3
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
    assert "add" in fns and len(im._steps) == len(im.program) - 1
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

"""``add_relu_``: a ResNet block's residual add and its ReLU in one pass over memory (an integer
model's ``add`` step followed by ``relu``), where ``x.add_(other).relu_()`` reads and writes x twice.
The values are torch's: ``torch.relu(x + other)``, NaN kept (``aten::_add_relu_`` would make it 0 and
hide a broken layer).
"""
import torch

from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops._lib import fake_same_device as _fake_same_device

__all__ = ["add_relu_", "add_relu_ref"]


def _kernel_takes(x: torch.Tensor, other: torch.Tensor) -> bool:
    # The kernel walks both as flat arrays: one dtype, shape and strides, x dense; it has no gradient.
    return (not (torch.is_grad_enabled() and (x.requires_grad or other.requires_grad))
            and x.dtype == torch.float32 and other.dtype == torch.float32 and x.device == other.device
            and x.shape == other.shape and x.stride() == other.stride()
            and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)))


def add_relu_(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x = relu(x + other)`` in place; returns x.

    One pass on the CPU or CUDA kernel (x and other float32 of one shape and memory format, NCHW
    or channels-last, on one device), which has no gradient. Anything else (autograd recording, a
    broadcast ``other``, other dtypes or layouts, other devices, a build without the extension) is
    ``torch.relu_(x.add_(other))``: the same values, two passes, differentiable.
    """
    if _kernel_takes(x, other) and has_kernel("add_relu_", x.device.type):
        torch.ops.dwq.add_relu_.default(x, other)
        return x
    return torch.relu_(x.add_(other))


def add_relu_ref(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The pure-PyTorch reference (a new tensor): ``torch.relu(x + other)``."""
    return torch.relu(x + other)


if HAS_EXT:

    @torch.library.register_fake("dwq::add_relu_")
    def _(x, other):
        _fake_same_device("add_relu_", x, "x", other=other)
        torch._check(x.dtype == torch.float32 and other.dtype == torch.float32,
                     lambda: f"dwq.add_relu_: x and other must be float32, got {x.dtype} and {other.dtype}")
        torch._check(x.shape == other.shape,
                     lambda: f"dwq.add_relu_: other must have x's shape {tuple(x.shape)}, got {tuple(other.shape)}")
        torch._check(x.stride() == other.stride(),
                     lambda: f"dwq.add_relu_: other must be laid out like x (strides {x.stride()} and {other.stride()})")

"""Typed wrappers over ``torch.ops.dwq.*`` and their pure-PyTorch references."""
from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops.fake_quant import fake_quantize
from dwq.ops.reference import fake_quantize_ref

__all__ = ["HAS_EXT", "has_kernel", "fake_quantize", "fake_quantize_ref"]

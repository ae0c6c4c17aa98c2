"""Typed wrappers over ``torch.ops.dwq.*`` and their pure-PyTorch references."""
from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops.fake_quant import fake_quantize
from dwq.ops import quantizer_fused  # noqa: F401  (registers the fused ops' fake impls)
from dwq.ops.qgemm import (
    affine_quantize_act,
    pack_conv_weight,
    pack_weight,
    packed_weight_shape,
    qconv2d,
    qconv2d_acc,
    qgemm_acc,
    qlinear,
    quantize_act,
    supported_cpu_isas,
)
from dwq.ops.qgemm_reference import (
    affine_quantize_act_ref,
    codes_dtype,
    epilogue_ref,
    qconv2d_acc_ref,
    qconv2d_ref,
    qgemm_acc_ref,
    qlinear_ref,
    quantize_act_ref,
)
from dwq.ops.reference import fake_quantize_ref
from dwq.ops.residual import (add_affine_quantize_, add_affine_quantize_ref, add_relu_, add_relu_quantize_,
                              add_relu_quantize_ref, add_relu_ref, qconv2d_residual)

__all__ = [
    "HAS_EXT",
    "add_affine_quantize_",
    "add_affine_quantize_ref",
    "add_relu_",
    "add_relu_quantize_",
    "add_relu_quantize_ref",
    "add_relu_ref",
    "affine_quantize_act",
    "affine_quantize_act_ref",
    "codes_dtype",
    "epilogue_ref",
    "fake_quantize",
    "fake_quantize_ref",
    "has_kernel",
    "pack_conv_weight",
    "pack_weight",
    "packed_weight_shape",
    "qconv2d",
    "qconv2d_residual",
    "qconv2d_acc",
    "qconv2d_acc_ref",
    "qconv2d_ref",
    "qgemm_acc",
    "qgemm_acc_ref",
    "qlinear",
    "qlinear_ref",
    "quantize_act",
    "quantize_act_ref",
    "supported_cpu_isas",
]

"""Quantizer math: precisions, scale/zero-point choice, STE fake quantization, quantizer modules."""
from dwq.quant.fake_quant import fake_quantize, fake_quantize_float_zp
from dwq.quant.precision import (
    check_bits,
    normalize_precision,
    normalize_set,
    parse_precision,
    precision_name,
    user_precision,
)
from dwq.quant.qparams import choose_qparams
from dwq.quant.quantizers import ActQuantizer, WeightQuantizer, reuse_quantized_weights

__all__ = [
    "ActQuantizer",
    "WeightQuantizer",
    "check_bits",
    "choose_qparams",
    "fake_quantize",
    "fake_quantize_float_zp",
    "normalize_precision",
    "normalize_set",
    "parse_precision",
    "precision_name",
    "reuse_quantized_weights",
    "user_precision",
]

"""Deploy: a trained fake-quant model -> a true-integer random-precision model (``convert``), saved
and loaded as safetensors + JSON (``save``/``load``), checked against its fake-quant twin
(``compare``, ``code_agreement``, ``check_conversion``), attacked through it (``StraightThrough``),
timed per precision (``latency_per_precision``) and precision sets chosen by latency
(``choose_precisions``).

>>> import torch, dwq, dwq.deploy
>>> int_model = dwq.deploy.convert(model, precisions=[4, 6, 8])   # model: trained, e.g. by `dwq train`
>>> with dwq.precision(int_model, 4):
...     logits = int_model(images)                                 # integer kernels, codes between layers
>>> rpi = dwq.RandomPrecision(int_model, generator=torch.Generator().manual_seed(0))  # a precision per forward
>>> dwq.deploy.save(int_model, "model.safetensors"); int_model = dwq.deploy.load("model.safetensors")
"""
from dwq.deploy.agreement import code_agreement, compare, format_comparison
from dwq.deploy.artifact import ArtifactError, format_size_report, load, read_metadata, save, size_report
from dwq.deploy.check import check_conversion, format_check
from dwq.deploy.choose import RECORD_FP_BITS, PrecisionChoice, choose_precisions, latency_from_records, record_bits
from dwq.deploy.convert import ConversionError, calibrated_precisions, convert
from dwq.deploy.integer_model import IntegerModel
from dwq.deploy.straight_through import StraightThrough
from dwq.deploy.timing import latency_per_precision, time_round_robin

__all__ = ["ArtifactError", "ConversionError", "IntegerModel", "PrecisionChoice", "StraightThrough",
           "calibrated_precisions",
           "check_conversion", "choose_precisions", "code_agreement", "compare", "convert", "format_check",
           "format_comparison", "format_size_report", "latency_from_records", "latency_per_precision", "load",
           "read_metadata", "record_bits", "RECORD_FP_BITS", "save", "size_report", "time_round_robin"]

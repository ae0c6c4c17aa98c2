"""Deploy: a trained fake-quant model -> a true-integer random-precision model (``convert``), saved
and loaded as safetensors + JSON (``save``/``load``), checked against its fake-quant twin, attacked
through it (``StraightThrough``), timed per precision, and precision sets chosen by latency
(``choose_precisions``).

>>> import dwq, dwq.deploy
>>> int_model = dwq.deploy.convert(model, precisions=[4, 6, 8])   # model: trained, e.g. by `dwq train`
>>> with dwq.precision(int_model, 4):
...     logits = int_model(images)                                 # integer kernels, codes between layers
>>> dwq.deploy.save(int_model, "model.safetensors"); int_model = dwq.deploy.load("model.safetensors")
"""
from dwq.deploy.convert import ConversionError, convert
from dwq.deploy.integer_model import IntegerModel

__all__ = ["ConversionError", "IntegerModel", "convert"]

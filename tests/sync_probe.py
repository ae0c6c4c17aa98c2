"""A CPU stand-in for ``torch.cuda.set_sync_debug_mode("error")``.

The CUDA mode runs only where a GPU is; this dispatch mode runs everywhere. It records every aten
call that makes the host wait for the device when its tensors live on an accelerator: a value read
(``.item()``, ``bool()``, ``float()``), an output whose size depends on values (``nonzero``, boolean
indexing, ``unique``, ``masked_select``, ``repeat_interleave`` without ``output_size``), and a tensor
built from Python data (``torch.tensor``: a synchronous copy from pageable memory to the device).

The CPU run cannot see the device branch the code takes on a GPU, so the code that reads values on
the CPU *by design* is exempt by name: value checks that take an asynchronous device assert instead
(``check_value``, ``_check_range``), the fused path's CPU-only scale check (``_check_fused_scale``,
which no CUDA scale reaches), and the precision draw, which reads a CPU generator's tensor
on every device. Everything else a step calls is the code a GPU runs too.
"""
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal", "allclose",
            "_unique2", "unique_dim", "unique_consecutive", "bincount", "lift_fresh"}
TENSOR_REPEATS = {"aten.repeat_interleave.Tensor", "aten.repeat_interleave.self_Tensor"}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _exempt_codes():
    from dwq.ops.fake_quant import check_value
    from dwq.quant.qparams import _check_range
    from dwq.quant.quantizers import _check_fused_scale
    from dwq.train.loop import Trainer

    return {check_value.__code__, _check_range.__code__, _check_fused_scale.__code__, Trainer._draw.__code__}


def _bool_index(args) -> bool:
    idx = args[1] if len(args) > 1 else ()
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in (idx or ()))


class SyncProbe(TorchDispatchMode):
    """``with SyncProbe() as p: ...`` then ``p.hits``: [(op, innermost dwq frame)] of sync-prone calls."""

    def __init__(self):
        super().__init__()
        self.hits = []
        self._exempt = _exempt_codes()

    def _site(self):
        f, where = sys._getframe(2), None
        while f is not None:
            if f.f_code in self._exempt:
                return None
            if where is None and "/dwq/" in f.f_code.co_filename.replace("\\", "/"):
                where = f"{f.f_code.co_filename}:{f.f_lineno} ({f.f_code.co_name})"
            f = f.f_back
        return where or "outside dwq"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        prone = (name in SYNC_OPS or (name in INDEX_OPS and _bool_index(args))
                 or (str(func) in TENSOR_REPEATS and kwargs.get("output_size") is None))
        if prone:
            site = self._site()
            if site is not None:
                self.hits.append((str(func), site))
        return func(*args, **kwargs)

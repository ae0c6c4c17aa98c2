"""dwq.ops.affine_quantize_act refuses, alike with its kernel and in the composition used where there is
no kernel, a per-channel scale or bias that holds C entries in another shape ([C, 1], [1, C]) and a
per-tensor out_scale or out_zero_point of more than one entry: each by the name of the argument."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import _lib  # noqa: E402
from dwq.ops import qgemm as q  # noqa: E402
from test_affine_quantize import _with  # noqa: E402

BAD_SHAPES = [
    ("scale [C, 1]", _with(1, torch.ones(3, 1)), r"scale must (have shape|be float32) \[3\]"),
    ("bias [1, C]", _with(2, torch.zeros(1, 3)), r"bias must (have shape|be float32) \[3\]"),
    ("out_scale 2 entries", _with(4, torch.tensor([0.1, 0.1])), r"out_scale (and out_zero_point )?must have 1 element"),
    ("out_zero_point 2 entries", _with(5, torch.tensor([3, 3], dtype=torch.int32)),
     r"out_(scale and out_)?zero_point must have 1 element"),
]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "composition"])
@pytest.mark.parametrize("name, args, message", BAD_SHAPES, ids=[b[0] for b in BAD_SHAPES])
def test_misshapen_qparams_are_refused_by_name(monkeypatch, kernel, name, args, message):
    """A scale / bias with C entries but not of shape [C], or an out_scale / out_zero_point with 2 entries,
    is an error naming that argument, with the kernel and without it (not a reshape or a broadcast)."""
    if not kernel:
        monkeypatch.setitem(_lib._KERNELS, ("affine_quantize_act", "cpu"), False)
    with pytest.raises((RuntimeError, ValueError), match=message):
        q.affine_quantize_act(*args)

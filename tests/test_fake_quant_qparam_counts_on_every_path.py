"""dwq.ops.fake_quantize refuses a scale or a zero point whose entry count is not the channels' (x.shape[axis]
per channel, 1 per tensor) before any kernel or reference runs, with the same ValueError with and without the
kernel: a single zero point (or scale) must not be broadcast over the channels by the reference path."""
import pytest
import torch

from dwq.ops import _lib, fake_quantize


def _per_channel():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(4, 3, 5, generator=g)
    return x, torch.full((3,), 0.1), torch.full((3,), 2, dtype=torch.int32)


CASES = [  # (name, scale entries, zero point entries, axis, message)
    ("one zero point", 3, 1, 1, r"scale and zero_point need 3 entries \(x.shape\[1\]\), got 3 and 1"),
    ("two zero points", 3, 2, 1, r"scale and zero_point need 3 entries \(x.shape\[1\]\), got 3 and 2"),
    ("one scale", 1, 3, 1, r"scale and zero_point need 3 entries \(x.shape\[1\]\), got 1 and 3"),
    ("per tensor, 3 zero points", 1, 3, None, r"scale and zero_point need 1 entries \(per tensor\), got 1 and 3"),
]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "reference"])
@pytest.mark.parametrize("name, ns, nz, axis, message", CASES, ids=[c[0] for c in CASES])
def test_a_wrong_count_of_qparams_is_a_value_error(monkeypatch, kernel, name, ns, nz, axis, message):
    """Each wrong count raises the wrapper's ValueError naming both counts, whether or not a kernel serves x."""
    if not kernel:
        monkeypatch.setitem(_lib._KERNELS, ("fake_quantize", "cpu"), False)
    x, s, z = _per_channel()
    with pytest.raises(ValueError, match=message):
        fake_quantize(x, s[:ns], z[:nz], 4, axis)

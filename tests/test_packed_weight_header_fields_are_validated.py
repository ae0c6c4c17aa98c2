"""Header fields of a packed weight that cpu::parse_packed_weight validates before any read.

A packed weight stores its codes less their zero point (header version 2, zp_shifted = 1) only at
bits where that fits an int8 (up to 7 bits, cpu::zp_shift_fits); the 128-offset layout otherwise. A
blob whose header claims the shifted layout at bits where it cannot fit (a damaged or hand-edited
header: bits 7 -> 8 keeps the limb count) is refused as a bad header, never read."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops.qgemm_reference import qgemm_acc_ref  # noqa: E402

I32 = torch.int32
VERSION_OFF, BITS_OFF, KH_OFF, KW_OFF, ZP_SHIFTED_OFF = 4, 8, 72, 76, 80  # the header's int32 fields (csrc/cpu/qgemm_common.cpp)


def _field(blob, off):
    return int(blob.view(-1)[off:off + 4].clone().view(I32))


def _set(blob, off, value):
    blob.view(-1)[off:off + 4] = torch.tensor([value], dtype=I32).view(torch.int8)


@pytest.mark.parametrize("bits", [6, 7])
def test_a_shifted_blob_relabelled_to_8_bits_is_refused(bits, monkeypatch):
    monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
    g = torch.Generator().manual_seed(4)
    w = torch.randint(0, 1 << bits, (5, 12), dtype=torch.uint8, generator=g)
    zw = torch.randint(0, 1 << bits, (5,), dtype=I32, generator=g)
    x = torch.randint(0, 256, (3, 12), dtype=torch.uint8, generator=g)
    zx = torch.tensor([7], dtype=I32)
    blob = q.pack_weight(w, zw, bits)
    assert _field(blob, VERSION_OFF) == 2 and _field(blob, ZP_SHIFTED_OFF) == 1 and _field(blob, BITS_OFF) == bits
    assert torch.equal(q.qgemm_acc(x, zx, 8, blob), qgemm_acc_ref(x, zx, w, zw))  # the intact blob reads
    _set(blob, BITS_OFF, 8)
    with pytest.raises(RuntimeError, match=r"dwq.qgemm_acc: w_packed is not a dwq packed weight \(bad header\)"):
        q.qgemm_acc(x, zx, 8, blob)


@pytest.mark.parametrize("kh, kw", [(3, 2), (2, 3), (2, 2)])
def test_a_conv_kernel_that_does_not_divide_k_is_a_bad_header(kh, kw):
    """A conv blob records its kernel (kh, kw) and holds K = kh * kw * C: a header whose kernel does not
    divide K (K = 27 of a 3 x 3 x 3 weight relabelled) is refused as a bad header by every op."""
    g = torch.Generator().manual_seed(8)
    w = torch.randint(0, 16, (4, 3, 3, 3), dtype=torch.uint8, generator=g)
    blob = q.pack_conv_weight(w, torch.zeros(4, dtype=I32), 4)
    assert (_field(blob, KH_OFF), _field(blob, KW_OFF)) == (3, 3)
    _set(blob, KH_OFF, kh)
    _set(blob, KW_OFF, kw)
    x = torch.randint(0, 16, (1, 3, 5, 5), dtype=torch.uint8, generator=g)
    zx = torch.tensor([2], dtype=I32)
    for name, call in [("qconv2d_acc", lambda: q.qconv2d_acc(x, zx, 4, blob, (kh, kw))),
                       ("qgemm_acc", lambda: q.qgemm_acc(x[0, :, 0, :].t().reshape(5, 3).repeat(1, 9), zx, 4, blob))]:
        with pytest.raises(RuntimeError, match=rf"dwq.{name}: w_packed is not a dwq packed weight \(bad header\)"):
            call()


@pytest.mark.parametrize("bits", [4, 8, 12])
def test_a_blob_shorter_than_its_layout_is_a_bad_header(bits):
    """The column sums and zero points end the blob: one cut short (its last column dropped, every row
    still there, so its N agrees with its header) would be read past its end; it is refused instead."""
    g = torch.Generator().manual_seed(10)
    w = torch.randint(0, 1 << bits, (6, 20), dtype=torch.int32 if bits > 8 else torch.uint8, generator=g)
    zw = torch.randint(0, 1 << bits, (6,), dtype=I32, generator=g)
    blob = q.pack_weight(w, zw, bits)
    x = torch.randint(0, 256, (3, 20), dtype=torch.uint8, generator=g)
    zx = torch.tensor([5], dtype=I32)
    assert torch.equal(q.qgemm_acc(x, zx, 8, blob), qgemm_acc_ref(x, zx, w, zw))
    for short in (blob[:, :-1], blob[:, :-1].contiguous()):
        with pytest.raises(RuntimeError, match=r"dwq.qgemm_acc: w_packed is not a dwq packed weight \(bad header\)"):
            q.qgemm_acc(x, zx, 8, short)

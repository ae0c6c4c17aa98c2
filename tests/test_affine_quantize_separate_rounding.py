"""affine_quantize_act rounds the multiply and the add separately (torch's ``x * scale + bias``), not as
one fused multiply-add: a case built so that the two differ at a rounding tie pins the reference, the
CPU kernel on every ISA path and the composition used without a kernel to the separate rounding."""
import pytest
import torch

from dwq.ops import qgemm_reference as ref
from dwq.ops._lib import HAS_EXT

I32 = torch.int32


def _tie_case():
    # x * s = 1 + 2^-11 + 2^-24 exactly: a tie in float32, rounded to even 1 + 2^-11; + bias = 0.5 exactly.
    # Fused, 1 + 2^-11 + 2^-24 - (0.5 + 2^-11) = 0.5 + 2^-24 is a float32: code z + 1 instead of z + 0.
    e = 2.0 ** -12
    x = torch.full((1, 1, 2, 2), 1 + e)
    scale, bias = torch.tensor([1 + e]), torch.tensor([-(0.5 + 2 * e)])
    return x, scale, bias


def test_the_case_tells_the_two_roundings_apart():
    x, scale, bias = _tie_case()
    assert (x * scale + bias).unique().tolist() == [0.5]
    assert (x.double() * scale.double() + bias.double()).float().unique().tolist() == [0.5 + 2.0 ** -24]


@pytest.mark.parametrize("relu", [False, True])
def test_reference_rounds_the_multiply_and_the_add_separately(relu):
    x, scale, bias = _tie_case()
    assert ref.channel_affine(x, scale, bias, relu).unique().tolist() == [0.5]
    codes = ref.affine_quantize_act_ref(x, scale, bias, relu, torch.ones(1), torch.tensor([3], dtype=I32), 8)
    assert codes.unique().tolist() == [3]  # round(0.5) = 0 (half to even), + 3


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
def test_kernel_and_composition_round_the_multiply_and_the_add_separately(isa, monkeypatch):
    from dwq.ops import _lib
    from dwq.ops import qgemm as q

    x, scale, bias = _tie_case()
    args = (scale, bias, False, torch.ones(1), torch.tensor([3], dtype=I32), 8)
    for xl in (x, x.contiguous(memory_format=torch.channels_last)):
        assert q.affine_quantize_act(xl, *args).unique().tolist() == [3]
    monkeypatch.setitem(_lib._KERNELS, ("affine_quantize_act", "cpu"), False)
    assert q.affine_quantize_act(x, *args).unique().tolist() == [3]

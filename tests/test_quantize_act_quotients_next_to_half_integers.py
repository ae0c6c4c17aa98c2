"""dwq::quantize_act where x / scale lies within a few ulps of a half-integer, for scales that are not
powers of two. The AVX-512 kernels quantize with x * RN(1 / scale) where that provably rounds like the
division and divide where a lane is too near a half-integer (the margin 2^-20 * max(z, qmax - z)); the
product and the quotient round to different codes for some of these values. Every code
must be the reference's (torch's division, round half to even) bit for bit: a dropped margin, a vector
taken by the multiply when only some of its lanes pass the check, or a fallback that multiplies too,
each give a code one off. The values are spread over many 16-lane vectors, most lanes far from a tie."""
import math

import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops.qgemm_reference import quantize_act_ref  # noqa: E402


def _near_ties(g, scale, kmax, spread=4):
    """float32 values next to (k + 1/2) * scale (k in -kmax..kmax-1, up to `spread` ulps either side),
    interleaved with plain random values, so that each vector mixes near-ties and easy lanes."""
    k = torch.arange(-kmax, kmax, dtype=torch.float64)
    base = ((k + 0.5) * float(scale)).float()
    near = torch.cat([(base.view(torch.int32) + d).view(torch.float32) for d in range(-spread, spread + 1)])
    plain = (torch.rand(near.numel(), generator=g) * 2 - 1) * (kmax * float(scale))
    return torch.stack([near, plain], 1).reshape(-1)


@pytest.mark.parametrize("bits", [8, 10])
def test_codes_of_quotients_next_to_half_integers_are_the_divisions(isa, bits):
    """Every code equals quantize_act_ref's (x / s rounded half to even) next to the rounding ties, and
    some of these values do round differently when multiplied by RN(1 / s) (so the test has teeth)."""
    g = torch.Generator().manual_seed(31)
    z = 1 << (bits - 1)
    apart = 0
    for _ in range(6):
        s = (torch.rand(1, generator=g) * 0.1 + 1e-3).float()
        assert math.frexp(float(s))[0] != 0.5, "a power-of-two scale is multiplied exactly: not this case"
        x = _near_ties(g, s, z - 2)
        inv = (1 / s.double()).float()
        apart += int((torch.round(x * inv) != torch.round(x / s)).sum())
        zp = torch.tensor([z], dtype=torch.int32)
        got, want = q.quantize_act(x, s, zp, bits), quantize_act_ref(x, s, zp, bits)
        bad = torch.nonzero(got != want).flatten()
        assert bad.numel() == 0, (f"{isa}, {bits} bits, scale {s.item()!r}: {bad.numel()} codes differ, first at "
                                  f"x = {x[bad[0]].item()!r}: {got[bad[0]].item()} instead of {want[bad[0]].item()}")
    assert apart > 0, "no value rounds apart when multiplied by RN(1 / s): the case tests nothing"

"""dwq.deploy.layers.FloatAffine (a batch norm kept in float) built from its config: each precision's row
emits exactly affine_quantize_act_ref's codes at the edge widths 2 and 16 with output zero points 0 and
2^b - 1, the full-precision row channel_affine's floats; every row's output scale and zero point is checked
when the layer is built (not only the first row's), and ``relu`` has no default."""
import pytest
import torch

import dwq
from dwq.deploy.layers import layer_from_config
from dwq.ops import HAS_EXT
from dwq.ops.qgemm_reference import affine_quantize_act_ref, channel_affine

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
PRECISIONS = ["2", "16", "2w16a", "fp"]
OUT_BITS = [2, 16, 16, None]


def _affine(relu, zero_points, seed=0):
    """(config, tensors) of a 3-channel FloatAffine over PRECISIONS with distinct rows."""
    g = torch.Generator().manual_seed(seed)
    n = len(PRECISIONS)
    cfg = {"kind": "affine", "source": "bn", "precisions": PRECISIONS, "channels": 3, "relu": relu,
           "out_bits": OUT_BITS}
    tensors = {"scale": torch.rand(n, 3, generator=g) + 0.5, "bias": torch.randn(n, 3, generator=g),
               "out_scale": torch.tensor([0.5, 1e-4, 2e-4, 1.0]),
               "out_zero_point": torch.tensor(zero_points + [0], dtype=torch.int32)}
    return cfg, tensors


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("zero_points", [[0, 0, 65535], [3, 65535, 0]], ids=["zp_low", "zp_high"])
def test_each_row_emits_the_reference_codes(relu, zero_points):
    """Row i at precision i: codes of affine_quantize_act_ref(x, scale[i], bias[i], relu, out_scale[i:i+1],
    out_zero_point[i:i+1], out_bits[i]) bit for bit; the fp row: channel_affine in float."""
    cfg, t = _affine(relu, zero_points)
    layer = layer_from_config(cfg, dict(t)).eval()
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1)) * 3
    for i, (p, b) in enumerate(zip(PRECISIONS, OUT_BITS)):
        with torch.no_grad(), dwq.precision(layer, p):
            y = layer(x)
        if b is None:
            torch.testing.assert_close(y, channel_affine(x, t["scale"][i], t["bias"][i], relu))
            continue
        want = affine_quantize_act_ref(x, t["scale"][i], t["bias"][i], relu, t["out_scale"][i:i + 1],
                                       t["out_zero_point"][i:i + 1], b)
        assert y.dtype == want.dtype, f"precision {p}: codes of {y.dtype}, expected {want.dtype}"
        bad = (y.long() != want.long()).sum().item()
        assert bad == 0, f"precision {p}: {bad} of {y.numel()} codes differ from the reference"


@pytest.mark.parametrize("row,key,value,msg", [
    (1, "out_zero_point", 65536, "bn at precision 16 (out_scale, out_zero_point): zero_point[0] = 65536 is not a code "
                                 "of 16 bits (0..65535)"),
    (2, "out_scale", 0.0,
     "bn at precision 2w16a (out_scale, out_zero_point): scale[0] must be finite and > 0, got 0.0"),
    (0, "out_zero_point", 4,
     "bn at precision 2 (out_scale, out_zero_point): zero_point[0] = 4 is not a code of 2 bits"),
], ids=["row_16_zero_point", "row_2w16a_scale", "row_2_zero_point"])
def test_every_rows_output_quantization_is_checked_when_built(row, key, value, msg):
    """A bad output scale or zero point in any row that emits codes is a ValueError naming the layer and the
    precision of that row, at construction, not at the first forward at that precision."""
    cfg, t = _affine(False, [0, 0, 0])
    t[key][row] = value
    with pytest.raises(ValueError) as e:
        layer_from_config(cfg, t)
    assert msg in str(e.value), str(e.value)


def test_relu_is_required():
    """``relu`` has no default: a config without it is refused, naming the layer and the field."""
    cfg, t = _affine(False, [0, 0, 0])
    del cfg["relu"]
    with pytest.raises(ValueError, match="bn: relu must be True or False, got None"):
        layer_from_config(cfg, t)

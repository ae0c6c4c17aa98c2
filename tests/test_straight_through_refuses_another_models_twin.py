"""StraightThrough(int_model, twin) checks that the twin is the model the integer model was converted
from: another run's model of the same architecture was accepted, and attacks took their gradients from
other weights (the agreement of its logits with the integer model's: 0.5 at 4 bits, 0.0 at 8), which
overstates robustness. Each quantized layer's weight codes and scales (first quantized precision) and
its input quantization (every precision) must match; a twin trained on afterwards keeps working."""
import copy

import pytest
import torch
from deploy_models import calibrated

from dwq.deploy import StraightThrough, convert
from dwq.models import QuantPolicy, small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [4, 8, None]
SHAPE = (8, 1, 28, 28)


def _model(seed=0, width=4):
    torch.manual_seed(seed)
    return calibrated(small_cnn(precisions=SET, width=width, policy=QuantPolicy(classifier=True)), SHAPE)


@pytest.fixture(scope="module")
def source():
    m = _model()
    return m, convert(m)


def test_the_source_and_a_copy_of_it_are_accepted(source):
    m, im = source
    StraightThrough(im, m)
    StraightThrough(im, copy.deepcopy(m))
    StraightThrough(convert(m, [8]), m)  # an integer model of a subset


def test_another_runs_model_is_refused_naming_the_layer_and_the_count(source):
    _, im = source
    with pytest.raises(ValueError, match=r"StraightThrough: fake_quant_model is not the model int_model was converted "
                                         r"from: layer '\w+' has other weights at precision 4 \(\d+ of \d+ codes "
                                         r"differ\); pass that model, or convert this one"):
        StraightThrough(im, _model(seed=1))


def test_weights_scaled_per_channel_keep_their_codes_but_are_refused_by_their_scales(source):
    m, im = source
    scaled = copy.deepcopy(m)
    with torch.no_grad():
        for p in scaled.parameters():
            if p.dim() > 1:
                p.mul_(1.5)
    with pytest.raises(ValueError, match=r"has other weights at precision 4 \(other scales\)"):
        StraightThrough(im, scaled)


def test_other_activation_ranges_are_refused(source):
    m, im = source
    recalibrated = calibrated(copy.deepcopy(m), SHAPE, seed=5)
    with pytest.raises(ValueError, match=r"layer '\w+' quantizes its input with another range at precision 4"):
        StraightThrough(im, recalibrated)


def test_another_architecture_is_refused(source):
    _, im = source
    with pytest.raises(ValueError, match=r"its layer '\w+' is not a dwq.nn layer of weight shape "
                                         r"\[\d+, \d+, 3, 3\], as the integer model.s"):
        StraightThrough(im, _model(width=8))

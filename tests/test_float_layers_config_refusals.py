"""dwq.deploy.layers' float layers (FloatConv2d, FloatNormalize) refuse, when built from a config (as ``load``
builds them), what torch would accept and fail on only at a forward, or refuse in its own words: groups that
do not divide out_channels, a dilation of 0, an infinite mean; each message names the layer and the field."""
import pytest
import torch

from dwq.deploy.layers import layer_from_config


def _conv(**kv):
    cfg = {"kind": "conv2d", "source": "stem", "in_channels": 4, "out_channels": 6, "kernel_size": [3, 3],
           "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 2, "bias": False}
    cfg.update(kv)
    return cfg, {"weight": torch.zeros(cfg["out_channels"], cfg["in_channels"] // cfg["groups"],
                                       *cfg["kernel_size"])}


@pytest.mark.parametrize("edit,msg", [
    ({"out_channels": 3}, "stem: groups 2 must divide in_channels 4 and out_channels 3"),
    ({"in_channels": 3, "out_channels": 4, "groups": 3}, "stem: groups 3 must divide in_channels 3 and out_channels 4"),
    ({"dilation": [0, 0]}, "stem: dilation must be a pair of ints >= 1, got [0, 0]"),
    ({"dilation": [1, 0]}, "stem: dilation must be a pair of ints >= 1, got [1, 0]"),
], ids=["groups_out", "groups_both", "dilation_0", "dilation_1_0"])
def test_a_float_conv_config_torch_would_refuse_later_is_refused_naming_the_layer(edit, msg):
    """A FloatConv2d config with groups not dividing the channels or a dilation < 1 is a ValueError naming the
    layer and the field at construction."""
    layer_from_config(*_conv())  # (the unedited config builds)
    with pytest.raises(ValueError) as e:
        layer_from_config(*_conv(**edit))
    assert msg in str(e.value), str(e.value)


@pytest.mark.parametrize("mean,std,msg", [
    ([0.5, float("inf")], [0.25, 0.25], "mean[1] = inf, std[1] = 0.25"),
    ([float("nan"), 0.5], [0.25, 0.25], "mean[0] = nan, std[0] = 0.25"),
    ([0.5, 0.5], [0.25, float("-inf")], "mean[1] = 0.5, std[1] = -inf"),
], ids=["mean_inf", "mean_nan", "std_minus_inf"])
def test_a_normalization_that_makes_every_output_nonfinite_is_refused(mean, std, msg):
    """(x - mean) / std is NaN or infinite at every precision for a non-finite mean or std: refused when built,
    naming the channel."""
    with pytest.raises(ValueError, match="normalize: mean and std must be finite and std nonzero") as e:
        layer_from_config({"kind": "normalize", "source": "normalize", "channels": 2},
                          {"mean": torch.tensor(mean), "std": torch.tensor(std)})
    assert msg in str(e.value), str(e.value)

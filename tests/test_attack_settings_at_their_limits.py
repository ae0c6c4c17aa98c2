"""dwq.attacks' argument checks at the edges of what they accept: a step or tolerance that must be
positive (cw_linf's tau, bandits_td's image_lr) refuses 0; a CW margin kappa must be finite (inf is
refused by cw_linf and cw_l2); a label equal to the model's class count is out of range; labels on
another device than the images are refused by the label check, not by a torch error further in."""
import pytest
import torch

import dwq.attacks as A
from test_pgd_random_start_and_argument_edges import _data, _model


@pytest.mark.parametrize("call,msg", [
    (lambda m, x, y: A.cw_linf(m, x, y, tau=0.0), r"tau must be in \(0, 1\].*got 0.0"),
    (lambda m, x, y: A.bandits_td(m, x, y, 0.1, image_lr=0), r"image_lr must be in \(0, 1\].*got 0"),
    (lambda m, x, y: A.cw_linf(m, x, y, kappa=float("inf")), r"kappa must be a finite number >= 0.*got inf"),
    (lambda m, x, y: A.cw_l2(m, x, y, kappa=float("inf")), r"kappa must be a finite number >= 0.*got inf"),
], ids=["cw_linf_tau_0", "bandits_td_image_lr_0", "cw_linf_kappa_inf", "cw_l2_kappa_inf"])
def test_a_setting_just_past_its_limit_is_refused(call, msg):
    """Each call gives one setting at the excluded end of its range and must be refused, naming it."""
    m = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=msg):
        call(m, x, y)


@pytest.mark.parametrize("attack", [
    lambda m, x, y: A.bandits_td(m, x, y, 0.1, max_queries=4),
    lambda m, x, y: A.apgd_eot(m, x, y, 0.1, steps=1, eot_iter=1),
    lambda m, x, y: A.cw_linf(m, x, y, steps=1, binary_steps=1),
], ids=["bandits_td", "apgd_eot", "cw_linf"])
def test_a_label_equal_to_the_class_count_is_refused(attack):
    """The model has 4 outputs, so label 4 is one past the last class (a label the argmax never equals
    counted its image as fooled already): refused as out of range, like larger labels."""
    m = _model()
    x, _ = _data(4)
    y = torch.full((4,), 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 3\] \(the model has 4 outputs\)"):
        attack(m, x, y)


@pytest.mark.parametrize("attack", [
    lambda m, x, y: A.pgd(m, x, y, 0.1, 0.02, 1),
    lambda m, x, y: A.fgsm(m, x, y, 0.1),
    lambda m, x, y: A.bandits_td(m, x, y, 0.1, max_queries=4),
    lambda m, x, y: A.cw_linf(m, x, y, steps=1, binary_steps=1),
], ids=["pgd", "fgsm", "bandits_td", "cw_linf"])
def test_labels_on_another_device_than_the_images_are_refused(attack):
    """Labels on the 'meta' device beside CPU images (the CPU stand-in for CUDA labels and CPU images):
    refused by the label check, naming both devices, not a torch error further in."""
    m = _model()
    x, y = _data(4)
    with pytest.raises(ValueError, match=r"y must be int64 class labels \[N\] on the images' device.*on meta"):
        attack(m, x, y.to("meta"))

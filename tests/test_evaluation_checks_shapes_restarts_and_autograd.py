"""dwq.eval.checks.check_evaluation, called directly on a small calibrated model: label and image
tensors of the wrong rank, no restarts for PGD, inference mode (gradient attacks need autograd), and
a bare IntegerModel refused for PGD itself even when no gradient protocol is named; each refused
before the evaluation's first forward."""
import pytest
import torch
from deploy_models import calibrated

from dwq.eval.checks import check_evaluation
from dwq.models import small_cnn

SET = [4, 8]


@pytest.fixture(scope="module")
def model_data():
    torch.manual_seed(0)
    m = calibrated(small_cnn(precisions=SET, width=4), (4, 1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    return m, x, y


def _checks(m, x, y, **kw):
    args = dict(protocols=["paper"], epsilon=0.1, alpha=0.02, steps=1, restarts=1, batch_size=4, paper_batch=2,
                autoattack_n=None, autoattack_steps=1, eot_iter=1, seed=0)
    args.update(kw)
    return check_evaluation(m, x, y, SET, SET, **args)


def test_checks_refuse_labels_that_are_not_one_per_image(model_data):
    # [N, 1] labels hold valid class indices and as many rows as images: only the rank tells
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"y must be int64 labels \[N\], got \(torch.int64, \(4, 1\)\)"):
        _checks(m, x, y[:, None])


def test_checks_refuse_images_without_a_batch_dimension(model_data):
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"x must be a float tensor of images \[N, C, H, W\], got \(4,\) torch.float32"):
        _checks(m, torch.rand(4), y)


def test_checks_refuse_no_restarts_for_pgd(model_data):
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"restarts must be an int >= 1, got 0"):
        _checks(m, x, y, restarts=0)
    assert _checks(m, x, y, restarts=0, attack="fgsm") == 10  # (no PGD runs, no adaptive protocol)


def test_checks_refuse_inference_mode(model_data):
    m, x, y = model_data
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"outside torch.inference_mode\(\)"):
        _checks(m, x, y)
    with torch.no_grad():  # (fine: the attacks enable grad themselves)
        assert _checks(m, x, y) == 10

"""dwq.eval.evaluate's argument checks (dwq.eval.checks) at their boundaries, on a small untrained model:
labels just outside the model's classes, no images, pgd_options with another attack, and the largest
values that are still accepted; labels and images of the wrong rank, PGD without restarts and inference
mode (gradient attacks need autograd), each refused by check_evaluation before the first forward."""
import pytest
import torch

from dwq import eval as E
from dwq.eval.checks import check_evaluation
from dwq.models import small_cnn

SET = [4, 8]


@pytest.fixture(scope="module")
def model_data():
    torch.manual_seed(0)
    m = small_cnn(precisions=SET, width=4).eval()
    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    return m, x, y


def _checks(m, x, y, **kw):
    args = dict(protocols=["paper"], epsilon=0.1, alpha=0.02, steps=1, restarts=1, batch_size=4, paper_batch=2,
                autoattack_n=None, autoattack_steps=1, eot_iter=1, seed=0)
    args.update(kw)
    return check_evaluation(m, x, y, SET, SET, **args)


@pytest.mark.parametrize("labels,msg", [
    ([0, 1, 2, -1], r"y must hold class indices in \[0, 9\] .* got labels in \[-1, 2\]"),  # an index from the end
    ([0, 1, 2, 10], r"y must hold class indices in \[0, 9\] .* got labels in \[0, 10\]"),  # one past the last class
])
def test_evaluate_refuses_labels_just_outside_the_models_classes(model_data, labels, msg):
    m, x, _ = model_data
    calls = []
    with pytest.raises(ValueError, match=msg):
        E.evaluate(m, x, torch.tensor(labels), SET, epsilon=0.1, alpha=0.02, steps=1, protocols=["paper"],
                   progress=lambda *a: calls.append(a))
    assert calls == []


def test_evaluate_refuses_no_images(model_data):
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"same number \(>= 1\) of images and labels, got 0 and 0"):
        E.evaluate(m, x[:0], y[:0], SET, epsilon=0.1, alpha=0.02, steps=1, protocols=["paper"])


def test_evaluate_refuses_pgd_options_for_another_attack(model_data):
    # the options shape PGD only: with attack='fgsm' they were taken and did nothing
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"pgd_options must be a dict .* for attack='fgsm'"):
        _checks(m, x, y, attack="fgsm", pgd_options={"early_stop": True})
    assert _checks(m, x, y, attack="pgd", pgd_options={"early_stop": True}) == 10


def test_checks_accept_the_largest_valid_values(model_data):
    m, x, y = model_data
    # every image for AutoAttack, the last class as a label, the largest generator seed
    assert _checks(m, x, y, protocols=["autoattack-rand"], autoattack_n=len(y)) == 10
    assert _checks(m, x, torch.tensor([9, 9, 0, 1]), seed=2**63 - 1) == 10


def test_checks_refuse_autoattack_without_steps(model_data):
    # found in AutoAttack's stage, after the clean pass and every other attack
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"autoattack_steps must be an int >= 1, got 0"):
        _checks(m, x, y, protocols=["autoattack-rand"], autoattack_steps=0)


def test_checks_refuse_integer_images(model_data):
    # 0/1 pixels as an integer tensor lie in [0, 1]: only the dtype tells them from float images
    m, x, y = model_data
    with pytest.raises(ValueError, match=r"x must be a float tensor of images \[N, C, H, W\], got \(4, 1, 28, 28\) "
                                         r"torch.uint8"):
        _checks(m, x.round().to(torch.uint8), y)


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

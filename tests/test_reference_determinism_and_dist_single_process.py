"""dwq.train.reference, dwq.train.determinism and dwq.train.dist (single-process paths): the reference's
defaults as docs/workflow.md states them, its quantizer check, the lowest precision by activation bits, the
deterministic block's save/restore of every setting it touches, and what setup/launched/active/unwrap say
outside torchrun."""
import os

import pytest
import torch
import torch.distributed as dist

from dwq.models import QuantPolicy, small_cnn
from dwq.train.reference import REFERENCE_CIFAR_TRAIN, check_reference_quantizers, lowest_precision, reference_alpha
from dwq.train import determinism
from dwq.train.dist import active, launched, setup, unwrap


def test_reference_defaults_are_the_reference_codes():
    """docs/workflow.md: 160 epochs, batch 128, lr 0.1 x0.1 at 50%/75%, momentum 0.9, weight decay 5e-4,
    FGSM with a random start and step 10/255 at eps 8/255, all 50,000 training images, float32."""
    expect = {"attack": "fgsm-rs", "epsilon": 8 / 255, "alpha": 10 / 255, "epochs": 160, "batch_size": 128,
              "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "multistep",
              "lr_milestones": (0.5, 0.75), "lr_gamma": 0.1, "amp": False, "val_size": 0}
    assert {k: REFERENCE_CIFAR_TRAIN[k] for k in expect} == expect


def test_reference_alpha_of_each_attack():
    assert reference_alpha("pgd") == 2 / 255
    assert reference_alpha("fgsm") == reference_alpha("fgsm-rs") == 10 / 255
    for attack in ("free", "none", "cw"):
        with pytest.raises(ValueError, match="has no '.*' attack"):
            reference_alpha(attack)


def test_reference_quantizers_need_one_shared_activation_range():
    """A float zero point alone is not the reference's quantizer: its activations share one range."""
    check_reference_quantizers(small_cnn(precisions=[4, 8], width=8,
                                         policy=QuantPolicy(zero_point="float", shared_act_range=True)))
    with pytest.raises(ValueError, match="shared_range=False"):
        check_reference_quantizers(small_cnn(precisions=[4, 8], width=8, policy=QuantPolicy(zero_point="float")))


def test_lowest_precision_orders_by_activation_then_weight_bits():
    assert lowest_precision([(2, 8), (4, 4)]) == (4, 4)  # 4 activation bits < 8
    assert lowest_precision([(8, 4), (4, 4)]) == (4, 4)  # same activation bits: fewer weight bits
    assert lowest_precision(["W2A8", 6, None]) == 6
    assert lowest_precision([None]) is None


@pytest.fixture
def torch_settings():
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              cudnn.deterministic, cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    cudnn.deterministic, cudnn.benchmark = before[2], before[3]


def test_deterministic_restores_warn_only_and_benchmark(torch_settings):
    cudnn = torch.backends.cudnn
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = False, True
    with determinism.deterministic():  # (enabled by default)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True)


def test_deterministic_disabled_changes_nothing(torch_settings, monkeypatch):
    monkeypatch.delenv(determinism.CUBLAS_ENV, raising=False)
    torch.use_deterministic_algorithms(False)
    ran = []
    with determinism.deterministic(False):
        ran.append(torch.are_deterministic_algorithms_enabled())
    assert ran == [False] and determinism.CUBLAS_ENV not in os.environ


def test_deterministic_keeps_a_cublas_workspace_the_user_set(torch_settings, monkeypatch):
    monkeypatch.setenv(determinism.CUBLAS_ENV, ":16:8")
    with determinism.deterministic():
        assert os.environ[determinism.CUBLAS_ENV] == ":16:8"
    monkeypatch.delenv(determinism.CUBLAS_ENV)
    with determinism.deterministic():
        assert os.environ[determinism.CUBLAS_ENV] == ":4096:8"


def test_setup_outside_torchrun_is_one_process(monkeypatch):
    """Without the whole rendezvous (some launchers or shells set RANK or WORLD_SIZE alone) the process
    is not launched: rank 0 of 1, on the default device, no process group."""
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert not launched() and not active()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert not launched()
    rank, world, device = setup()
    assert (rank, world) == (0, 1) and device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert setup("cpu") == (0, 1, torch.device("cpu"))
    assert not dist.is_initialized()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert launched()


def test_unwrap_gives_the_model_inside_ddp(tmp_path):
    """One process in a gloo group of one: unwrap gives the wrapped model, and the reference check names
    the layer as the model does (not 'module.conv2')."""
    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = small_cnn(precisions=[4, 8], width=8)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert active()
        assert unwrap(ddp) is model and unwrap(model) is model
        with pytest.raises(ValueError, match="layer 'conv"):
            check_reference_quantizers(ddp)
        del ddp
    finally:
        dist.destroy_process_group()
    assert not active()

"""Work that switches a model to eval mode (validation during training, latency timing, evaluation)
gives each module its own mode back: a model with a frozen (eval-mode) part keeps it frozen, where
``model.train(was)`` set every module alike."""
import torch
from torch import nn
from torch.utils.data import TensorDataset

from dwq.deploy.timing import latency_per_precision
from dwq.eval.run import evaluate
from dwq.models import small_cnn
from dwq.train.validation import evaluate_clean_pgd


def _partly_frozen():
    torch.manual_seed(0)
    m = small_cnn(num_classes=10, precisions=[None, 4]).train()
    frozen = [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)][:1]
    assert frozen, "small_cnn has no batch norm to freeze"
    for mod in frozen:
        mod.eval()
    return m, {name: mod.training for name, mod in m.named_modules()}


def _modes(m):
    return {name: mod.training for name, mod in m.named_modules()}


def _data(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_validation_during_training_keeps_frozen_modules_frozen():
    m, want = _partly_frozen()
    x, y = _data()
    evaluate_clean_pgd(m, TensorDataset(x, y), [None, 4], 0.1, 0.05, 1, "cpu", batch_size=4)
    assert _modes(m) == want


def test_latency_timing_keeps_frozen_modules_frozen():
    m, want = _partly_frozen()
    latency_per_precision(m, _data(2)[0], budget_s=0.01, min_reps=1, max_reps=1)
    assert _modes(m) == want


def test_evaluate_keeps_frozen_modules_frozen():
    m, want = _partly_frozen()
    x, y = _data()
    evaluate(m, x, y, [4], epsilon=0.03, steps=1, protocols=("paper",), batch_size=4, paper_batch=4)
    assert _modes(m) == want

"""Issue 10: no host sync in a training step or an eval forward. The CUDA tests
(test_train.py, test_quantizer_fused.py) use torch.cuda.set_sync_debug_mode("error") and need a GPU;
these run the same steps on the CPU under tests/sync_probe.py, so a sync-prone call in the attack,
the trainer, a layer or a quantizer fails CI on any machine."""
import pytest
import torch
from torch.utils.data import TensorDataset

import dwq
from dwq.models import preact_resnet18, small_cnn
from dwq.train import Trainer
from sync_probe import SyncProbe
from test_train import cfg


@pytest.fixture(params=["fused", "torch"])
def quantizer_path(request, monkeypatch):
    """Each case runs with the fused quantizer kernels and with dwq.quant's pure-PyTorch path (what
    runs where the extension has no kernel for the device)."""
    if request.param == "torch":
        from dwq.ops import quantizer_fused

        monkeypatch.setattr(quantizer_fused, "available", lambda x, op: False)
    return request.param


def test_probe_flags_value_reads_and_value_sized_outputs():
    x = torch.randn(16)
    cases = {"item": lambda: x.sum().item(), "bool": lambda: bool(x.max() > 0), "mask": lambda: x[x > 0],
             "nonzero": lambda: torch.nonzero(x), "tensor": lambda: torch.tensor([1.0, 2.0]),
             "repeats": lambda: torch.repeat_interleave(x, torch.ones(16, dtype=torch.long))}
    for name, fn in cases.items():
        with SyncProbe() as p:
            fn()
        assert p.hits, name
    with SyncProbe() as p:  # none of these waits for a device
        torch._assert_async(~torch.isnan(x).any(), "nan")
        torch.where(x > 0, x, 0.0).amax()
        torch.repeat_interleave(x, 2)
        x[torch.arange(3)]
    assert p.hits == []


@pytest.mark.parametrize("attack", ["pgd", "fgsm", "fgsm-rs", "free"])
def test_rpt_step_has_no_sync_prone_call(tmp_path, attack, quantizer_path):
    """One RPT step past its warm-up (precision draw, attack, update; free: 2 replays), as in the
    CUDA test, switchable BN and the fused quantizers included."""
    m = preact_resnet18(num_classes=10, precisions=[4, 8], switchable_bn=True)
    data = TensorDataset(torch.rand(16, 3, 32, 32), torch.randint(10, (16,)))
    tr = Trainer(m, data, cfg(attack=attack, attack_iters=2, free_replays=2, epochs=1, precisions=[4, 8]),
                 str(tmp_path))
    x, y = torch.rand(4, 3, 32, 32), torch.randint(10, (4,))
    tr.train_batch(x, y)
    with SyncProbe() as p:
        tr.train_batch(x, y)
    assert p.hits == []


@pytest.mark.parametrize("attack", ["pgd", "fgsm-rs"])
def test_amp_attack_loss_scale_has_no_sync_prone_call(tmp_path, attack):
    """Under AMP the attack's loss is multiplied by the GradScaler's scale, a device tensor never read
    on the host (the update's scaler.step reads its inf check by design: not probed). amp is refused
    off CUDA; the AMP path is turned on by hand under CPU autocast."""
    m = small_cnn(precisions=[4, 8], width=4, switchable_bn=True)
    data = TensorDataset(torch.rand(8, 1, 28, 28), torch.randint(10, (8,)))
    tr = Trainer(m, data, cfg(attack=attack, attack_iters=2, epochs=1, precisions=[4, 8]), str(tmp_path))
    tr.use_amp, tr.scaler, tr._autocast_device = True, torch.amp.GradScaler("cpu"), "cpu"
    x, y = data.tensors
    tr.train_batch(x, y)  # warm-up: the update makes the scaler's scale
    with SyncProbe() as p:
        tr._craft(x, y)
    assert p.hits == []


@pytest.mark.parametrize("precision", [None, 4])
def test_eval_forward_has_no_sync_prone_call(precision, quantizer_path):
    """Eval forward with tracked ranges, and with a range slot never observed (it falls back to the
    observed slot, then to the batch's own range: torch.where, not an if)."""
    m = small_cnn(precisions=[None, 4, 8], width=4, switchable_bn=True)
    dwq.set_precision(m, 8)
    m(torch.rand(4, 1, 28, 28))  # train mode: the 8-bit slot tracks a range, the 4-bit one does not
    m.eval()
    dwq.set_precision(m, precision)
    with SyncProbe() as p, torch.no_grad():
        m(torch.rand(4, 1, 28, 28))
        m(torch.rand(4, 1, 28, 28))  # (with the eval qparams the first forward kept)
    assert p.hits == []

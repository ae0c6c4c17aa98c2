"""The update under a GradScaler (AMP): the optimizer steps on unscaled gradients, the scale is updated
after each step, and the attack's loss is multiplied by the scale over the batch size. amp is refused
off CUDA; the tests put an enabled CPU GradScaler in by hand (as test_train's AMP test does)."""
import torch

from dwq.models import small_cnn
from dwq.train import Trainer
from test_train import cfg, tiny_data


def _trainer(out):
    torch.manual_seed(0)
    return Trainer(small_cnn(precisions=[4], width=4), tiny_data(64),
                   cfg(epochs=1, attack="none", precisions=[4], random_precision=False), str(out))


def test_a_scaled_update_equals_the_unscaled_one_and_updates_the_scale(tmp_path):
    plain, scaled = _trainer(tmp_path / "a"), _trainer(tmp_path / "b")
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    x, y = tiny_data(64).tensors
    plain.train_batch(x, y)
    scaled.train_batch(x, y)
    for (k, a), b in zip(plain.model.named_parameters(), scaled.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), k  # (the scale is a power of 2)
    assert scaled.scaler.get_scale() == 2048.0 and scaled.step == 1


def test_the_attack_loss_scale_is_the_scaler_s_scale_over_the_batch_size(tmp_path):
    tr = _trainer(tmp_path)
    assert tr._attack_loss_scale(16) is None  # float32: the attack is left as it was
    tr.use_amp, tr.scaler = True, torch.amp.GradScaler("cpu", init_scale=1024.0)
    assert tr._attack_loss_scale(16).item() == 64.0

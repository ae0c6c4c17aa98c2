"""Free training's replays: the carried noise moves by alpha (not ε) per replay, the model is fed images
inside [0, 1], and a batch's figures are the mean over its replays (correct count <= the batch)."""
import torch
from torch.utils.data import TensorDataset

from dwq.models import small_cnn
from dwq.train import Trainer
from test_train import cfg, tiny_data


def _free(out, data, **kw):
    c = cfg(**{**dict(epochs=1, attack="free", epsilon=0.3, alpha=0.1, free_replays=1, precisions=[4],
                      random_precision=False), **kw})
    return Trainer(small_cnn(precisions=[4], width=4), data, c, str(out))


def test_each_replay_moves_the_noise_by_alpha(tmp_path):
    data = tiny_data(64)
    tr = _free(tmp_path, data)
    tr.train_batch(*data.tensors)  # one replay from zero noise: alpha * sign(gradient)
    assert set(tr.free_delta.abs().unique().tolist()) <= {0.0, 0.10000000149011612}
    assert tr.free_delta.abs().max().item() == torch.tensor(0.1).item()


def test_the_model_sees_images_inside_the_box(tmp_path):
    data = tiny_data(64)
    tr = _free(tmp_path, data, free_replays=3)
    seen = []
    tr.model.register_forward_pre_hook(lambda m, inp: seen.append((inp[0].min().item(), inp[0].max().item())))
    tr.train_batch(*data.tensors)
    assert len(seen) == 3 and all(0.0 <= lo and hi <= 1.0 for lo, hi in seen)


def test_a_batch_s_correct_count_is_the_mean_over_its_replays(tmp_path):
    torch.manual_seed(0)
    x, y = torch.rand(16, 1, 28, 28), torch.zeros(16, dtype=torch.long)
    tr = Trainer(small_cnn(precisions=[None], width=4), TensorDataset(x, y),
                 cfg(epochs=1, attack="free", epsilon=0.03, alpha=0.01, free_replays=2, precisions=[None],
                     random_precision=False, batch_size=16), str(tmp_path))
    with torch.no_grad():  # every image classified 0, its label, at every replay
        tr.model.fc.bias.zero_()
        tr.model.fc.bias[0] = 15.0
    loss, correct, n = tr.train_batch(x, y)
    assert n == 16 and correct.item() == 16 and 0 <= loss.item() / n < 0.01

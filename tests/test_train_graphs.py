"""dwq train --cuda-graphs (dwq.train.graphs): the PGD attack of a training step replayed from a CUDA
graph per precision must train on the same numbers as the eager attack. On the CPU a stand-in runs
the captured body at each replay (a capture records it without running it, as CUDA's does), which
checks everything around the graphs: the random starts drawn eagerly in the eager attack's order,
the warm-up's moved buffers put back, one graph per precision, the short batch run eagerly. The
CUDA cases compare real graphs with the eager run."""
import json

import pytest
import torch
from torch.utils.data import TensorDataset

from dwq.attacks import draw_random_start, pgd
from dwq.models import small_cnn
from dwq.train import TrainConfig, Trainer
from dwq.train.graphs import AttackGraphs


class RerunGraphs(AttackGraphs):
    """Capture and replay stood in for on any device: the warm-up runs the body, a capture keeps it
    without running it, a replay runs it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.captures, self.replays = 0, 0

    def _warm(self, body):
        for _ in range(self.warmup):
            body()

    def _record(self, body):
        self.captures += 1

        def replay():
            self.replays += 1
            body()

        return replay


def _data(n=56):
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.randint(10, (n,), generator=g))


def _cfg(**kw):
    base = dict(attack="pgd", epsilon=0.1, alpha=0.05, attack_iters=2, epochs=2, batch_size=24, lr=0.05,
                lr_schedule="constant", precisions=[2, 4], random_precision=True, seed=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(tmp_path, name, device="cpu", **kw):
    torch.manual_seed(0)
    m = small_cnn(precisions=[2, 4], width=4, switchable_bn=True)
    return Trainer(m, _data(), _cfg(**kw), str(tmp_path / name), device=device)


def _same_runs(a, b, tmp_path):
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k
    assert torch.equal(a.gen.get_state(), b.gen.get_state())
    lines = [[json.loads(s) for s in open(tmp_path / n / "metrics.jsonl")] for n in ("eager", "graphs")]
    assert [(r["train_loss"], r["train_acc"]) for r in lines[0]] == [(r["train_loss"], r["train_acc"])
                                                                     for r in lines[1]]


def test_graphed_attack_trains_on_the_eager_numbers(tmp_path):
    eager = _trainer(tmp_path, "eager").fit()
    tr = _trainer(tmp_path, "graphs")
    tr._graphs = graphs = RerunGraphs(tr.model, tr.cfg.epsilon, tr.cfg.alpha, tr.cfg.attack_iters, tr.gen)
    tr.fit()
    _same_runs(eager, tr, tmp_path)
    # 56 images in batches of 24: two full batches an epoch replayed, the short one (8) eager
    assert graphs.captures == 2 and graphs.replays == 4 and set(graphs._replays) == {2, 4}


def test_graphed_amp_attack_trains_on_the_eager_numbers(tmp_path):
    """AMP (float16 autocast, here the CPU's, as tests/test_train.py runs it): the attack's loss scale,
    the scaler's each step, goes into the graphs as a static tensor."""
    def amp(tr):
        tr.use_amp, tr.scaler, tr._autocast_device = True, torch.amp.GradScaler("cpu"), "cpu"
        return tr

    eager = amp(_trainer(tmp_path, "eager")).fit()
    tr = amp(_trainer(tmp_path, "graphs"))
    tr._graphs = graphs = RerunGraphs(tr.model, tr.cfg.epsilon, tr.cfg.alpha, tr.cfg.attack_iters, tr.gen, "cpu")
    tr.fit()
    _same_runs(eager, tr, tmp_path)
    assert graphs.replays == 4 and graphs._scale is not None


def test_warm_up_leaves_the_buffers_as_it_found_them():
    """The warm-up's train-mode forwards move batch-norm statistics and activation ranges; a graph
    captured after them must start from the model as the step found it."""
    torch.manual_seed(0)
    m = small_cnn(precisions=[4], width=4, switchable_bn=True).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    graphs = RerunGraphs(m, 0.1, 0.05, 2, torch.Generator().manual_seed(0))
    x, y = torch.rand(8, 1, 28, 28), torch.randint(10, (8,))
    graphs._like = (x.shape, x.dtype, x.device, y.shape, True)
    graphs._x, graphs._y, graphs._start, graphs._out = x, y, x.clone(), torch.empty_like(x)
    graphs._capture()
    assert graphs.captures == 1
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_pgd_from_a_start_drawn_ahead_equals_pgd():
    torch.manual_seed(0)
    m = small_cnn(precisions=[None], width=4)
    x, y = torch.rand(6, 1, 28, 28), torch.randint(10, (6,))
    want = pgd(m, x, y, 0.1, 0.03, 3, generator=torch.Generator().manual_seed(5))
    start = draw_random_start(x, 0.1, torch.Generator().manual_seed(5))
    assert torch.equal(pgd(m, x, y, 0.1, 0.03, 3, start=start), want)
    with pytest.raises(ValueError, match="restarts=1"):
        pgd(m, x, y, 0.1, 0.03, 3, start=start, restarts=2)
    with pytest.raises(ValueError, match=r"start must be like x"):
        pgd(m, x, y, 0.1, 0.03, 3, start=start[:3])


@pytest.mark.parametrize("kw,named", [(dict(attack="fgsm-rs"), "attack='fgsm-rs'"),
                                      (dict(compile=True), "compile=True")])
def test_refused_where_it_does_not_apply(kw, named):
    with pytest.raises(ValueError, match=named):
        _cfg(cuda_graphs=True, **kw).validate()


def test_refused_off_cuda(tmp_path):
    with pytest.raises(ValueError, match="CUDA only, not on cpu"):
        _trainer(tmp_path, "x", cuda_graphs=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")
def test_cuda_graphed_attack_trains_on_the_eager_numbers(tmp_path):
    """Real graphs: the same parameters, buffers and losses as the eager run, bit for bit (deterministic
    algorithms, so that both runs pick the same kernels)."""
    eager = _trainer(tmp_path, "eager", device="cuda", deterministic=True).fit()
    tr = _trainer(tmp_path, "graphs", device="cuda", deterministic=True, cuda_graphs=True).fit()
    _same_runs(eager, tr, tmp_path)
    assert set(tr._graphs._replays) == {2, 4}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")
def test_cuda_graphed_amp_attack_trains_on_the_eager_numbers(tmp_path):
    eager = _trainer(tmp_path, "eager", device="cuda", deterministic=True, amp=True).fit()
    tr = _trainer(tmp_path, "graphs", device="cuda", deterministic=True, amp=True, cuda_graphs=True).fit()
    _same_runs(eager, tr, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")
def test_cuda_graphed_step_makes_no_host_sync(tmp_path):
    tr = _trainer(tmp_path, "graphs", device="cuda", cuda_graphs=True, precisions=[4], random_precision=False)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 28, 28, generator=g).cuda(), torch.randint(10, (24,), generator=g).cuda()
    tr.train_batch(x, y)  # the capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        tr.train_batch(x, y)  # a replay and the eager update
    finally:
        torch.cuda.set_sync_debug_mode("default")

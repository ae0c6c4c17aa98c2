"""dwq.train.validation.evaluate_clean_pgd against the same figures computed directly: the batches of the
seeded epoch-0 order, each precision classified clean and after a PGD whose random starts come from one
generator seeded with ``seed`` (drawn batch after batch, precision after precision), the PGD images
classified (not the clean ones); a DistributedDataParallel wrapper gives the wrapped model's figures."""
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset

import dwq
from dwq.attacks import pgd
from dwq.quant import reuse_quantized_weights
from dwq.train.batches import epoch_batches
from dwq.train.validation import evaluate_clean_pgd
from test_evaluate_rpi_subset_figures import data  # noqa: F401 (a fixture)

EPS, ALPHA, STEPS, BATCH = 0.3, 0.05, 1, 8  # a wide ball, one short step: the random start decides most images


@pytest.fixture
def model_set(data):
    """test_evaluate_rpi_subset_figures' small model on 24 random images labelled with its own 8-bit
    predictions (its precisions disagree image by image, PGD flips some), as a dataset."""
    m, x, y = data
    return m, TensorDataset(x, y)


def _direct(model, data, precisions, seed):
    x_all, y_all = data.tensors
    g = torch.Generator().manual_seed(seed)
    clean = rob = 0
    training = model.training
    model.eval()
    with reuse_quantized_weights(model):
        for b in epoch_batches(len(data), BATCH, seed, 0):
            x, y = x_all[b], y_all[b]
            for p in precisions:
                with dwq.precision(model, p):
                    with torch.no_grad():
                        clean += (model(x).argmax(1) == y).sum().item()
                    xa = pgd(model, x, y, EPS, ALPHA, STEPS, generator=g)
                    with torch.no_grad():
                        rob += (model(xa).argmax(1) == y).sum().item()
    model.train(training)
    n = len(data) * len(precisions)
    return clean / n, rob / n


@pytest.mark.parametrize("seed", [0, 5])
def test_figures_are_the_direct_computation_at_the_seed(model_set, seed):
    """Exact equality (same forwards, same draws); the PGD figure is below the clean one and another seed's
    random starts give another PGD figure, so a misplaced draw or an unattacked forward cannot match."""
    model, data = model_set
    want = _direct(model, data, [2, 4, 8], seed)
    got = evaluate_clean_pgd(model, data, [2, 4, 8], EPS, ALPHA, STEPS, "cpu", batch_size=BATCH, seed=seed)
    assert got == want, f"evaluate_clean_pgd gave (clean, pgd) {got}, the direct computation {want}"
    assert want[1] < want[0], f"PGD accuracy {want[1]} is not below the clean {want[0]}: the attack is too weak"
    other = _direct(model, data, [2, 4, 8], seed + 1)
    assert other[1] != want[1], f"seeds {seed} and {seed + 1} give the same PGD figure: the test cannot see the seed"


def test_a_ddp_wrapped_model_gives_the_wrapped_models_figures(model_set, tmp_path):
    """One process in a gloo group of one: the wrapper is taken off (no forward goes through it; under DDP each
    of the wrapper's forwards broadcasts the BN buffers among the ranks), the figures are the model's own."""
    model, data = model_set
    want = evaluate_clean_pgd(model, data, [2, 4, 8], EPS, ALPHA, STEPS, "cpu", batch_size=BATCH, seed=1)
    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        through = []
        wrapper_forward = ddp.forward
        ddp.forward = lambda *a, **k: through.append(1) or wrapper_forward(*a, **k)
        got = evaluate_clean_pgd(ddp, data, [2, 4, 8], EPS, ALPHA, STEPS, "cpu", batch_size=BATCH, seed=1)
        del ddp
    finally:
        dist.destroy_process_group()
    assert got == want, f"through DDP {got}, the model itself {want}"
    assert not through, f"{len(through)} forwards went through the DistributedDataParallel wrapper"

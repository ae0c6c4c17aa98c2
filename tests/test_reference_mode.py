"""The reference code's semantics, one behaviour per row of the map in docs/workflow.md: forwards
(BN-statistics updates) per iteration, momentum and weight decay on BN branches not drawn, early-
stopped PGD and the choice among restarts, range tracking at full precision, the test-set
checkpoint and the reference mode's settings."""
import json

import pytest
import torch
from torch.utils.data import TensorDataset

import dwq
from dwq.attacks import pgd
from dwq.data import load_mnist5k, reference_stats
from dwq.eval.attacks import REFERENCE_PGD, make_attack
from dwq.models import QuantPolicy, build_model, reference_policy, small_cnn
from dwq.nn import QConv2d
from dwq.train import REFERENCE_SELECT_CKPT, TrainConfig, Trainer, lowest_precision, reference_alpha

REF = QuantPolicy(zero_point="float", shared_act_range=True)


def tiny_data(n=128, offset=0):
    x, y = load_mnist5k("train").tensors
    return TensorDataset(x[offset:offset + n].clone(), y[offset:offset + n].clone())


def cfg(**kw):
    base = dict(attack="pgd", epsilon=0.1, alpha=0.05, attack_iters=3, epochs=1, batch_size=32, lr=0.05,
                lr_schedule="constant", precisions=[4, 8], random_precision=True, seed=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _sbn_branches(model):
    return [m for m in model.modules() if isinstance(m, dwq.SwitchableBatchNorm2d)]


# ---------------------------------------------------------------------------- forwards per iteration
@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("attack,forwards", [("pgd", 4), ("fgsm-rs", 2), ("none", 1)])
def test_bn_statistics_update_once_per_forward_k_plus_1_for_pgd_k(tmp_path, reference, attack, forwards):
    """A PGD-3 iteration updates the drawn branch's BN statistics 3 + 1 times (the reference: 8 for
    PGD-7), with no extra forward after the attack, in dwq's default and in reference mode."""
    model = small_cnn(precisions=[4, 8], width=8, policy=REF if reference else QuantPolicy())
    tr = Trainer(model, tiny_data(64), cfg(attack=attack, reference=reference, test_select=False),
                 str(tmp_path))
    x, y = tiny_data(32).tensors
    for _ in range(3):
        before = [[int(b.num_batches_tracked) for b in m.bn] for m in _sbn_branches(model)]
        tr.train_batch(x, y)
        drawn = model.conv2.precision  # the precision drawn for this iteration
        i = model.conv2.precisions.index(drawn)
        for m, counts in zip(_sbn_branches(model), before):
            after = [int(b.num_batches_tracked) for b in m.bn]
            assert after[i] - counts[i] == forwards
            assert all(after[j] == counts[j] for j in range(len(after)) if j != i)


# ---------------------------------------------------------------------------- undrawn BN branches
def _undrawn_branch_updates(tmp_path, zero_grad):
    """Runs RPT iterations; for each iteration and each BN branch not drawn in it but drawn earlier,
    (gamma before, gamma after, momentum buffer before)."""
    torch.manual_seed(0)
    model = small_cnn(precisions=[4, 8], width=8)
    tr = Trainer(model, tiny_data(64), cfg(attack="fgsm-rs", zero_grad=zero_grad, lr=0.1), str(tmp_path))
    x, y = tiny_data(32).tensors
    sbn = _sbn_branches(model)[0]
    seen, cases = set(), []
    for _ in range(8):
        w = [b.weight.detach().clone() for b in sbn.bn]
        bufs = [tr.opt.state.get(b.weight, {}).get("momentum_buffer") for b in sbn.bn]
        bufs = [None if t is None else t.clone() for t in bufs]
        tr.train_batch(x, y)
        drawn = sbn.precision_index
        for j in seen - {drawn}:
            cases.append((w[j], sbn.bn[j].weight.detach().clone(), bufs[j]))
        seen.add(drawn)
    assert cases, "the draws never left a previously drawn branch out; change the seed"
    return cases, tr.cfg


def test_undrawn_branch_is_untouched_by_default(tmp_path):
    cases, c = _undrawn_branch_updates(tmp_path, zero_grad=None)
    assert c.zero_grad == "none"
    for before, after, _ in cases:
        assert torch.equal(before, after)


def test_reference_zero_grad_moves_undrawn_branches_by_momentum_and_weight_decay(tmp_path):
    """torch 1.8's zero_grad() (the reference): the undrawn branch's gradient is zero, so SGD applies
    buf = momentum * buf + wd * p; p -= lr * buf."""
    cases, c = _undrawn_branch_updates(tmp_path, zero_grad="zero")
    for before, after, buf in cases:
        expected = before - c.lr * (c.momentum * buf + c.weight_decay * before)
        torch.testing.assert_close(after, expected, rtol=0, atol=1e-7)
        assert not torch.equal(before, after)


# ---------------------------------------------------------------------------- early-stopped PGD
class Recorder:
    """A linear classifier on flattened images that records every batch it is called on."""

    def __init__(self, seed=0, d=28 * 28, k=10):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(d, k, generator=g) * 0.1
        self.calls = []

    def __call__(self, x):
        self.calls.append(x.detach().clone())
        return x.flatten(1) @ self.w


def test_early_stop_freezes_a_sample_once_misclassified():
    x, y = tiny_data(48).tensors
    model = Recorder()
    attack = make_attack("pgd", epsilon=0.3, alpha=0.02, steps=30, **REFERENCE_PGD)
    x_adv = attack(model, x, y)
    assert len(model.calls) < 30  # stopped once every sample was misclassified
    preds = torch.stack([c.flatten(1) @ model.w for c in model.calls]).argmax(2)  # [calls, N]
    wrong = preds != y
    moved_after_wrong = 0
    for n in range(len(y)):
        first = int(wrong[:, n].float().argmax()) if wrong[:, n].any() else None
        if first is None:
            continue
        for c in model.calls[first + 1:]:
            assert torch.equal(c[n], model.calls[first][n])
        assert torch.equal(x_adv[n], model.calls[first][n])
    # without early stop the same samples keep moving
    free = Recorder()
    pgd(free, x, y, 0.3, 0.02, 30, generator=torch.Generator().manual_seed(0))
    fpreds = torch.stack([c.flatten(1) @ free.w for c in free.calls]).argmax(2)
    for n in range(len(y)):
        hit = (fpreds[:, n] != y[n]).nonzero()
        if len(hit) and int(hit[0]) + 1 < len(free.calls):
            moved_after_wrong += int(not torch.equal(free.calls[int(hit[0]) + 1][n], free.calls[int(hit[0])][n]))
    assert len(free.calls) == 30 and moved_after_wrong > 0


def test_restart_select_loss_keeps_the_larger_final_loss():
    x, y = tiny_data(32).tensors
    model = Recorder(seed=1)
    runs = []
    g = torch.Generator().manual_seed(5)
    for _ in range(2):  # the two restarts, one at a time, with the same random stream
        runs.append(pgd(model, x, y, 0.05, 0.01, 3, early_stop=True, generator=g))
    both = pgd(model, x, y, 0.05, 0.01, 3, restarts=2, early_stop=True, restart_select="loss",
               generator=torch.Generator().manual_seed(5))
    losses = [torch.nn.functional.cross_entropy(model(r), y, reduction="none") for r in runs]
    take_second = losses[1] >= losses[0]
    assert take_second.any() and (~take_second).any()
    expected = torch.where(take_second.view(-1, 1, 1, 1), runs[1], runs[0])
    assert torch.equal(both, expected)
    with pytest.raises(ValueError, match="restart_select"):
        pgd(model, x, y, 0.05, 0.01, 3, restart_select="best")
    with pytest.raises(ValueError, match="options of the pgd attack"):
        make_attack("fgsm", epsilon=0.1, early_stop=True)


def test_one_restart_makes_no_forward_after_the_last_step():
    x, y = tiny_data(8).tensors
    model = Recorder()
    pgd(model, x, y, 0.1, 0.02, 5)
    assert len(model.calls) == 5
    model.calls.clear()
    pgd(model, x, y, 0.1, 0.02, 5, restarts=2)
    assert len(model.calls) == 12  # 5 steps + one forward to choose, per restart


# ---------------------------------------------------------------------------- ranges at full precision
@pytest.mark.parametrize("policy", [QuantPolicy(), REF])
def test_full_precision_training_tracks_ranges_for_low_precision_eval(tmp_path, policy):
    """The "PGD-7 + RPI" baseline: trained at full precision, evaluated at 4 bits. Every quantized
    layer has a tracked range afterwards, so a test image's logits do not depend on its batch."""
    model = small_cnn(precisions=[None, 4], width=8, switchable_bn=False, policy=policy)
    Trainer(model, tiny_data(64), cfg(precisions=[None], random_precision=False, attack="fgsm-rs"),
            str(tmp_path)).fit()
    qconvs = [m for m in model.modules() if isinstance(m, QConv2d)]
    assert qconvs
    for m in qconvs:
        q = m.input_quant
        assert q.eval_slot((4, 4)) == q.observed_slot  # 4 bits never trained: the observed range
    model.eval()
    x, _ = tiny_data(16, offset=500).tensors
    with torch.no_grad(), dwq.precision(model, 4):
        together = model(torch.cat([x[:8], x[8:] * 3 - 1]))[:8]
        alone = model(x[:8])
    assert torch.equal(together, alone)


# ---------------------------------------------------------------------------- the reference mode
def test_reference_mode_settings_and_contradictions(tmp_path):
    c = cfg(reference=True).validate()
    assert c.zero_grad == "zero" and c.test_select is True and c.amp is False
    d = cfg().validate()
    assert d.zero_grad == "none" and d.test_select is False
    with pytest.raises(ValueError, match="amp=True contradicts"):
        cfg(reference=True, amp=True).validate()
    with pytest.raises(ValueError, match="zero_grad='zero'"):
        cfg(reference=True, zero_grad="none").validate()
    with pytest.raises(ValueError, match="needs the reference's quantizer.*layer 'conv2"):
        Trainer(small_cnn(precisions=[4, 8], width=8), tiny_data(32), cfg(reference=True), str(tmp_path),
                test_set=tiny_data(32))
    with pytest.raises(ValueError, match="needs a test_set"):
        Trainer(small_cnn(precisions=[4, 8], width=8, policy=REF), tiny_data(32), cfg(reference=True),
                str(tmp_path))


def test_reference_model_quantizer_and_cifar100_normalization():
    model, key = build_model("PreActResNet18", "cifar100", [4, 8], True, reference=True)
    assert model.policy == reference_policy(key) == REF
    assert tuple(model.normalize.mean.tolist()) == pytest.approx(reference_stats("cifar10")[0])
    assert reference_stats("cifar100") == reference_stats("cifar10")
    own, _ = build_model("PreActResNet18", "cifar100", [4, 8], True)
    assert tuple(own.normalize.mean.tolist()) != tuple(model.normalize.mean.tolist())
    assert reference_policy("resnet50").shortcut
    with pytest.raises(ValueError, match="reference=True builds"):
        build_model("PreActResNet18", "cifar10", [4, 8], True, policy=QuantPolicy(), reference=True)
    assert reference_alpha("pgd") == 2 / 255 and reference_alpha("fgsm-rs") == 10 / 255


def test_test_set_checkpoint_is_extra_and_best_pt_stays_on_validation(tmp_path):
    model = small_cnn(precisions=[4, 8], width=8, policy=REF)
    test = tiny_data(64, offset=1000)
    tr = Trainer(model, tiny_data(64), cfg(reference=True, epochs=2, test_select_steps=2, val_pgd_steps=1),
                 str(tmp_path), val_set=tiny_data(32, offset=600), test_set=test).fit()
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert all("test_pgd_reference" in r and "val_pgd" in r for r in recs)
    assert recs[0]["best_test_reference"] is True
    assert (tmp_path / REFERENCE_SELECT_CKPT).is_file() and (tmp_path / "best.pt").is_file()
    assert tr.best_test == max(r["test_pgd_reference"] for r in recs)
    config = json.load(open(tmp_path / "config.json"))
    assert config["reference"] is True and config["zero_grad"] == "zero"
    assert lowest_precision([8, None, 4, (6, 8)]) == 4 and lowest_precision([None, (8, 2)]) == (8, 2)

"""dwq.train: adversarial training with RPT, exact resume, DDP (2 gloo processes)."""
import gc
import json
import math
import os
import re
import socket
import sys

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

import dwq
from dwq.attacks import project_linf
from dwq.data import load_mnist5k
from dwq.models import small_cnn
from dwq.train import CheckpointError, TrainConfig, Trainer, load_checkpoint, save_checkpoint
from dwq.train.dist import cleanup
from dwq.train.loop import epoch_batches, lr_lambda

SET = [2, 3, 4, 6, 8]


def tiny_data(n=256):
    x, y = load_mnist5k("train").tensors
    return TensorDataset(x[:n].clone(), y[:n].clone())


def cfg(**kw):
    base = dict(attack="pgd", epsilon=0.1, alpha=0.05, attack_iters=2, epochs=2, batch_size=64, lr=0.05,
                lr_schedule="constant", precisions=SET, random_precision=True, seed=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_rpt_loss_decreases_visits_precisions_and_sbn_branches_differ(tmp_path):
    torch.manual_seed(0)
    model = small_cnn(precisions=SET, width=8)
    tr = Trainer(model, tiny_data(512), cfg(epochs=3), str(tmp_path)).fit()
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert recs[-1]["train_loss"] < recs[0]["train_loss"] - 0.1
    counts = tr.precision_counts
    assert sum(counts.values()) == 24 and all(counts[str(p)] > 0 for p in SET), counts
    # each SBN branch saw only its own precision's activations: distinct running statistics
    sbn = [m for m in model.modules() if isinstance(m, dwq.SwitchableBatchNorm2d)]
    assert sbn
    for m in sbn:
        means = [b.running_mean for b in m.bn]
        for i in range(len(means)):
            assert means[i].abs().sum() > 0
            for j in range(i):
                assert not torch.allclose(means[i], means[j], atol=1e-4)


def test_fixed_precision_training_uses_only_its_precision(tmp_path):
    model = small_cnn(precisions=SET, width=8)
    tr = Trainer(model, tiny_data(128), cfg(epochs=1, precisions=[4], random_precision=False), str(tmp_path)).fit()
    assert {k: v for k, v in tr.precision_counts.items() if v} == {"4": 2}
    with pytest.raises(ValueError, match="not in"):
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(precisions=[5], random_precision=False),
                str(tmp_path / "b"))


def test_metrics_count_each_epochs_draws_in_the_one_spelling(tmp_path):
    model = small_cnn(precisions=[None, 4, (4, 8)], width=8)
    tr = Trainer(model, tiny_data(128), cfg(epochs=2, precisions=None), str(tmp_path)).fit()
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert set(recs[0]["precision_counts"]) == {"fp", "4", "4w8a"}
    assert [sum(r["precision_counts"].values()) for r in recs] == [2, 2]  # this epoch's draws, not the run's
    assert {k: recs[0]["precision_counts"][k] + recs[1]["precision_counts"][k] for k in tr.precision_counts} \
        == tr.precision_counts
    assert json.load(open(tmp_path / "config.json"))["precisions"] == ["fp", "4", "4w8a"]  # resolved, never null
    assert load_checkpoint(str(tmp_path / "last.pt"))["precision_set"] == ["fp", "4", "4w8a"]
    with pytest.raises(ValueError, match="CUDA only"):
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(amp=True), str(tmp_path / "amp"))


@pytest.mark.parametrize("attack,steps", [("fgsm", 2), ("fgsm-rs", 2), ("free", 6), ("none", 2)])
def test_other_training_attacks_run(tmp_path, attack, steps):
    model = small_cnn(precisions=SET, width=8)
    tr = Trainer(model, tiny_data(128), cfg(epochs=1, attack=attack, free_replays=3, alpha=None), str(tmp_path)).fit()
    assert tr.step == steps


def test_free_training_perturbs_pixels_at_0_and_1_and_carries_its_noise_over_a_short_batch(tmp_path):
    """A clamp to [0, 1] inside the graph passed no gradient at 0 or 1 (torch >= 2.14): the 80% of an
    MNIST image at exactly 0 was never perturbed. The noise was also projected into each batch's image
    box (so it depended on the images it was made on) and dropped whenever the batch size changed; as
    in the reference's free training it is now kept within ±ε and a short batch takes its first rows."""
    torch.manual_seed(0)
    data = tiny_data(96)
    eps = 0.3
    tr = Trainer(small_cnn(precisions=[4], width=8), data,
                 cfg(attack="free", epsilon=eps, alpha=0.1, free_replays=4, precisions=[4], random_precision=False,
                     batch_size=64), str(tmp_path))
    x, y = data.tensors[0][:64], data.tensors[1][:64]
    tr.train_batch(x, y)
    noise = tr.free_delta
    moved = ((x + noise).clamp(0, 1) - x) != 0
    assert (x == 0).float().mean() > 0.7 and moved[x == 0].float().mean() > 0.3  # was 0.0
    assert moved[(x > 0) & (x < 1)].float().mean() > 0.3 and noise.abs().max() <= eps
    kept = noise[32:].clone()
    tr.train_batch(data.tensors[0][64:96], data.tensors[1][64:96])  # the epoch's short last batch
    assert tr.free_delta.shape == (64, 1, 28, 28) and torch.equal(tr.free_delta[32:], kept)
    assert not torch.equal(tr.free_delta[:32], noise[:32])


@pytest.mark.parametrize("attack", ["fgsm", "fgsm-rs", "pgd"])
def test_amp_attack_scales_its_loss_so_fp16_gradients_do_not_flush_to_zero(tmp_path, attack):
    """Under AMP the attack's input gradients of a confident model (margin ~15) were float16 zeros:
    FGSM left every pixel as it was (training on clean images). The trainer scales the attack's
    loss as its update's. amp stays refused off CUDA; the test turns on the AMP path under CPU
    autocast by hand."""
    torch.manual_seed(0)
    m = small_cnn(precisions=[None], width=4)
    with torch.no_grad():
        m.fc.bias.zero_()
        m.fc.bias[0] = 15.0
    x, y = torch.rand(16, 1, 28, 28), torch.zeros(16, dtype=torch.long)
    c = cfg(attack=attack, alpha=0.03, epsilon=0.03, attack_iters=1, precisions=[None], random_precision=False)
    tr = Trainer(m, TensorDataset(x, y), c, str(tmp_path))
    tr.use_amp, tr.scaler, tr._autocast_device = True, torch.amp.GradScaler("cpu"), "cpu"
    start = x
    if attack != "fgsm":  # the random start, drawn as the attack draws it from the trainer's generator
        st = tr.gen.get_state()
        start = project_linf(x + (2 * torch.rand(x.shape, generator=tr.gen) - 1) * 0.03, x, 0.03)
        tr.gen.set_state(st)
    unmoved = (tr._craft(x, y) == start).float().mean()
    assert unmoved < 0.05  # unscaled: 1.0


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("zero_grad", ["none", "zero"])
@pytest.mark.parametrize("device", DEVICES)
def test_resume_after_kill_equals_uninterrupted(tmp_path, device, zero_grad):
    """On CUDA with deterministic algorithms (TrainConfig.deterministic): the same bit-exact resume.
    zero_grad="zero" (--reference): the parameters that had a gradient get their zero one back; the
    resumed run left them None, so SGD skipped every BN branch drawn before the kill until it was
    drawn again (31 tensors differed after a CLI resume)."""
    c = cfg(epochs=3, lr_schedule="multistep", deterministic=device == "cuda", zero_grad=zero_grad)
    torch.manual_seed(0)
    full = Trainer(small_cnn(precisions=SET, width=8), tiny_data(), c, str(tmp_path / "full"),
                   val_set=tiny_data(64), device=device).fit()
    # "killed" in the middle of epoch 2: the last checkpoint is the end of epoch 1
    torch.manual_seed(0)
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(), c, str(tmp_path / "cut"),
            val_set=tiny_data(64), device=device).fit(stop_after_steps=6)
    open(tmp_path / "cut" / "last.pt.host.1.0a1b2c3d.tmp", "wb").write(b"half-written garbage")  # a kill during a save
    torch.manual_seed(123)  # the resumed process starts from other RNG states
    res = Trainer(small_cnn(precisions=SET, width=8), tiny_data(), c, str(tmp_path / "cut"), val_set=tiny_data(64),
                  device=device)
    assert res.resume() and res.epoch == 1
    res.fit()
    a, b = full.model.state_dict(), res.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.precision_counts == res.precision_counts
    # checkpoints load without executing pickled code
    ck = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert ck["epoch"] == 3 and load_checkpoint(str(tmp_path / "cut" / "best.pt"))["epoch"] >= 1


def test_deterministic_mode_holds_during_fit_only(tmp_path):
    seen = []
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark)
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1, deterministic=True), str(tmp_path),
                 on_epoch=lambda rec: seen.append((torch.are_deterministic_algorithms_enabled(), cudnn.deterministic,
                                                   cudnn.benchmark)))
    tr.fit()
    assert seen == [(True, True, False)]
    assert (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark) == before
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")  # cuBLAS' fixed workspace (set unless the user set one)
    assert json.load(open(tmp_path / "config.json"))["deterministic"] is True


def test_lr_schedules():
    c = cfg(lr_schedule="cyclic")
    f = lr_lambda(c, 100)
    assert f(0) == 0 and f(50) == 1 and f(100) == 0 and 0.4 < f(25) < 0.6
    g = lr_lambda(cfg(lr_schedule="multistep"), 100)
    assert g(49) == 1 and abs(g(50) - 0.1) < 1e-12 and abs(g(75) - 0.01) < 1e-12


def test_multistep_milestones_never_fall_before_the_first_step(tmp_path):
    """int() rounding keeps a long run's milestones where they were (the reference's whole steps);
    a run too short to reach a milestone's first whole step trains its first step at the set lr
    (milestones at step 0 trained a 1-step run at 0.01 x lr)."""
    c = cfg(lr_schedule="multistep")
    for total in (100, 101, 7, 160 * 391):
        g = lr_lambda(c, total)
        for m, after in ((int(0.5 * total), 0.1), (int(0.75 * total), 0.01)):
            assert g(m - 1) > after and g(m) == pytest.approx(after), (total, m)
    assert lr_lambda(c, 1)(0) == 1 and lr_lambda(c, 1)(1) == pytest.approx(0.01)
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1, lr_schedule="multistep"),
                 str(tmp_path)).fit()
    assert tr.step == 1 and json.loads((tmp_path / "metrics.jsonl").read_text())["lr"] == 0.05


def test_interrupted_checkpoint_save_leaves_no_tmp_and_the_previous_file(tmp_path, monkeypatch):
    """A Ctrl-C (or an error) while torch.save writes: the previous checkpoint stays, and no
    temporary file is left in the run folder."""
    import dwq.train.checkpoint as C

    path = str(tmp_path / "last.pt")
    save_checkpoint(path, {"epoch": 1})
    before = open(path, "rb").read()

    def cut(state, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(C.torch, "save", cut)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.setattr(C.torch, "save", lambda state, f: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 2})
    assert sorted(os.listdir(tmp_path)) == ["last.pt"] and open(path, "rb").read() == before


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    """config.json and every checkpoint hold the run's id: a last.pt copied in from another run (same
    epoch count) is refused, as is one that metrics.jsonl does not end at; the run's own resumes."""
    import shutil

    def one_epoch(name):
        return Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path / name)).fit()

    a, b = one_epoch("a"), one_epoch("b")
    run_id = json.load(open(tmp_path / "a" / "config.json"))["run_id"]
    assert run_id == a.run_id != b.run_id
    assert load_checkpoint(str(tmp_path / "a" / "last.pt"))["config"]["run_id"] == run_id
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "a", mixed)
    shutil.copy(tmp_path / "b" / "last.pt", mixed / "last.pt")
    again = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2), str(mixed))
    with pytest.raises(CheckpointError, match=re.escape(f"not the checkpoint of the run in {mixed}: its run id is "
                                                        f"{b.run_id}, config.json's is {run_id}")):
        again.resume()
    shutil.copy(tmp_path / "a" / "last.pt", mixed / "last.pt")
    with open(mixed / "metrics.jsonl", "a") as f:  # two epochs past the checkpoint: not this checkpoint's run
        f.write(json.dumps({"epoch": 2}) + "\n" + json.dumps({"epoch": 3}) + "\n")
    with pytest.raises(CheckpointError, match="it has trained 1 epoch, and metrics.jsonl ends at epoch 3"):
        again.resume()
    res = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2), str(tmp_path / "a"))
    assert res.resume() and res.run_id == run_id
    res.fit()
    assert json.load(open(tmp_path / "a" / "config.json"))["run_id"] == run_id


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="unknown training attack"):
        cfg(attack="bim").validate()
    with pytest.raises(ValueError, match="epsilon"):
        cfg(epsilon=8.0).validate()
    for kw, message in ((dict(val_every=0), "val_every must be >= 1 (an int), got 0"),
                        (dict(batch_size=2.5), "batch_size must be >= 1 (an int), got 2.5"),
                        (dict(attack_iters=True), "attack_iters must be >= 1 (an int), got True"),
                        (dict(val_pgd_steps=-3), "val_pgd_steps must be >= 0 (an int), got -3"),
                        (dict(lr_gamma=-1.0), "lr_gamma > 0; got lr=0.05, weight_decay=0.0005, momentum=0.9, "
                                              "lr_gamma=-1.0"),
                        (dict(attack="fgsm-rs", epsilon=0.9, alpha=None),
                         "the default step size (alpha = 1.25ε of fgsm-rs); give alpha. It must be in [0, 1]"),
                        (dict(precisions=[]), "precisions must not be empty"),
                        (dict(precisions=[4, "4", 8]), "precisions must not repeat"),
                        (dict(lr=float("inf")), "need finite lr > 0"),
                        (dict(seed=-1), "seed must be an int in 0..2^63 - 1, got -1"),
                        # a string switch is true: random_precision="false" trained with random precision
                        (dict(random_precision="false"), "random_precision must be True or False, got 'false'"),
                        (dict(amp="no"), "amp must be True or False, got 'no'"),
                        (dict(lr=True), "lr must be a number, got True"),
                        (dict(momentum="0.9"), "momentum must be a number, got '0.9'"),  # (a TypeError from <=)
                        # an attack of radius or step 0: no attack under an attack's name (dwq train refuses it)
                        (dict(epsilon=0), "epsilon must be in (0, 1]"),
                        (dict(attack="fgsm", alpha=0.0), "step size (alpha) must be in (0, 1]")):
        with pytest.raises(ValueError, match=re.escape(message)):
            cfg(**kw).validate()
    assert cfg(attack="none", epsilon=0).validate().epsilon == 0


def test_the_attack_step_defaults_to_the_cli_s():
    """TrainConfig's step was a fixed 2/255 for every attack (FGSM-RS then stepped ε/4 of an ε 8/255 run,
    not the documented 1.25ε; PGD at ε 0.3 stepped 0.0078): None now resolves as dwq train's --alpha."""
    for attack, eps, step in (("pgd", 8 / 255, 2 / 255), ("pgd", 0.3, 0.075), ("fgsm", 0.1, 0.1), ("free", 0.1, 0.1),
                              ("fgsm-rs", 8 / 255, 10 / 255), ("none", 0.1, None)):
        c = TrainConfig(attack=attack, epsilon=eps).validate()
        assert c.alpha == pytest.approx(step) if step is not None else c.alpha is None, (attack, c.alpha)
    assert TrainConfig(attack="fgsm", epsilon=0.1, alpha=0.02).validate().alpha == 0.02
    for attack, step in (("pgd", 2 / 255), ("fgsm", 10 / 255), ("fgsm-rs", 10 / 255)):  # reference=True: its own
        assert TrainConfig(attack=attack, epsilon=0.3, reference=True).validate().alpha == step


def test_the_largest_seed_the_cli_takes_trains(tmp_path):
    """The seeds derived for the random starts and the data order once left manual_seed's 64 bits
    (seeds from about 2^44 up): a raw 'Overflow when unpacking long long'."""
    top = 2**63 - 1
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1, seed=top), str(tmp_path)).fit()
    assert tr.step == 1
    assert epoch_batches(8, 8, top, 3) != epoch_batches(8, 8, top, 4)  # still a seeded order per epoch
    assert epoch_batches(8, 8, 5, 1) == [torch.randperm(8, generator=torch.Generator().manual_seed(5 * 100003 + 1)).tolist()]


def test_rng_states_of_a_machine_with_more_gpus_restore_on_one_with_fewer(monkeypatch):
    """A checkpoint keeps one CUDA RNG state per GPU of the machine that wrote it; setting them all on a
    machine with fewer GPUs failed (an index past torch.cuda.default_generators) at CUDA's start."""
    from dwq.train.checkpoint import rng_state, set_rng_state

    st = rng_state()
    st["cuda"] = [torch.zeros(16, dtype=torch.uint8) + i for i in range(4)]  # written on 4 GPUs
    got = []

    def set_all(states):  # what torch does: a state per device index, an error past the last
        assert len(states) <= 2, f"{len(states)} CUDA RNG states for 2 GPUs"
        got.extend(states)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    set_rng_state(st)
    assert [int(t[0]) for t in got] == [0, 1]


def test_each_metrics_line_is_on_disk_before_its_last_pt(tmp_path, monkeypatch):
    """The line was appended without fsync while last.pt is fsynced and renamed: a machine crash could
    keep last.pt of epoch N and lose the line, and resume() then refuses the folder as another run's."""
    import dwq._atomic

    events, metrics = [], str(tmp_path / "metrics.jsonl")
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd):
        on_disk = os.path.exists(metrics) and os.fstat(fd).st_ino == os.stat(metrics).st_ino
        events.append(("fsync", "metrics.jsonl" if on_disk else "other"))
        fsync(fd)

    def logged_replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(dwq._atomic.os, "replace", logged_replace)
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2, attack="none"), str(tmp_path)).fit()
    lasts = [i for i, e in enumerate(events) if e == ("replace", "last.pt")]
    lines = [i for i, e in enumerate(events) if e == ("fsync", "metrics.jsonl")]
    assert len(lasts) == len(lines) == 2 and all(m < p for m, p in zip(lines, lasts)), events


def test_mnist5k_splits_are_read_in_memory_without_loader_workers(monkeypatch):
    """train_val_split gives Subsets, which lost the TensorDataset fast path: every dwq train run on
    mnist5k started --workers 2 loader processes per epoch and read image by image, while its help and
    its note said mnist5k is held in memory and uses none."""
    from dwq.data import train_val_split
    from dwq.train.batches import BatchLoader, collate

    train, _ = train_val_split(load_mnist5k("train"), 0.1, seed=3)
    part = torch.utils.data.Subset(train, range(50))  # --train-subset 50
    batches = epoch_batches(len(part), 16, 0, 0)
    expected = [(torch.stack([part[i][0] for i in b]), torch.stack([part[i][1] for i in b])) for b in batches]

    def no_loader(*args, **kwargs):
        raise AssertionError("a DataLoader (loader workers) for tensors in memory")

    monkeypatch.setattr(torch.utils.data, "DataLoader", no_loader)
    got = list(BatchLoader(part, batches, num_workers=2, seed=0))
    assert len(got) == len(expected) == 4
    for (x, y), (ex, ey) in zip(got, expected):
        assert torch.equal(x, ex) and torch.equal(y, ey) and y.dtype == ey.dtype
    assert torch.equal(collate(part, [3, 1])[0], torch.stack([part[3][0], part[1][0]]))


class _NotInMemory(torch.utils.data.Dataset):
    """Items made on demand: BatchLoader reads them through loader workers."""

    def __len__(self):
        return 32

    def __getitem__(self, i):
        return torch.full((3, 4, 4), float(i)), i % 10


def test_an_interrupted_epoch_shuts_its_loader_workers_down_quietly(monkeypatch):
    """A scheduler's SIGTERM reaches the loader workers too (the process group); torch's shutdown of
    the killed workers then raised inside the iterator's __del__, and Python printed an ignored
    "DataLoader worker ... is killed by signal: Terminated" traceback after dwq's one-line message.
    The loader now shuts its workers down itself when the loop ends or is interrupted. (The killed
    workers are stood in for: the shutdown raises as it did then, once.)"""
    from torch.utils.data import dataloader

    from dwq.train.batches import BatchLoader

    real, calls = dataloader._MultiProcessingDataLoaderIter._shutdown_workers, []

    def shutdown_after_a_kill(self):
        real(self)
        calls.append(id(self))
        if len(calls) == 1:
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated. ")

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "_shutdown_workers", shutdown_after_a_kill)
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    batches = iter(BatchLoader(_NotInMemory(), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], num_workers=1))
    x, y = next(batches)
    assert torch.equal(y, torch.tensor([0, 1, 2, 3]))
    batches.close()  # (what an exception out of the epoch's loop does to it)
    del batches, x, y
    gc.collect()  # (the iterator's own __del__ has run before the hooks are restored)
    assert calls and ignored == []


class _ReadBy(torch.utils.data.Dataset):
    """MNIST images not in memory that note which process read each one."""

    def __init__(self, n, log):
        self.x, self.y = tiny_data(n).tensors
        self.log = log

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return self.x[i], self.y[i]


@pytest.mark.filterwarnings("ignore:SwitchableBatchNorm2d:UserWarning")  # (the untrained model's BN branches)
@pytest.mark.filterwarnings("ignore:dwq. activation quantizers:UserWarning")
def test_validation_reads_an_image_folder_through_the_loader_workers(tmp_path):
    """--workers served training only: the held-out images (ImageNet's default 10%, ~128k JPEGs) and
    the reference's test-set selection were decoded in the training process, one by one, each epoch."""
    train, val, test = (_ReadBy(n, tmp_path / f"{name}.log") for n, name in ((64, "train"), (32, "val"), (32, "test")))
    c = cfg(epochs=1, batch_size=32, val_pgd_steps=1, test_select=True, test_select_steps=1)
    Trainer(small_cnn(precisions=SET, width=8), train, c, str(tmp_path / "run"), val_set=val, test_set=test,
            num_workers=1).fit()
    for name in ("train", "val", "test"):
        pids = set((tmp_path / f"{name}.log").read_text().split())
        assert pids and str(os.getpid()) not in pids, (name, pids)
    from dwq.train import evaluate_clean_pgd

    model = small_cnn(precisions=SET, width=8)
    assert evaluate_clean_pgd(model, val, SET, 0.1, 0.05, 1, "cpu", 16, num_workers=1) == \
        evaluate_clean_pgd(model, val, SET, 0.1, 0.05, 1, "cpu", 16)  # (the same batches either way)


def test_best_pt_never_holds_an_epoch_that_resume_redoes(tmp_path, monkeypatch):
    """best.pt was written before the epoch's last.pt: a kill between them left best.pt holding an epoch
    that resume() redoes (its metrics line dropped), kept for good if the redone epoch scored lower. It
    is now written after last.pt, and a resume rewrites one that the interrupted epoch did not write."""
    import dwq.train.loop as loop

    scores = iter([0.1 * e for e in range(1, 10)])  # every epoch better: each one chooses best.pt
    monkeypatch.setattr(loop, "evaluate_clean_pgd", lambda *a, **k: (0.5, next(scores)))
    save = loop.save_checkpoint

    def killed_at(name, epoch):
        def save_or_die(path, state):
            if os.path.basename(path) == name and state["epoch"] == epoch:
                raise KeyboardInterrupt  # the kill, just before this file is written
            save(path, state)
        return save_or_die

    def epoch_of(name, out):
        return load_checkpoint(str(out / name))["epoch"]

    def trainer(out):
        return Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=3, attack="none"), str(out),
                       val_set=tiny_data(8))

    for name in ("last.pt", "best.pt"):
        out = tmp_path / name
        monkeypatch.setattr(loop, "save_checkpoint", killed_at(name, 2))
        with pytest.raises(KeyboardInterrupt):
            trainer(out).fit()
        monkeypatch.setattr(loop, "save_checkpoint", save)
        res = trainer(out)
        assert res.resume()
        assert epoch_of("best.pt", out) == res.epoch == epoch_of("last.pt", out), name  # the line marks it best
        res.fit()
        assert epoch_of("best.pt", out) == 3


def test_trainer_refuses_settings_that_would_fall_back_silently(tmp_path):
    """precisions=None without RPT would train the set's first precision only while validation (and so
    best.pt) averaged over every branch; an epoch without a step would train nothing without a word."""
    with pytest.raises(ValueError, match=r"precisions=None means the model's whole set \['2', '3', '4', '6', '8'\]"):
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(precisions=None, random_precision=False),
                str(tmp_path))
    for n, bs, world in ((0, 64, 1), (64, 1, 2), (3, 3, 4)):
        with pytest.raises(ValueError, match=f"no training step in an epoch: {n} training images, batch_size {bs}"):
            Trainer(small_cnn(precisions=SET, width=8), tiny_data(n), cfg(batch_size=bs), str(tmp_path), world=world)


def test_labels_beyond_the_models_outputs_are_refused_before_training(tmp_path):
    """A 10-output model on labels up to 12 (or a validation set with them) failed only at the first
    step's cross-entropy (on CUDA: a device-side assert ending the CUDA context)."""
    x, y = load_mnist5k("train").tensors
    bad = TensorDataset(x[:64].clone(), torch.where(y[:64] == 3, 12, y[:64]))
    with pytest.raises(ValueError, match=r"train_set holds labels in \[0, 12\], but the model has 10 outputs"):
        Trainer(small_cnn(precisions=SET, width=8), bad, cfg(), str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"val_set holds labels in \[0, 12\]"):
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(), str(tmp_path / "b"),
                val_set=torch.utils.data.Subset(bad, list(range(10, 40))))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # the check's forward leaves the model as it was: parameters, buffers (ranges, BN statistics), modes
    model = small_cnn(precisions=SET, width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, tiny_data(64), cfg(), str(tmp_path / "c"))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in model.modules())


def test_empty_sets_bare_milestones_and_a_run_cut_in_its_first_epoch_are_named(tmp_path):
    """An empty test set with test_select trained a whole epoch, then a ZeroDivisionError; lr_milestones=(0.5)
    (a float) a bare "not iterable"; a folder whose run failed in its first epoch (config.json, no
    last.pt) was refused with "continue that run with resume()", which returns False there."""
    from dwq.train.validation import evaluate_clean_pgd

    m, data = small_cnn(precisions=[4], width=4), tiny_data(32)
    empty = TensorDataset(data.tensors[0][:0], data.tensors[1][:0])
    with pytest.raises(ValueError, match="needs a test_set with images; got an empty one"):
        Trainer(m, data, cfg(test_select=True, precisions=[4], random_precision=False), str(tmp_path / "a"),
                test_set=empty)
    with pytest.raises(ValueError, match=r"needs images and precisions, got 0 images"):
        evaluate_clean_pgd(m, empty, [4], 0.1, 0.05, 1, "cpu")
    for bad in (0.5, "0.5"):
        with pytest.raises(ValueError, match=r"lr_milestones must be a tuple of fractions of the run, e.g. \(0.5, 0.75\)"):
            cfg(lr_schedule="multistep", lr_milestones=bad).validate()
    with pytest.raises(ValueError, match=r"lr milestones are fractions of the run in \(0, 1\), got \[0.5, 1\]"):
        cfg(lr_schedule="multistep", lr_milestones=(0.5, 1)).validate()  # after the last step: never applied
    out = tmp_path / "b"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what fit() wrote before a first epoch that raised
    tr = Trainer(m, data, cfg(epochs=1, precisions=[4], random_precision=False), str(out))
    assert not tr.resume()
    with pytest.raises(ValueError, match=r"stopped before its first epoch ended \(config.json, no last.pt\): nothing "
                                         r"to resume.*remove_run_files"):
        tr.fit()


def test_a_new_run_refuses_a_folder_holding_a_run(tmp_path):
    """fit() of a new Trainer into another run's folder appended to its metrics.jsonl and left its
    best.pt beside the new config.json; the same Trainer may call fit() again, a resumed one too."""
    out = str(tmp_path / "run")
    first = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), out, val_set=tiny_data(16)).fit()
    files = sorted(os.listdir(out))
    with pytest.raises(ValueError, match=r"already holds a run \(config.json, metrics.jsonl, best.pt, last.pt\)"):
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), out).fit()
    assert sorted(os.listdir(out)) == files
    first.cfg.epochs = 2
    first.fit()  # the same run, continued
    again = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=3), out, val_set=tiny_data(16))
    assert again.resume()
    again.fit()
    assert [json.loads(ln)["epoch"] for ln in open(os.path.join(out, "metrics.jsonl"))] == [1, 2, 3]


def test_api_resume_refuses_another_config_and_leaves_the_callers_config_alone(tmp_path):
    c = cfg(epochs=1)
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), c, str(tmp_path)).fit()
    assert c.zero_grad is None and c.test_select is None  # validate() filled in the Trainer's copy only
    other = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2, attack="fgsm", epsilon=0.2),
                    str(tmp_path))
    with pytest.raises(CheckpointError, match=r"another config: attack 'pgd' there, 'fgsm' here; epsilon 0.1 there, "
                                              r"0.2 here"):
        other.resume()
    longer = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2, progress=True, val_every=3),
                     str(tmp_path))
    assert longer.resume() and longer.fit().epoch == 2  # epochs, progress and val_every may change
    # fewer epochs than done: fit() did nothing and rewrote config.json with the fewer
    with open(tmp_path / "config.json") as f:
        before = f.read()
    shorter = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path))
    with pytest.raises(ValueError, match="has trained 2 epochs; epochs=1 ends before that"):
        shorter.resume()
    with open(tmp_path / "config.json") as f:
        assert f.read() == before


def test_two_runs_of_one_config_write_the_same_checkpoint(tmp_path):
    """numpy's and Python's RNG states, kept in every checkpoint, were never seeded: two runs of one config
    wrote different state digests (and a resume set the process's numpy RNG to a leftover state)."""
    import numpy as np

    import random

    digests = []
    for k in range(2):
        np.random.seed(k)  # whatever state the process had
        random.seed(k)
        Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path / str(k))).fit()
        digests.append(load_checkpoint(str(tmp_path / str(k) / "last.pt"))["state_sha256"])
    assert digests[0] == digests[1]


def test_api_resume_refuses_another_training_set_and_warns_of_another_thread_count(tmp_path):
    """Only the config was compared: a resume on 100 of the run's 128 images went on with other batches
    and another schedule, silently; a CPU resume with another thread count is not the uninterrupted run
    (sums split by thread round differently), which it now says."""
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(128), cfg(epochs=1), str(tmp_path)).fit()
    fewer = Trainer(small_cnn(precisions=SET, width=8), tiny_data(100), cfg(epochs=2), str(tmp_path))
    with pytest.raises(CheckpointError, match="the checkpoint's run trained on 128 images; this training set has 100"):
        fewer.resume()
    threads = torch.get_num_threads()
    ck = load_checkpoint(str(tmp_path / "last.pt"))
    assert ck["threads"] == threads and ck["train_images"] == 128
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=f"resuming with {threads + 1} CPU thread.* trained with {threads}"):
            assert Trainer(small_cnn(precisions=SET, width=8), tiny_data(128), cfg(epochs=2), str(tmp_path)).resume()
    finally:
        torch.set_num_threads(threads)


def test_fit_after_a_simulated_kill_is_refused(tmp_path):
    """fit(stop_after_steps) leaves the Trainer inside an epoch: a second fit() restarted that epoch,
    training its first batches twice and running past the schedule (14 updates of a 12-update run)."""
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(128), cfg(epochs=2), str(tmp_path))
    tr.fit(stop_after_steps=3)
    with pytest.raises(RuntimeError, match=r"stopped inside epoch 2 at step 3 \(stop_after_steps\)"):
        tr.fit()
    assert tr.step == 3


def test_resume_with_more_epochs_takes_the_stretched_schedule_from_its_first_update(tmp_path):
    """The optimizer kept the old schedule's LR at the checkpoint's step; the first update after a resume
    with more epochs used it (0.01 x lr here, past both old milestones) instead of the new schedule's."""
    c2, c6 = cfg(epochs=2, lr_schedule="multistep"), cfg(epochs=6, lr_schedule="multistep")
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(256), c2, str(tmp_path)).fit()
    res = Trainer(small_cnn(precisions=SET, width=8), tiny_data(256), c6, str(tmp_path))
    assert res.resume() and res.step == 8 and res.total_steps == 24  # new milestones at steps 12 and 18
    lrs = []
    for _ in range(5):
        res.train_batch(*tiny_data(64).tensors)
        lrs.append(res.lr_used)
    assert lrs == [0.05, 0.05, 0.05, 0.05, pytest.approx(0.005)]
    assert lrs[:4] == [0.05 * lr_lambda(c6, 24)(s) for s in range(8, 12)]


class _RandomFlips(torch.utils.data.Dataset):
    """An augmented dataset as torchvision's: a random flip drawn from torch's RNG per item."""

    def __init__(self, n):
        self.x, self.y = tiny_data(n).tensors

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        return (x.flip(-1) if torch.rand(()) < 0.5 else x), int(self.y[i])


def test_augmentation_does_not_depend_on_the_number_of_workers(tmp_path, monkeypatch):
    """Each item's augmentation is drawn from (seed, epoch, index): 0 and 1 loader workers train the same
    weights, so a resume may change --workers (the weights differed by 0.18 before)."""
    runs = []
    for workers in (0, 1):
        torch.manual_seed(0)
        runs.append(Trainer(small_cnn(precisions=SET, width=8), _RandomFlips(128), cfg(epochs=2),
                            str(tmp_path / f"w{workers}"), num_workers=workers).fit().model.state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
    state = torch.get_rng_state()
    _ = [x for x, _ in torch.utils.data.DataLoader(_RandomFlips(4))]  # plain loading draws from the global RNG
    assert not torch.equal(state, torch.get_rng_state())
    from dwq.train.batches import SeededItems
    state = torch.get_rng_state()
    a = [SeededItems(_RandomFlips(8), 0, 1)[i][0] for i in range(8)]
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG untouched
    assert all(torch.equal(u, SeededItems(_RandomFlips(8), 0, 1)[i][0]) for i, u in enumerate(a))
    # nor the GPUs' generators, which torch.manual_seed reseeded (the fork gives back the CPU's only)
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    assert torch.equal(SeededItems(_RandomFlips(8), 0, 1)[3][0], a[3]) and seeded == []


# ----------------------------------------------------------------------------- DDP
class NoBNNet(nn.Module):
    """No BatchNorm and a full-precision set: per-rank batch statistics cannot differ, so 2
    DDP ranks with half batches must match one process exactly up to float summation order."""

    def __init__(self):
        super().__init__()
        self.conv = dwq.QConv2d(1, 4, 3, stride=2, precisions=[None])
        self.fc = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _ddp_cfg(**kw):
    # batch 63 over 2 ranks: shares of 32 and 31 (250 images: a last global batch of 61)
    return cfg(**{**dict(attack="fgsm", precisions=None, random_precision=False, epochs=2, batch_size=63), **kw})


DDP_RESUMED = ("fgsm-rs", "free")  # per-rank state: the random-start generator, free training's perturbation


def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)

    def run(name, c, stop=None, resume=False):
        torch.manual_seed(0)
        tr = Trainer(NoBNNet(), tiny_data(250), c, os.path.join(out, name), rank=rank, world=world)
        if resume:
            assert tr.resume()
        tr.fit(stop_after_steps=stop)
        torch.save({k: v.detach().clone() for k, v in tr.model.state_dict().items()},
                   os.path.join(out, name, f"rank{rank}.pt"))
        del tr  # (the DDP wrapper and its reducer go before the process group does)

    run("fgsm", _ddp_cfg())
    for attack in DDP_RESUMED:
        c = _ddp_cfg(attack=attack, free_replays=2)
        run(f"{attack}-full", c)
        run(f"{attack}-cut", c, stop=10 if attack == "free" else 5)  # killed in epoch 2 (4 updates an epoch; free: 8)
        run(f"{attack}-cut", c, resume=True)
    cleanup(synchronize=True)


def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    """2 ranks with uneven shares train the single-process weights and report the global batches'
    loss and accuracy; a killed DDP run resumes bit-exactly, each rank with its own random starts and
    free-training perturbation."""
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp")), nprocs=2, join=True)
    torch.manual_seed(0)
    single = Trainer(NoBNNet(), tiny_data(250), _ddp_cfg(), str(tmp_path / "single")).fit()

    def weights(name, rank):
        return torch.load(tmp_path / "ddp" / name / f"rank{rank}.pt", weights_only=True)

    r0, r1 = weights("fgsm", 0), weights("fgsm", 1)
    for k, v in single.model.state_dict().items():
        assert torch.equal(r0[k], r1[k]), k  # ranks stay in sync
        torch.testing.assert_close(r0[k], v, rtol=1e-5, atol=1e-6)
    metrics = [[json.loads(ln) for ln in open(p / "metrics.jsonl")] for p in (tmp_path / "ddp" / "fgsm", tmp_path / "single")]
    for d, o in zip(*metrics):
        assert d["train_loss"] == pytest.approx(o["train_loss"], rel=1e-5) and d["train_acc"] == o["train_acc"]
    for attack in DDP_RESUMED:
        full, cut = weights(f"{attack}-full", 0), weights(f"{attack}-cut", 1)
        for k in full:
            assert torch.equal(full[k], cut[k]), (attack, k)
        ck = load_checkpoint(str(tmp_path / "ddp" / f"{attack}-cut" / "last.pt"))
        assert len(ck["rank_states"]) == 2 and ck["epoch"] == 2


def test_epoch_batches_leave_out_a_last_batch_smaller_than_the_world():
    """9 samples in batches of 4 over 2 ranks: the last batch (1 sample) would leave rank 1 an empty
    share, so both ranks leave it out; a single process keeps it; the ranks split every batch."""
    one = epoch_batches(9, 4, seed=3, epoch=1)
    r0, r1 = (epoch_batches(9, 4, seed=3, epoch=1, rank=r, world=2) for r in (0, 1))
    assert [len(b) for b in one] == [4, 4, 1]
    assert len(r0) == len(r1) == 2 and all(len(b) == 2 for b in r0 + r1)
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in one[:2]]
    assert [len(b) for b in epoch_batches(10, 4, seed=3, epoch=1, rank=1, world=2)] == [2, 2, 1]


def test_rank_batches_weigh_each_share_by_its_part_of_the_global_batch():
    """7 samples in batches of 4 over 2 ranks: the global batches hold 4 and 3, rank 0 gets 2 and 2,
    rank 1 gets 2 and 1; a share's weight is its part of its batch times the ranks, so the ranks'
    weights of a batch average to 1 (DDP averages the ranks' gradients)."""
    from dwq.train.batches import rank_batches

    r0, r1 = (rank_batches(7, 4, seed=3, epoch=1, rank=r, world=2) for r in (0, 1))
    assert [s for _, s in r0] == [1.0, 2 * 2 / 3] and [s for _, s in r1] == [1.0, 1 * 2 / 3]
    assert [b for b, _ in r0] == epoch_batches(7, 4, seed=3, epoch=1, rank=0, world=2)
    assert all(s == 1.0 for _, s in rank_batches(7, 4, seed=3, epoch=1))  # one process: its batch whole


def test_resume_drops_metric_lines_its_checkpoint_does_not_cover(tmp_path):
    """An epoch writes its metrics line, then last.pt: killed between the two, the line is ahead of the
    checkpoint (or cut short); resume drops it, and the resumed epoch writes it again, once."""
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path)).fit()
    path = tmp_path / "metrics.jsonl"
    first = path.read_text()
    with open(path, "a") as f:
        f.write(json.dumps({"epoch": 2, "train_loss": 1.0}) + "\n" + '{"epoch": 3, "trai')
    tr2 = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2), str(tmp_path))
    assert tr2.resume() and path.read_text() == first
    tr2.fit()
    assert [json.loads(ln)["epoch"] for ln in path.read_text().splitlines()] == [1, 2]
    assert tr.epoch == 1


def test_epoch_metrics_are_read_once_per_epoch(tmp_path):
    """train_batch returns device tensors (the loop reads them once per epoch, so a step makes no
    host sync on accelerators); the epoch record still holds plain floats."""
    tr = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path))
    x, y = tiny_data(16).tensors
    l, c, n = tr.train_batch(x, y)
    assert isinstance(l, torch.Tensor) and l.dim() == 0 and isinstance(c, torch.Tensor) and n == 16
    assert 0 <= c.item() <= 16 and l.item() > 0
    tr.fit()
    rec = json.loads(open(tmp_path / "metrics.jsonl").readline())
    assert isinstance(rec["train_loss"], float) and 0 <= rec["train_acc"] <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the sync check is a CUDA mode)")
@pytest.mark.parametrize("attack", ["pgd", "fgsm-rs", "free"])
def test_cuda_training_step_makes_no_host_sync(tmp_path, attack):
    """Issue 10: a whole RPT step (precision draw, attack with random start, update) under
    torch.cuda.set_sync_debug_mode("error"), fp32 (GradScaler with AMP reads its inf check on the host
    by design, once per step)."""
    from dwq.models import preact_resnet18

    m = preact_resnet18(num_classes=10, precisions=[4, 8], switchable_bn=True)
    data = TensorDataset(torch.rand(64, 3, 32, 32), torch.randint(10, (64,)))  # no MNIST file needed there
    tr = Trainer(m, data, cfg(attack=attack, attack_iters=2, free_replays=2, epochs=1, precisions=[4, 8]),
                 str(tmp_path), device="cuda")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g).cuda()
    y = torch.randint(10, (8,), generator=g).cuda()
    tr.train_batch(x, y)  # warm-up: cudnn, allocator, optimizer state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        tr.train_batch(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_compiled_training_runs_and_is_recorded(tmp_path):
    """TrainConfig(compile=True): the attack and the update run through torch.compile (one graph per
    precision); the run completes with finite losses and config.json says it was compiled."""
    import torch._inductor.config as inductor_config

    m = small_cnn(precisions=[2, 4], width=4, switchable_bn=True)
    with inductor_config.patch({"eager_numerics.division_rounding": False}):
        tr = Trainer(m, tiny_data(64), cfg(epochs=1, attack_iters=1, batch_size=32, precisions=[2, 4],
                                           compile=True), str(tmp_path))
        # the quantizers' x / s correctly rounded on GPUs too (dwq.ops.fake_quant.inductor_exact_division)
        assert inductor_config.eager_numerics.division_rounding
    assert type(tr._net).__name__ == "OptimizedModule" and tr._attack_net is tr._net
    tr.fit()
    rec = json.loads(open(tmp_path / "metrics.jsonl").readline())
    assert math.isfinite(rec["train_loss"]) and rec["train_loss"] > 0
    assert json.load(open(tmp_path / "config.json"))["compile"] is True
    assert sum(rec["precision_counts"].values()) == 2
    from dwq.nn import SwitchableBatchNorm2d
    trained = {k for k, v in rec["precision_counts"].items() if v}  # compiled forwards: marked by the trainer
    assert all(set(s.untrained_precisions()) == {"2", "4"} - trained for s in m.modules()
               if isinstance(s, SwitchableBatchNorm2d))


def test_batches_call_a_subclass_getitem_and_collate_as_dataloader_does():
    """A TensorDataset subclass (an augmentation in __getitem__) was read as raw tensors, its __getitem__
    never called; a dataset of numpy images failed torch.stack, and [1]-shaped labels came out [B] where
    DataLoader's workers give [B, 1]."""
    import numpy as np

    from dwq.train.batches import collate

    class Shifted(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x + 100, y

    ds = Shifted(torch.zeros(4, 1), torch.arange(4))
    x, y = collate(ds, [0, 2])
    assert torch.equal(x, torch.full((2, 1), 100.0)) and y.tolist() == [0, 2]
    sub = torch.utils.data.Subset(ds, [3, 1])
    assert torch.equal(collate(sub, [0])[0], torch.full((1, 1), 100.0))

    class ShiftedSubset(torch.utils.data.Subset):  # a Subset's own __getitem__ too
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x + 100, y

        def __getitems__(self, idx):
            return [self[i] for i in idx]

    plain = TensorDataset(torch.zeros(4, 1), torch.arange(4))
    assert torch.equal(collate(ShiftedSubset(plain, [3, 1]), [0])[0], torch.full((1, 1), 100.0))

    class Numpy(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, dtype=np.float32), torch.tensor([i])

    x, y = collate(Numpy(), [0, 1])
    want = next(iter(torch.utils.data.DataLoader(Numpy(), batch_size=2)))
    assert torch.equal(x, want[0]) and torch.equal(y, want[1]) and y.shape == (2, 1)


def test_remove_run_files_leaves_the_users_files(tmp_path):
    """Every *.tmp of the folder went, my_notes.tmp included."""
    from dwq._atomic import tmp_name
    from dwq.train.run_folder import remove_run_files

    for name in ("config.json", "my_notes.tmp", "other.txt", os.path.basename(tmp_name("metrics.jsonl")),
                 os.path.basename(tmp_name("last.pt"))):
        (tmp_path / name).write_text("x")
    remove_run_files(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["my_notes.tmp", "other.txt"]

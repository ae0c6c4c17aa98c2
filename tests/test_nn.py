"""Switchable layers and the precision API."""
import re
import warnings

import pytest
import torch
from torch import nn

import dwq
from dwq.nn import QConv2d, QLinear, RandomPrecision, SwitchableBatchNorm2d
from dwq.quant import choose_qparams, fake_quantize


def small_net(precisions=(4, 8, None)):
    return nn.Sequential(
        QConv2d(3, 6, 3, padding=1, precisions=precisions),
        SwitchableBatchNorm2d(6, precisions),
        nn.ReLU(),
        nn.Flatten(),
        QLinear(6 * 5 * 5, 3, precisions=precisions),
    )


def test_qconv_equals_conv_on_fake_quantized_operands():
    conv = QConv2d(3, 4, 3, stride=2, padding=1, precisions=[5]).eval()
    x = torch.randn(2, 3, 9, 9)
    conv.train()
    y = conv(x)
    sx, zx = choose_qparams(x.min().reshape(1), x.max().reshape(1), 5)
    w = conv.weight.detach()
    sw, zw = choose_qparams(w.reshape(4, -1).amin(1), w.reshape(4, -1).amax(1), 5)
    expected = nn.functional.conv2d(fake_quantize(x, sx, zx, 5), fake_quantize(w, sw, zw, 5, 0), conv.bias, 2, 1)
    assert torch.equal(y, expected)


def test_full_precision_is_the_torch_layer():
    conv = QConv2d(3, 4, 3, precisions=[None])
    ref = nn.Conv2d(3, 4, 3)
    ref.load_state_dict({"weight": conv.weight, "bias": conv.bias})
    x = torch.randn(1, 3, 6, 6)
    assert torch.equal(conv(x), ref(x))
    lin = QLinear(5, 2, precisions=[None])
    assert torch.equal(lin(torch.ones(1, 5)), nn.functional.linear(torch.ones(1, 5), lin.weight, lin.bias))


def test_qlinear_quantizes_and_learns():
    lin = QLinear(8, 4, precisions=[3])
    x = torch.randn(16, 8)
    y = lin(x)
    assert not torch.allclose(y, nn.functional.linear(x, lin.weight, lin.bias))
    y.square().sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert lin.bias.grad is not None


def test_gradients_reach_input_and_weight():
    net = small_net()
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    for p in (4, 8, None):
        dwq.set_precision(net, p)
        net.zero_grad()
        x.grad = None
        net(x).sum().backward()
        assert x.grad.abs().sum() > 0
        assert net[0].weight.grad.abs().sum() > 0


def test_precision_changes_output():
    net = small_net().eval()
    x = torch.randn(2, 3, 5, 5)
    outs = {}
    for p in (4, 8, None):
        dwq.set_precision(net, p)
        outs[p] = net(x)
    assert not torch.equal(outs[4], outs[8]) and not torch.equal(outs[8], outs[None])


def test_sbn_branch_statistics_are_separate():
    sbn = SwitchableBatchNorm2d(3, [4, 8])
    sbn.train()
    sbn.set_precision(4)
    sbn(torch.randn(8, 3, 4, 4) + 5)
    assert sbn.bn[0].running_mean.mean() > 0.3
    assert torch.equal(sbn.bn[1].running_mean, torch.zeros(3))
    assert sbn.active is sbn.bn[0]
    names = [n for n, _ in sbn.named_parameters()]
    assert names == ["bn.0.weight", "bn.0.bias", "bn.1.weight", "bn.1.bias"]


def test_unknown_precision_is_an_error():
    net = small_net()
    with pytest.raises(ValueError, match="not in the model's precision set"):
        dwq.set_precision(net, 6)
    with pytest.raises(ValueError, match="not in this layer's precision set"):
        net[1].set_precision(2)
    with pytest.raises(ValueError, match=r"precision must be in 2\.\.16, got 1"):  # (not the set's message)
        dwq.set_precision(net, 1)


def test_assigning_a_layer_precision_is_checked_and_normalized():
    """``layer.precision = 4`` stored a bare 4: the next forward failed in ``tuple.index`` (an SBN) or
    quantized at no precision it names; a width outside the set was taken too."""
    net = small_net().eval()
    x = torch.randn(2, 3, 5, 5)
    ref = dwq.precision(net, 4)
    want = net(x)
    ref.__exit__(None, None, None)
    for m in net.modules():
        if isinstance(m, dwq.nn.PrecisionModule):
            m.precision = 4
            assert m.precision == (4, 4)
    assert torch.equal(net(x), want) and dwq.get_precision(net) == 4
    with pytest.raises(ValueError, match=r"precision 6 is not in this layer's precision set \[4, 8, fp\]"):
        net[1].precision = 6
    assert net[1].precision == (4, 4)


def test_precision_context_restores():
    net = small_net()
    dwq.set_precision(net, 8)
    with dwq.precision(net, 4):
        assert dwq.get_precision(net) == 4
    assert dwq.get_precision(net) == 8
    with pytest.raises(RuntimeError):
        with dwq.precision(net, None):
            raise RuntimeError("boom")
    assert dwq.get_precision(net) == 8
    assert dwq.precision_set(net) == [4, 8, None]
    ctx = dwq.precision(net, 4)  # sets at once; only __exit__ restores
    del ctx
    assert dwq.get_precision(net) == 4


def test_mixed_weight_activation_bits():
    lin = QLinear(4, 2, precisions=[(2, 8), 8])
    lin.set_precision((2, 8))
    assert lin.w_bits == 2 and lin.a_bits == 8
    w_codes = fake_quantize(lin.weight.detach(), *lin.weight_quant.qparams(lin.weight, 2), 2, 0)
    assert w_codes.unique(dim=None).numel() <= 4 * 2
    assert dwq.precision_set(lin) == [(2, 8), 8]


def test_random_precision_is_seeded_and_covers_the_set():
    net = small_net()
    x = torch.randn(1, 3, 5, 5)

    def draws(seed):
        rpi = RandomPrecision(net, bits=[4, 8], seed=seed)
        seq = []
        for _ in range(30):
            rpi(x)
            seq.append(rpi.last_precision)
        return seq

    a, b, c = draws(0), draws(0), draws(1)
    assert a == b and a != c
    assert set(a) == {4, 8}
    with pytest.raises(ValueError, match="not in the model's set"):
        RandomPrecision(net, bits=[4, 6])


def test_random_precision_seeds_are_ints_and_opposite_seeds_differ():
    """random.Random seeds with abs(int): seed=-5 drew seed=5's sequence; a numpy int was refused with
    Python's two-line TypeError, a float or a string hashed silently."""
    np = pytest.importorskip("numpy", reason="numpy is not installed")
    net = small_net()

    def draws(seed):
        rpi = RandomPrecision(net, bits=[4, 8, None], seed=seed)
        return [rpi.draw() for _ in range(40)]

    assert draws(5) != draws(-5) and draws(-5) == draws(-5)
    assert draws(np.int64(5)) == draws(5)
    for bad in (2.5, "five", True):
        with pytest.raises(ValueError, match=f"RandomPrecision: seed must be an int, got {bad!r}"):
            RandomPrecision(net, seed=bad)


def test_random_precision_without_seed_follows_torch_manual_seed():
    net = small_net()
    rpi = RandomPrecision(net, bits=[4, 8, None])

    def draws(seed):
        torch.manual_seed(seed)
        return [rpi.draw() for _ in range(30)]

    a, b, c = draws(5), draws(5), draws(6)
    assert a == b and a != c and set(a) == {4, 8, None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (a generator on the device)")
def test_random_precision_draws_from_a_cuda_generator():
    net = small_net()
    seq = [RandomPrecision(net, bits=[4, 8], generator=torch.Generator("cuda").manual_seed(2)).draw()
           for _ in range(2)]
    assert seq[0] == seq[1] and seq[0] in (4, 8)


def test_state_dict_round_trip_and_set_mismatch():
    net = small_net()
    net.train()
    for p in (4, 8, None):
        dwq.set_precision(net, p)
        net(torch.randn(4, 3, 5, 5))
    other = small_net()
    other.load_state_dict(net.state_dict())
    net.eval(), other.eval()
    x = torch.randn(2, 3, 5, 5)
    for p in (4, 8, None):
        dwq.set_precision(net, p), dwq.set_precision(other, p)
        assert torch.equal(net(x), other(x))
    wrong = small_net(precisions=(4, 6, None))
    with pytest.raises(RuntimeError, match=r"saved for precision set \[4, 8, fp\]"):
        wrong.load_state_dict(net.state_dict())


def test_models_without_dwq_layers_are_refused():
    with pytest.raises(ValueError, match="no precision-switchable"):
        dwq.set_precision(nn.Linear(2, 2), 4)


def test_model_compiles_to_one_graph():
    net = small_net().eval()
    dwq.set_precision(net, 4)
    x = torch.randn(2, 3, 5, 5)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), net(x))
    with pytest.raises(RuntimeError, match="NaN"):
        compiled(torch.full_like(x, float("nan")))


def test_importing_dwq_does_not_import_dynamo():
    """RandomPrecision.draw is kept out of torch.compile's graphs by torch.compiler.disable, which imports
    torch._dynamo: applied at import, that added a second to every `import dwq` (and `dwq --help`)."""
    import subprocess
    import sys

    code = "import sys, dwq; print('torch._dynamo' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split()[-1] == "False", (r.stdout, r.stderr)


@pytest.mark.filterwarnings("ignore:SwitchableBatchNorm2d. the branch")  # (untrained branches: values do not matter)
@pytest.mark.parametrize("how", ["seed", "generator", "global"])
def test_compiled_random_precision_draws_at_every_forward(how):
    """With a seed, torch.compile traced the private random.Random's draw and replayed it: every
    forward ran the first draw's precision (fixed-precision inference, what RPI must not become)."""
    def wrap():
        torch.manual_seed(5)
        return RandomPrecision(small_net().eval(), seed=3 if how == "seed" else None,
                               generator=torch.Generator().manual_seed(3) if how == "generator" else None)

    eager, traced = wrap(), wrap()
    compiled = torch.compile(traced, backend="eager")
    x = torch.randn(2, 3, 5, 5)
    want, got = [], []
    torch.manual_seed(7)
    for _ in range(8):
        eager(x)
        want.append(eager.last_precision)
    torch.manual_seed(7)
    for _ in range(8):
        out = compiled(x)
        got.append(traced.last_precision)
        with dwq.precision(traced.model, got[-1]):
            assert torch.equal(out, traced.model(x))  # run at the precision it reports
    assert got == want and len(set(want)) > 1, (got, want)


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_training_forward_compiles_to_one_graph_and_tracks_ranges(zero_point):
    """Train mode, quantized and full precision: one graph, and the range updates (own and observed
    slots, full precision included) equal eager mode's."""
    def build():
        torch.manual_seed(0)
        return nn.Sequential(QConv2d(3, 6, 3, padding=1, precisions=(4, None), zero_point=zero_point),
                             nn.ReLU(), QConv2d(6, 2, 3, precisions=(4, None), zero_point=zero_point)).train()

    eager, net = build(), build()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 5, 5)
    for p in (4, None):
        dwq.set_precision(net, p)
        dwq.set_precision(eager, p)
        assert torch.equal(compiled(x), eager(x))
    for a, b in zip(net.state_dict().values(), eager.state_dict().values()):
        assert torch.equal(a, b)
    assert net[2].input_quant.initialized.tolist() == [True, True, True]  # 4 bits, fp, observed


def test_precision_context_can_be_entered_again_and_nested():
    """Each ``with`` of one precision object runs at its precision and restores what it found (a second
    entry ran at the precision the first exit had restored)."""
    net = small_net()
    dwq.set_precision(net, 8)
    ctx = dwq.precision(net, 4)
    for _ in range(2):
        with ctx:
            assert dwq.get_precision(net) == 4
        assert dwq.get_precision(net) == 8
    with ctx:
        dwq.set_precision(net, None)
        with ctx:
            assert dwq.get_precision(net) == 4
        assert dwq.get_precision(net) is None
    assert dwq.get_precision(net) == 8
    with pytest.raises(ValueError, match="not in the model's precision set"):
        dwq.precision(net, 6)
    assert dwq.get_precision(net) == 8


def _sbn_warnings(sbn, x):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sbn(x)
    return [str(w.message) for w in caught]


def test_sbn_warns_in_eval_for_a_branch_never_trained():
    """A precision RPT never drew normalizes with mean 0 / variance 1: said once per forward in eval,
    never for a trained branch, and known again after a state_dict round trip."""
    sbn = SwitchableBatchNorm2d(3, [4, 8, None])
    x = torch.randn(8, 3, 4, 4)
    sbn.train()
    sbn.set_precision(4)
    assert _sbn_warnings(sbn, x) == []  # training a branch is what makes it trained
    sbn.eval()
    assert _sbn_warnings(sbn, x) == []
    sbn.set_precision(8)
    (msg,) = _sbn_warnings(sbn, x)
    assert "precision 8 has never seen a training batch" in msg
    assert sbn.untrained_precisions() == ["8", "fp"]
    fresh = SwitchableBatchNorm2d(3, [4, 8, None])
    assert fresh.untrained_precisions() == ["4", "8", "fp"]
    fresh.load_state_dict(sbn.state_dict())
    assert fresh.untrained_precisions() == ["8", "fp"]
    legacy = {k: v for k, v in sbn.state_dict().items() if not k.endswith("num_batches_tracked")}
    fresh.load_state_dict(legacy, strict=False)  # a state_dict from before the counter: taken as trained
    assert fresh.untrained_precisions() == []
    untracked = SwitchableBatchNorm2d(3, [4], track_running_stats=False).eval()
    assert _sbn_warnings(untracked, x) == [] and untracked.untrained_precisions() == []


def test_sbn_a_refused_or_empty_training_batch_trains_no_branch():
    """The branch was marked trained before its BatchNorm ran: a batch BatchNorm refused (one value per
    channel) or an empty one left the statistics initial with no eval warning."""
    sbn = SwitchableBatchNorm2d(4, [4, 8]).train()
    sbn.set_precision(4)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        sbn(torch.randn(1, 4, 1, 1))
    sbn.set_precision(8)
    sbn(torch.randn(0, 4, 3, 3))
    assert sbn.untrained_precisions() == ["4", "8"]
    sbn(torch.randn(2, 4, 3, 3))
    assert sbn.untrained_precisions() == ["4"]


def test_sbn_compiled_forwards_neither_guard_on_the_flag_nor_warn():
    """A compiled forward leaves the flag to mark_trained (reading it would recompile each precision once
    more), and its eval does not break the graph to warn."""
    from dwq.nn.sbn import mark_trained

    sbn = SwitchableBatchNorm2d(3, [4, 8])
    step = torch.compile(sbn, fullgraph=True, backend="aot_eager")
    step(torch.randn(4, 3, 2, 2))
    assert sbn.untrained_precisions() == ["4", "8"]
    mark_trained(sbn)
    assert sbn.untrained_precisions() == ["4"]
    sbn.eval()
    dwq.set_precision(sbn, 4)  # the untrained branch: eager eval warns, the compiled forward does not
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        step(torch.randn(4, 3, 2, 2))
    assert [str(w.message) for w in said if "SwitchableBatchNorm2d" in str(w.message)] == []
    assert len(_sbn_warnings(sbn, torch.randn(4, 3, 2, 2))) == 1


def test_sbn_built_on_a_device():
    sbn = SwitchableBatchNorm2d(3, [4, 8], device="meta", dtype=torch.float64)
    assert {(t.device.type, t.dtype) for t in sbn.bn.parameters()} == {("meta", torch.float64)}


def test_layers_built_on_a_device_keep_their_buffers_there():
    """``device=`` reaches the precision set and the activation ranges, not only the weight (a layer
    built on another device than the CPU failed at its first forward)."""
    for layer, x in ((QConv2d(3, 4, 3, precisions=[4, None], device="meta"), torch.empty(1, 3, 5, 5, device="meta")),
                     (QLinear(5, 2, precisions=[4, None], device="meta"), torch.empty(2, 5, device="meta"))):
        assert {b.device.type for b in layer.buffers()} == {"meta"}
        assert layer(x).device.type == "meta"
        ref = type(layer)(*((3, 4, 3) if isinstance(layer, QConv2d) else (5, 2)), precisions=[4, None])
        layer.load_state_dict(ref.state_dict(), assign=True)  # the set check reads no meta data
        assert torch.equal(layer.precision_set, ref.precision_set)
        # the other way: a meta state_dict (its model built on the meta device) into a real layer failed
        # ("Cannot copy out of meta tensor"); its set's size is checked, its values cannot be
        meta_sd = type(layer)(*((3, 4, 3) if isinstance(layer, QConv2d) else (5, 2)), precisions=[4, None],
                              device="meta").state_dict()
        ref.load_state_dict(meta_sd, assign=True)
        assert ref.precision_set.device.type == "meta"
        other = type(layer)(*((3, 4, 3) if isinstance(layer, QConv2d) else (5, 2)), precisions=[2, 4, None])
        with pytest.raises(RuntimeError, match=re.escape("saved for precision set <2 precisions, on the meta device "
                                                         "(no values)>, this model has [2, 4, fp]")):
            other.load_state_dict(meta_sd, assign=True)


def test_random_precision_bits_errors_name_bits():
    net = small_net()
    for bad in (4, "4", [], None.__class__):
        with pytest.raises(ValueError, match=r"RandomPrecision: bits must be a non-empty list"):
            RandomPrecision(net, bits=bad)
    for bad, message in (([4, "4"], "RandomPrecision: bits must not repeat, got [4, '4']"),
                         ([4, "x"], "RandomPrecision: bits: bad precision 'x'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            RandomPrecision(net, bits=bad)
    rpi = RandomPrecision(net, bits=(p for p in ["4", "fp"]), seed=0)  # any iterable, any spelling
    assert rpi.choices == [4, None] and "choices=[4, fp]" in repr(rpi)


def test_repr_spells_the_precision_once():
    net = small_net()
    dwq.set_precision(net, 4)
    assert "precision=4" in repr(net[0]) and "precision=4" in repr(net[1])
    lin = QLinear(4, 2, precisions=[(4, 8), None])
    assert "precision=fp" in repr(lin)
    lin.set_precision((4, 8))
    assert "precision=4w8a" in repr(lin)


def test_a_pair_with_none_is_refused_without_offering_none():
    net = small_net()
    for bad in ((4, None), (None, 8), [None, None]):
        with pytest.raises(ValueError, match=r"takes two ints in 2\.\.16; full precision is None") as e:
            dwq.set_precision(net, bad)
        assert "or None for full precision" not in str(e.value)


@pytest.mark.parametrize("entry", [torch.tensor([4, 8, 0]), torch.tensor([[4, 4], [8, 8], [1, 1]])])
def test_a_foreign_precision_set_entry_is_named(entry):
    """A precision_set that encodes no set (a foreign or damaged state_dict, to_empty's memory) failed
    with a bare unpacking or bit-width error naming no entry."""
    sd = dict(small_net().state_dict(), **{"0.precision_set": entry})
    with pytest.raises(RuntimeError, match=r"^0\.: the state_dict was saved for precision set <not a precision "
                                           r"set: torch.int64 .*this model has \[4, 8, fp\]$"):
        small_net().load_state_dict(sd)


def test_sbn_partial_state_dict_leaves_unloaded_branches_untrained():
    """load_state_dict(strict=False) of a state_dict without a BN's entries marked its branches trained,
    which silenced the eval warning about their initial statistics."""
    sbn = SwitchableBatchNorm2d(3, [4, 8])
    sbn.load_state_dict({"precision_set": sbn.precision_set.clone()}, strict=False)
    assert sbn.untrained_precisions() == ["4", "8"]


def test_precision_context_first_entry_restores_what_it_found():
    """A precision changed between construction and the first ``with`` is what that block restores (it
    restored the precision from before construction)."""
    net = small_net()
    dwq.set_precision(net, 8)
    ctx = dwq.precision(net, 4)
    dwq.set_precision(net, None)
    with ctx:
        assert dwq.get_precision(net) == 4
    assert dwq.get_precision(net) is None
    with ctx:
        pass
    assert dwq.get_precision(net) is None
    with dwq.precision(net, 4):  # the usual use: constructed and entered at once
        assert dwq.get_precision(net) == 4
    assert dwq.get_precision(net) is None


def _garbage_memory(monkeypatch):
    # to_empty's memory made deterministic garbage: NaN floats, the largest ints, True flags
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    return was


def test_the_meta_device_recipe_with_reset_parameters_gives_a_fresh_model(monkeypatch):
    """Built on meta, to_empty, then every module's reset_parameters (torch's recipe): precision_set and the
    activation ranges held uninitialized memory (a NaN range and initialized=True for good; a state_dict
    saved from it refused by a fresh model)."""
    def build(device=None):
        return nn.Sequential(QConv2d(3, 4, 3, precisions=[4, 8, None], device=device),
                             SwitchableBatchNorm2d(4, [4, 8, None], device=device))

    was = _garbage_memory(monkeypatch)
    try:
        m = build("meta").to_empty(device="cpu")
    finally:
        torch.use_deterministic_algorithms(was)
    for mod in m.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    fresh = build()
    assert torch.equal(m[0].precision_set, fresh[0].precision_set)
    assert torch.equal(m[1].precision_set, fresh[1].precision_set)
    q = m[0].input_quant
    assert not q.initialized.any() and not q.running_min.any() and not q.running_max.any()
    dwq.set_precision(m, 4)
    x = torch.rand(2, 3, 6, 6)
    m.train()(x)
    assert q.running_min[0] == x.min() and q.running_max[0] == x.max()
    assert m.eval()(x).isfinite().all()
    fresh.load_state_dict(m.state_dict())


def test_reset_parameters_of_a_trained_layer_forgets_its_ranges_and_branches():
    conv, sbn = QConv2d(3, 4, 3, precisions=[4, None]), SwitchableBatchNorm2d(4, [4, None])
    dwq.set_precision(nn.Sequential(conv, sbn).train(), 4)
    sbn(conv(torch.rand(2, 3, 6, 6)))
    assert conv.input_quant.initialized.any() and sbn.untrained_precisions() == ["fp"]
    conv.reset_parameters()
    sbn.reset_parameters()
    assert not conv.input_quant.initialized.any() and sbn.untrained_precisions() == ["4", "fp"]
    assert sbn.bn[0].num_batches_tracked == 0


def test_a_half_state_dict_loaded_with_assign_keeps_the_ranges_float32():
    """load_state_dict(assign=True) took a float16 checkpoint's ranges as float16, and every forward (even
    after model.half()) failed: "running_min must be a contiguous 1-D Float tensor, got Half"."""
    torch.manual_seed(0)
    m = QLinear(8, 4, precisions=[4, None]).train()
    m.set_precision(4)
    m(torch.randn(16, 8))
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in m.state_dict().items()}
    with torch.device("meta"):
        m2 = QLinear(8, 4, precisions=[4, None])
    m2.load_state_dict(sd, assign=True)
    q = m2.input_quant
    assert q.running_min.dtype == q.running_max.dtype == torch.float32
    assert torch.equal(q.running_max, m.input_quant.running_max.half().float())
    m2.set_precision(4)
    x = torch.randn(2, 8)
    assert m2.eval()(x.half()).dtype == torch.float16
    assert m2.float()(x).isfinite().all()


@pytest.mark.parametrize("precision", [None, 4])
def test_a_train_mode_empty_batch_passes_as_through_torchs_layers(precision):
    """A train-mode empty batch was a ValueError, even at full precision, where the layer computes what
    nn.Linear does (an empty shard of a batch, a filtered batch)."""
    m = QLinear(8, 4, precisions=[4, None]).train()
    m.set_precision(precision)
    y = m(torch.empty(0, 8))
    assert y.shape == (0, 4) and not m.input_quant.initialized.any()
    assert y.shape == nn.Linear(8, 4)(torch.empty(0, 8)).shape


@pytest.mark.parametrize("build, name, bad", [
    (lambda v: QLinear(4, 2, precisions=[4], quantize_input=v), "QLinear: quantize_input", "False"),
    (lambda v: QConv2d(3, 2, 1, precisions=[4], quantize_input=v), "QConv2d: quantize_input", 0),
    (lambda v: QLinear(4, 2, precisions=[4], shared_act_range=v), "ActQuantizer: shared_range", "no"),
])
def test_flags_must_be_bools(build, name, bad):
    """bool("False") and bool("no") are True: a flag given as a string silently meant the opposite."""
    with pytest.raises(ValueError, match=re.escape(f"{name} must be True or False, got {bad!r}")):
        build(bad)
    assert build(False) is not None


@pytest.mark.parametrize("axis", [True, 1.0, "0"])
def test_weight_quantizer_axis_must_be_an_int(axis):
    """axis=True quantized along dim 1 (True == 1) without a word."""
    from dwq.quant import WeightQuantizer
    with pytest.raises(ValueError, match="WeightQuantizer: axis must be an int"):
        WeightQuantizer(axis=axis)
    import numpy as np
    assert WeightQuantizer(axis=np.int64(1)).axis == 1


def test_review_edge_cases_of_the_layers():
    """A generator that is no torch.Generator failed at the first draw ("'int' object has no attribute
    'device'"); SwitchableBatchNorm2d(device=...) left its precision set on the CPU; QLinear(4, 0) failed
    in the fused weight quantizer where nn.Linear(4, 0) runs."""
    m = QLinear(4, 3, precisions=[4, 8])
    with pytest.raises(ValueError, match="generator must be a torch.Generator, got 1; for an integer seed give seed="):
        RandomPrecision(m, generator=1)
    assert SwitchableBatchNorm2d(4, [4, 8], device="meta").precision_set.device.type == "meta"
    empty = QLinear(4, 0, precisions=[4])
    dwq.set_precision(empty, 4)
    assert empty(torch.rand(2, 4)).shape == (2, 0) and empty.train()(torch.rand(2, 4)).shape == (2, 0)


def test_the_precision_controls_module_is_reachable_by_its_dotted_name():
    """The module was dwq/nn/precision.py, hidden by the class dwq.nn.precision: dwq.nn.precision.set_precision
    was an AttributeError and mock.patch("dwq.nn.precision.…") patched the class."""
    import importlib

    module = importlib.import_module("dwq.nn.control")
    assert dwq.nn.control is module and module.set_precision is dwq.set_precision
    assert isinstance(dwq.nn.precision, type)  # the context manager keeps its name


def _layer_at_4_bits(layer):
    torch.manual_seed(0)
    if layer == "conv":
        m, x = QConv2d(3, 4, 3, precisions=[None, 4]), torch.rand(2, 3, 8, 8)
    else:
        m, x = QLinear(6, 4, precisions=[None, 4]), torch.rand(2, 6)
    dwq.set_precision(m, 4)
    return m, x


@pytest.mark.parametrize("layer", ["conv", "linear"])
def test_hooks_on_a_layers_quantizers_run_as_through_module_call(layer):
    # The layers call their quantizers' forward directly when nothing hooks into them (host time, issue
    # 10); a hook on a quantizer, or a global one, must still see every call and may change its result.
    m, x = _layer_at_4_bits(layer)
    want = m(x)
    seen = []
    hooks = [m.input_quant.register_forward_pre_hook(lambda q, args: seen.append(("pre", args[1]))),
             m.input_quant.register_forward_hook(lambda q, args, out: seen.append(("act", out.shape))),
             m.weight_quant.register_forward_hook(lambda q, args, out: out * 0)]  # the weight replaced by zeros
    y = m(x)
    assert seen == [("pre", 4), ("act", x.shape)]
    bias = m.bias.detach().view(1, 4, *[1] * (y.dim() - 2)).expand_as(y)
    assert torch.equal(y, bias)
    for h in hooks:
        h.remove()
    assert torch.equal(m(x), want)
    grads = []
    hooks = [m.weight_quant.register_full_backward_hook(lambda q, gin, gout: grads.append(gout[0].shape)),
             nn.modules.module.register_module_forward_pre_hook(lambda q, args: seen.append(type(q).__name__))]
    seen.clear()
    try:
        m(x).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    assert seen == [type(m).__name__, "ActQuantizer", "WeightQuantizer"] and grads == [m.weight.shape]
    seen.clear()
    m(x)
    assert seen == []


def test_the_untrained_branch_warning_is_not_repeated_by_dwqs_own_quiet_forwards():
    """profile() left warnings.catch_warnings, which resets Python's once-per-message record: the eval
    warning of an untrained branch came again after every MAC count (three times a precision in a demo)."""
    import warnings

    from dwq.quant.cost import profile

    sbn = SwitchableBatchNorm2d(3, [4, 8])
    m = nn.Sequential(QConv2d(3, 3, 1, precisions=[4, 8]), sbn)
    m.train()
    dwq.set_precision(m, 4)
    m(torch.rand(2, 3, 4, 4))
    m.eval()
    dwq.set_precision(m, 8)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(3):
            m(torch.rand(2, 3, 4, 4))
            profile(m, (1, 3, 4, 4))
    assert sum("precision 8 has never seen a training batch" in str(w.message) for w in seen) == 1
    with warnings.catch_warnings(record=True) as seen:  # profile's own forward says nothing at all
        warnings.simplefilter("always")
        profile(m, (1, 3, 4, 4))
    assert not any("never seen a training batch" in str(w.message) for w in seen)

"""Int arguments (counts, seeds, widths, axes, sizes) go through dwq._index: an int of any kind, a 0-d
integer tensor included, is taken as that int; a bool of any kind and a tensor with dimensions are refused
by name. ``operator.index`` takes ``torch.tensor(True)`` as 1 and ``torch.tensor([3])`` as 3: an
evaluation given ``steps=torch.tensor(True)`` ran in full as steps=1 and failed at json.dump of its report."""
import pytest
import torch

import dwq
from dwq import eval as E
from dwq._index import index_or_none
from dwq.attacks import pgd
from dwq.eval.intervals import t_quantile
from dwq.models import small_cnn
from dwq.ops import HAS_EXT, fake_quantize, pack_weight
from dwq.quant import WeightQuantizer
from dwq.quant.cost import profile

NOT_INTS = [True, torch.tensor(True), torch.tensor([3]), torch.tensor([[3]]), 3.0, torch.tensor(3.0), "3", None]


@pytest.mark.parametrize("v, want", [(3, 3), (torch.tensor(3), 3), (torch.tensor(-2, dtype=torch.int8), -2)]
                         + [(v, None) for v in NOT_INTS])
def test_index_or_none(v, want):
    got = index_or_none(v)
    assert got == want and type(got) is type(want), f"index_or_none({v!r}) = {got!r}, want {want!r}"


def test_numpy_ints_are_ints_and_numpy_bools_are_not():
    np = pytest.importorskip("numpy", reason="numpy is not installed")
    assert index_or_none(np.int64(7)) == 7 and index_or_none(np.array(7)) == 7
    assert index_or_none(np.bool_(True)) is None


def _tiny():
    torch.manual_seed(0)
    return small_cnn(precisions=[None, 4], width=4).eval(), torch.rand(4, 1, 28, 28), torch.arange(4)


@pytest.mark.parametrize("name", ["steps", "seed", "batch_size"])
@pytest.mark.parametrize("bad", [torch.tensor(True), torch.tensor([1])], ids=["bool-tensor", "1-d-tensor"])
def test_evaluate_refuses_a_bool_or_shaped_tensor_count_before_any_forward(name, bad):
    m, x, y = _tiny()
    forwards = []
    m.register_forward_pre_hook(lambda *a: forwards.append(1))
    args = dict(epsilon=0.1, alpha=0.02, steps=1, seed=0, batch_size=4, protocols=["paper"])
    args[name] = bad
    with pytest.raises(ValueError, match=rf"{name} must be an int >= \d, got tensor\("):
        E.evaluate(m, x, y, [None, 4], **args)
    assert not forwards, f"{len(forwards)} forwards ran before the refusal"


@pytest.mark.parametrize("bad", [torch.tensor(True), torch.tensor([2])])
def test_attack_counts_refuse_bool_and_shaped_tensors(bad):
    m, x, y = _tiny()
    with pytest.raises(ValueError, match=r"steps must be an int >= 0, got tensor\("):
        pgd(m, x, y, 0.1, 0.02, bad)


def test_models_seeds_and_axes_refuse_them_and_take_0d_int_tensors():
    with pytest.raises(ValueError, match="width must be"):
        small_cnn(width=torch.tensor([8]))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        small_cnn(num_classes=torch.tensor(True))
    assert small_cnn(num_classes=torch.tensor(3), width=torch.tensor(4)).fc.out_features == 3
    m = small_cnn(precisions=[4, 8], width=4)
    with pytest.raises(ValueError, match="seed must be an int"):
        dwq.RandomPrecision(m, seed=torch.tensor(True))
    with pytest.raises(ValueError, match="axis must be an int"):
        WeightQuantizer(axis=torch.tensor([0]))
    assert WeightQuantizer(axis=torch.tensor(1)).axis == 1


def test_interval_and_profile_sizes_refuse_them():
    assert t_quantile(torch.tensor(9)) == t_quantile(9)
    for bad in (True, torch.tensor(True), torch.tensor([9])):
        with pytest.raises(ValueError, match="df must be an integer >= 1"):
            t_quantile(bad)
    m = small_cnn(precisions=[4], width=4)
    for bad in ((torch.tensor(True), 1, 28, 28), (torch.tensor([1]), 1, 28, 28)):
        with pytest.raises(ValueError, match="input_size must be a batch's shape as ints"):
            profile(m, bad)


def test_fake_quantize_axis_refuses_a_shaped_tensor():
    x = torch.rand(3, 4)
    with pytest.raises(ValueError, match="axis must be an int"):
        fake_quantize(x, torch.ones(3), torch.zeros(3, dtype=torch.int32), 4, axis=torch.tensor([0]))


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (pack_weight)")
def test_pack_weight_kernel_size_refuses_a_shaped_tensor():
    w = torch.zeros(2, 9, dtype=torch.uint8)
    with pytest.raises(ValueError, match="kernel_size must be a sequence of ints"):
        pack_weight(w, torch.zeros(2, dtype=torch.int32), 4, [torch.tensor([3]), 3])

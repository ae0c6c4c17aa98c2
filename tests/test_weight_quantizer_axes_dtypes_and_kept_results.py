"""WeightQuantizer: every spelling of the channel axis quantizes along that axis (the fused kernel only
serves axis 0), a half weight with the other half dtype as ``cast_to`` is quantized and left to the
caller to cast, and inside reuse_quantized_weights a kept result is in ``cast_to`` and belongs to the
very tensor it was made from."""
import pytest
import torch
from test_weight_reuse import _count_quantizations

from dwq.quant import WeightQuantizer, reuse_quantized_weights


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_the_most_negative_axis_is_a_valid_spelling_of_axis_0(zero_point):
    w = torch.randn(4, 6)
    ref = WeightQuantizer(axis=0, zero_point=zero_point)(w, 4)
    assert torch.equal(WeightQuantizer(axis=-2, zero_point=zero_point)(w, 4), ref)
    s, z = WeightQuantizer(axis=-2, zero_point=zero_point).qparams(w, 4)
    assert s.shape == (4,) and z.shape == (4,)


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_axis_1_quantizes_each_column_with_its_own_range(zero_point):
    w = torch.randn(5, 3, 2)
    w[:, 1] *= 100.0  # one wide channel: quantized along dim 0 instead, every row would share its range
    got = WeightQuantizer(axis=1, zero_point=zero_point)(w, 4)
    ref = WeightQuantizer(axis=0, zero_point=zero_point)(w.transpose(0, 1).contiguous(), 4).transpose(0, 1)
    assert torch.equal(got, ref)
    # the narrow channels keep their resolution (4 bits over a width of about 6, not 600)
    assert (got[:, 0] - w[:, 0]).abs().max() < 0.5


@pytest.mark.parametrize("dtype, cast_to", [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16)])
def test_a_half_weight_is_quantized_in_its_own_dtype_whatever_cast_to_says(dtype, cast_to):
    w = torch.randn(4, 8).to(dtype)
    q = WeightQuantizer()
    got = q(w, 4, cast_to=cast_to)  # the fused op writes cast_to only from a float32 weight
    ref = q(w, 4)
    assert got.dtype == dtype and torch.equal(got, ref)


def test_a_kept_result_is_in_cast_to_on_the_pure_pytorch_path():
    lin = torch.nn.Linear(6, 4)
    lin.wq = WeightQuantizer(zero_point="float")  # (float zero points: not the fused kernel)
    fresh = lin.wq(lin.weight, 4)
    with reuse_quantized_weights(lin):
        got = lin.wq(lin.weight, 4, cast_to=torch.bfloat16)
        again = lin.wq(lin.weight, 4, cast_to=torch.bfloat16)
    assert got.dtype == torch.bfloat16 and again.dtype == torch.bfloat16
    assert torch.equal(got, fresh.detach().to(torch.bfloat16))


def test_a_new_tensor_at_the_kept_ones_address_and_version_is_quantized_afresh():
    q = WeightQuantizer()
    w = torch.randn(4, 8)
    holder = torch.nn.Module()
    holder.wq = q
    with reuse_quantized_weights(holder):
        # another tensor over the same memory, at the same version counter value: only the weak
        # reference tells it from w (as it does a new weight allocated where a freed one was)
        other = torch.empty(0).set_(w.untyped_storage(), 0, w.shape, w.stride())
        while w._version < other._version + 1:
            w.add_(0)
        first = q(w, 4)
        other.mul_(3)  # new values, through `other` only: w's counter does not move
        assert other.data_ptr() == w.data_ptr() and other._version == w._version
        got = q(other, 4)
    assert torch.equal(got, WeightQuantizer()(other.clone(), 4))
    assert not torch.equal(got, first)


def test_an_inner_block_leaves_the_outer_one_reusing(monkeypatch):
    calls = _count_quantizations(monkeypatch)
    holder = torch.nn.Module()
    holder.wq = q = WeightQuantizer()
    w = torch.randn(4, 8)
    with reuse_quantized_weights(holder):
        first = q(w, 4)
        with reuse_quantized_weights(holder):  # (nests: the inner block adds nothing)
            assert torch.equal(q(w, 4), first)
        assert q._reuse
        assert torch.equal(q(w, 4), first)
    assert calls == [4]
    assert not q._reuse and q._kept == {}


def test_the_block_keeps_nothing_alive_after_it_exits():
    # its optimizer-step hook (which drops the kept results) is removed at exit: left registered, it
    # held every quantizer of the model for the rest of the program and ran at every step of any optimizer
    import gc
    import weakref

    holder = torch.nn.Module()
    holder.wq = WeightQuantizer()
    w = torch.nn.Parameter(torch.randn(4, 8))
    with reuse_quantized_weights(holder):
        holder.wq(w, 4)
    ref = weakref.ref(holder.wq)
    del holder
    gc.collect()
    assert ref() is None

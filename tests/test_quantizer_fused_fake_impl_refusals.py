"""The fake (meta) impls of the fused quantizer ops refuse what the kernels refuse, so torch.compile's
trace fails where eager fails: an empty x in train mode (act_qparams has no range to take), and an
output dtype other than w's or, for a float32 w, float16 / bfloat16 (weight_fake_quantize)."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT, has_kernel

pytestmark = pytest.mark.skipif(not (HAS_EXT and has_kernel("act_qparams", "cpu")
                                     and has_kernel("weight_fake_quantize", "cpu")),
                                reason="dwq._C without the fused quantizer ops")


def _both(make, call, match):
    """call(*make()) raises RuntimeError(match) on CPU tensors and in FakeTensorMode alike."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with pytest.raises(RuntimeError, match=match):
        call(*make())
    with FakeTensorMode():
        with pytest.raises(RuntimeError, match=match):
            call(*make())


def _state():
    return torch.empty(0, 3), torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool)


def test_act_qparams_fake_impl_refuses_an_empty_x_in_train_mode_only():
    from torch._subclasses.fake_tensor import FakeTensorMode

    _both(_state, lambda *a: torch.ops.dwq.act_qparams(*a, 1, 2, 4, 0.1, True), "x is empty")
    with FakeTensorMode():
        s, z = torch.ops.dwq.act_qparams(*_state(), 1, 2, 4, 0.1, False)  # eval: the running range
    assert s.shape == (1,) and z.shape == (1,)


@pytest.mark.parametrize("w_dtype, dtype", [(torch.float16, torch.bfloat16), (torch.float32, torch.float64),
                                            (torch.bfloat16, torch.float32)])
def test_weight_fake_quantize_fake_impl_refuses_another_output_dtype(w_dtype, dtype):
    _both(lambda: (torch.randn(4, 3).to(w_dtype),), lambda w: torch.ops.dwq.weight_fake_quantize(w, 4, dtype),
          r"weight_fake_quantize: dtype must be w's")

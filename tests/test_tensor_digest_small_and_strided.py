"""dwq._digest.tensor_digest (found by mutation): the bytes of one-element and 0-d tensors count, and
a strided view digests as its values (what a contiguous copy of it holds), not an error."""
import torch

from dwq._digest import tensor_digest


def test_the_bytes_of_one_element_and_0d_tensors_count():
    for make in (lambda v: torch.tensor([v]), lambda v: torch.tensor(v)):
        assert tensor_digest({"scale": make(1.0)}) != tensor_digest({"scale": make(2.0)})
    assert tensor_digest({"s": torch.tensor(3.0)}) == tensor_digest({"s": torch.tensor(3.0)})


def test_a_strided_view_digests_as_its_values():
    x = torch.arange(12, dtype=torch.float32)
    for view in (x[::2], x.view(3, 4).t(), x.view(3, 4)[:, 1]):
        assert not view.is_contiguous()
        assert tensor_digest({"a": view}) == tensor_digest({"a": view.contiguous()})
    assert tensor_digest({"a": x[::2]}) != tensor_digest({"a": x[1::2]})

"""dwq._errors: how a foreign exception is quoted in dwq's one-line errors. The sites that quote one
must report the error they caught even when its message is empty, not fail with an IndexError of
their own (each of the sites below did before the helper)."""
import pytest
import torch
from torch import nn

from dwq._errors import first_line, typed_first_line
from dwq._torch_file import torch_load
from dwq.deploy import ConversionError, convert
from dwq.models import small_cnn
from dwq.ops import HAS_EXT


@pytest.mark.parametrize("e, first, typed", [
    (RuntimeError("no kernel\n  at frame 1\n  at frame 2"), "no kernel", "RuntimeError: no kernel"),
    (ValueError("\n\n  padded first line  \nsecond"), "padded first line", "ValueError: padded first line"),
    (RuntimeError(), "RuntimeError", "RuntimeError"),
    (KeyError(), "KeyError", "KeyError"),
    (OSError("   \n  "), "OSError", "OSError"),
    (KeyError("weight"), "'weight'", "KeyError: 'weight'"),
])
def test_first_line_and_its_typed_form(e, first, typed):
    assert first_line(e) == first
    assert typed_first_line(e) == typed


class _RaisesEmpty(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_cnn(precisions=[4], width=4)

    def forward(self, x):
        raise RuntimeError()


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
@pytest.mark.filterwarnings("ignore:convert. the switchable batch norm never saw")  # (an untrained model is enough)
def test_untraceable_model_with_an_empty_message_is_a_conversion_error():
    with pytest.raises(ConversionError, match=r"cannot trace _RaisesEmpty\.forward for conversion \(RuntimeError\)$"):
        convert(_RaisesEmpty())


def test_unloadable_file_with_an_empty_message_names_the_type(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    torch.save({"w": torch.ones(1)}, path)  # (a sound zip: the CRC check passes, the load fails)

    def load(*args, **kwargs):
        raise KeyError()
    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(ValueError, match=r"x\.pt is not a loadable checkpoint \(KeyError\)$"):
        torch_load(str(path), error=ValueError, what="checkpoint", expected="a torch.save file")

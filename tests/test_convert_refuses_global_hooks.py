"""dwq.deploy.convert refuses a model while global module hooks are registered (torch's
register_module_forward_hook / register_module_forward_pre_hook): fx's graph does not run them, so the
integer model would silently compute without what they do to every layer's input or output."""
import pytest
from deploy_models import calibrated
from torch import nn
from torch.nn.modules import module as torch_module

from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, precisions=[8])

    def forward(self, x):
        return self.c(x).flatten(1)


@pytest.mark.parametrize("register", [torch_module.register_module_forward_pre_hook,
                                      torch_module.register_module_forward_hook], ids=["pre", "forward"])
def test_a_global_module_hook_is_refused_until_removed(register):
    m = calibrated(_Net(), (2, 3, 6, 6))
    hook = (lambda mod, inp: None) if register is torch_module.register_module_forward_pre_hook \
        else (lambda mod, inp, out: None)
    h = register(hook)
    try:
        with pytest.raises(ConversionError, match=r"global module forward hooks are registered"):
            convert(m)
    finally:
        h.remove()
    convert(m)

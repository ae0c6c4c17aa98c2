"""dwq.deploy.load(path, device): every tensor of the loaded model is on that device (the file is read
on the CPU) and computes there what the saved model computes."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import convert, load, save
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to load onto")
def test_load_puts_every_tensor_on_the_device_asked(tmp_path):
    torch.manual_seed(0)
    im = convert(calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28)))
    path = str(tmp_path / "m.safetensors")
    save(im, path)
    loaded = load(path, device="cuda")
    tensors = list(loaded.state_dict().values())
    assert tensors and all(t.device.type == "cuda" for t in tensors)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad(), dwq.precision(im, 4), dwq.precision(loaded, 4):
        assert torch.allclose(loaded(x.cuda()).cpu(), im(x), atol=1e-4)

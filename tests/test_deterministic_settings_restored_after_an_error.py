"""dwq.train.determinism.deterministic: a fit that raises inside the block (an op without a deterministic
algorithm, a KeyboardInterrupt) still gets torch's and cuDNN's previous settings back, and the error goes on."""
import pytest
import torch

from dwq.train import determinism
from test_reference_determinism_and_dist_single_process import torch_settings  # noqa: F401 (a fixture)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_settings_come_back_when_the_block_raises(torch_settings, error):  # noqa: F811
    """Settings before: deterministic off, cuDNN non-deterministic with benchmark on; after an error raised
    inside the block they are the same again."""
    cudnn = torch.backends.cudnn
    torch.use_deterministic_algorithms(False)
    cudnn.deterministic, cudnn.benchmark = False, True
    with pytest.raises(error):
        with determinism.deterministic():
            assert torch.are_deterministic_algorithms_enabled()
            raise error("an op without a deterministic algorithm")
    assert not torch.are_deterministic_algorithms_enabled(), "deterministic algorithms left on after an error"
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True), \
        f"cuDNN left at deterministic={cudnn.deterministic}, benchmark={cudnn.benchmark} after an error"

import os

import pytest
import torch

# Tests make their own small data and must not fight over the 2 cores of the CI machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    return out


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

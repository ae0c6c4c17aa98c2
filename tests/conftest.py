import os

import pytest
import torch

from dwq._errors import first_line

# Tests make their own small data and must not fight over the 2 cores of the CI machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    return out


def needs_cuda_kernel(op: str):
    """skipif without a CUDA GPU, or without ``op``'s CUDA kernel in dwq._C (a build with DWQ_NO_CUDA=1
    or without nvcc), where the op would raise NotImplementedError instead of being tested."""
    from dwq.ops._lib import HAS_EXT, has_kernel

    gpu = torch.cuda.is_available()
    return pytest.mark.skipif(not (gpu and HAS_EXT and has_kernel(op, "cuda")),
                              reason="needs a CUDA GPU" if not gpu else f"dwq._C has no CUDA kernel of {op}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _threads():
    # (a script's or the CLI's --threads called in a test set the thread count of every later test)
    n = torch.get_num_threads()
    yield
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@pytest.fixture(scope="module", autouse=True)
def _seed_module():
    # Module fixtures are made before the function-scoped seed: unseeded, a shared model's weights (e.g.
    # test_deploy_artifact's int_model) depended on which tests ran before it.
    torch.manual_seed(0)


def shell_script(path, body=""):
    """An executable ``#!/bin/sh`` script at ``path`` (its folders made): a stand-in for a tool."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


CPU_ISAS = ["scalar", "avx2", "avx512_vnni", "amx"]


@pytest.fixture(params=CPU_ISAS)
def isa(request, monkeypatch):
    """Runs a kernel test once per CPU ISA path, forced with DWQ_CPU_ISA."""
    from dwq.ops import supported_cpu_isas

    if request.param not in supported_cpu_isas():
        pytest.skip(f"this CPU does not support the {request.param} path")
    monkeypatch.setenv("DWQ_CPU_ISA", request.param)
    return request.param


RENDEZVOUS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # (torchrun's; dwq.train.dist reads them)


@pytest.fixture
def clean_env(monkeypatch):
    """monkeypatch, with torchrun's variables and LOCAL_RANK unset: a process not launched by torchrun."""
    for k in RENDEZVOUS + ("LOCAL_RANK",):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture
def gloo_group(tmp_path):
    """A gloo process group of one (rank 0), destroyed afterwards if the test left it."""
    import torch.distributed as dist

    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield dist.group.WORLD
    if dist.is_initialized():
        dist.destroy_process_group()


def torchvision_or_skip(why: str):
    """torchvision, or a skip with the reason: missing, or a build for another torch (a CUDA wheel
    next to a CPU-only torch fails at import with RuntimeError, not ImportError)."""
    try:
        import torchvision
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"{why}; torchvision cannot be imported here ({first_line(e)})")
    return torchvision

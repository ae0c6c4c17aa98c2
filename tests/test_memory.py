"""dwq.memory.keep_freed_memory: large tensors reuse freed memory instead of faulting in fresh pages
(counted as minor page faults, in a fresh process: the setting is the whole process's), the dwq
command applies it unless DWQ_MALLOC=default, and a bad value is refused."""
import subprocess
import sys

import pytest

from dwq.memory import keep_freed_memory

PROBE = r"""
import ctypes, resource, sys, torch
from dwq.memory import keep_freed_memory

# glibc's starting mmap threshold (128 KiB), held: glibc moves its own with what the process freed
# before (torch's import included), which made the "before" count anything from 0 to 120,000 pages
ctypes.CDLL(None).mallopt(-3, 128 << 10)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def forward_like():
    # tensors of 12-24 MiB allocated and freed out of order, as a model's forward does
    f0 = faults()
    for _ in range(10):
        a = torch.empty(6 << 20).fill_(1)
        b = torch.empty(6 << 20).fill_(2)
        del a
        c = torch.empty(3 << 20).fill_(3)
        del b, c
    return faults() - f0

forward_like()
before = forward_like()
applied = keep_freed_memory()
forward_like()
print(before, forward_like(), applied)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, after, applied = out.stdout.split()
    if applied != "True":
        pytest.skip("this C library has no glibc mallopt (keep_freed_memory returned False)")
    # 30 tensors of 12-24 MiB: ~120,000 pages when each is fresh; none once freed memory is reused
    assert int(before) > 20000 and int(after) < int(before) // 20, (before, after)


@pytest.mark.parametrize("bad", [-1, 2 ** 31, 1.5, True, "1g"])
def test_bad_trim_bytes_is_refused(bad):
    with pytest.raises(ValueError, match="trim_bytes must be an int in 0..2\\^31-1"):
        keep_freed_memory(bad)


@pytest.mark.parametrize("env, kept", [(None, 1), ("", 1), ("keep", 1), ("default", 0)])
def test_dwq_command_keeps_freed_memory_unless_told_not_to(monkeypatch, capsys, env, kept):
    from dwq.cli.main import main

    calls = []
    monkeypatch.setattr("dwq.memory.keep_freed_memory", lambda: calls.append(1) or True)
    if env is None:
        monkeypatch.delenv("DWQ_MALLOC", raising=False)
    else:
        monkeypatch.setenv("DWQ_MALLOC", env)
    assert main(["bench", "--model", "/nonexistent/m.safetensors"]) == 2  # (a usage error after the setting)
    assert len(calls) == kept


def test_dwq_command_refuses_a_bad_dwq_malloc(monkeypatch, capsys):
    from dwq.cli.main import main

    monkeypatch.setenv("DWQ_MALLOC", "never")
    assert main(["bench", "--model", "/nonexistent/m.safetensors"]) == 2
    assert "DWQ_MALLOC='never': expected 'keep'" in capsys.readouterr().err

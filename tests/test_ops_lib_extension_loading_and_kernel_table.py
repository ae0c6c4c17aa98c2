"""dwq.ops._lib: a missing dwq._C (an import blocked in a fresh interpreter) leaves HAS_EXT False and EXT_ERROR
the ImportError, has_kernel False and the integer ops refusing with that error, and DWQ_REQUIRE_EXT=1 turns it
into an ImportError that names the variable and the original error (chained); with the extension, every
dwq op is in the kernel table at import with the dispatcher's answer, a cached answer (False too) is given
without asking the dispatcher again, and device types other than cpu and cuda have no kernel."""
import json
import os
import subprocess
import sys

import pytest
import torch

from dwq.ops import _lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a fresh interpreter: dwq._C's import raises ImportError("blocked: ..."), then dwq is imported.
BLOCKED = r"""
import json, sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "dwq._C":
            raise ImportError("blocked: no dwq._C in this test")
sys.meta_path.insert(0, _Block())
try:
    import dwq.ops as ops
    from dwq.ops import _lib
except ImportError as e:
    print(json.dumps({"import_error": str(e), "cause": repr(e.__cause__)}))
    sys.exit(0)
out = {"has_ext": _lib.HAS_EXT, "ext_error": repr(_lib.EXT_ERROR),
       "has_kernel": [ops.has_kernel("qgemm_acc", d) for d in ("cpu", "cuda")]}
import torch
try:
    ops.pack_weight(torch.zeros(2, 4, dtype=torch.int32), torch.zeros(2, dtype=torch.int32), 8)
except RuntimeError as e:
    out["pack_weight"] = str(e)
print(json.dumps(out))
"""


def _run_blocked(require):
    env = {k: v for k, v in os.environ.items() if k != "DWQ_REQUIRE_EXT"}
    if require is not None:
        env["DWQ_REQUIRE_EXT"] = require
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([sys.executable, "-c", BLOCKED], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"the interpreter without dwq._C failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("require", [None, "0"])
def test_a_missing_extension_is_reported_not_raised(require):
    """Without DWQ_REQUIRE_EXT (or with 0) dwq imports; HAS_EXT is False, EXT_ERROR is the import's error,
    has_kernel says no for both devices, and an integer op says it needs dwq._C and why it is missing."""
    got = _run_blocked(require)
    assert "import_error" not in got, f"DWQ_REQUIRE_EXT={require}: importing dwq raised {got}"
    assert got["has_ext"] is False, f"HAS_EXT is {got['has_ext']} without dwq._C"
    assert got["ext_error"] == "ImportError('blocked: no dwq._C in this test')", f"EXT_ERROR is {got['ext_error']}"
    assert got["has_kernel"] == [False, False], f"has_kernel(qgemm_acc, cpu/cuda) without dwq._C: {got['has_kernel']}"
    want = ("dwq.ops.pack_weight needs the compiled extension dwq._C, which failed to import: blocked: no dwq._C in "
            "this test")
    assert got.get("pack_weight") == want, f"pack_weight without dwq._C: {got.get('pack_weight')}"


def test_require_ext_turns_a_missing_extension_into_an_import_error():
    """DWQ_REQUIRE_EXT=1 (CI): importing dwq raises ImportError naming the variable and the original error,
    which is chained as the cause."""
    got = _run_blocked("1")
    assert got.get("import_error") == ("dwq._C could not be imported and DWQ_REQUIRE_EXT=1: blocked: no dwq._C "
                                       "in this test"), f"with DWQ_REQUIRE_EXT=1: {got}"
    assert got["cause"] == "ImportError('blocked: no dwq._C in this test')", f"the cause is {got['cause']}"


@pytest.mark.skipif(not _lib.HAS_EXT, reason="dwq._C is not built")
def test_every_dwq_op_is_in_the_kernel_table_at_import():
    """Import fills the table for every torch.ops.dwq op on cpu and cuda with the dispatcher's answer (a compiled
    trace reads a dict), and the cpu answer is the CPU key's, the cuda answer the CUDA key's."""
    names = {op[len("dwq::"):].split(".")[0] for op in torch._C._dispatch_get_all_op_names() if op.startswith("dwq::")}
    assert "qgemm_acc" in names
    for name in sorted(names):
        for dev, key in (("cpu", "CPU"), ("cuda", "CUDA")):
            assert (name, dev) in _lib._KERNELS, f"({name!r}, {dev!r}) is not in the kernel table after import"
            want = torch._C._dispatch_has_kernel_for_dispatch_key(f"dwq::{name}", key)
            got = _lib._KERNELS[(name, dev)]
            assert got == want, f"the kernel table says {got} for {name} on {dev}, the dispatcher {want}"
    assert _lib.has_kernel("qgemm_acc", "cpu") is True


@pytest.mark.skipif(not _lib.HAS_EXT, reason="dwq._C is not built")
@pytest.mark.parametrize("device_type", ["meta", "mps", "xpu"])
def test_other_device_types_have_no_kernel(device_type, monkeypatch):
    """has_kernel(name, device_type) is False (not an error) for device types other than cpu and cuda."""
    monkeypatch.setattr(_lib, "_KERNELS", {})  # (the cached answer is not what is checked)
    assert _lib.has_kernel("qgemm_acc", device_type) is False, f"has_kernel(qgemm_acc, {device_type})"


@pytest.mark.skipif(not _lib.HAS_EXT, reason="dwq._C is not built")
@pytest.mark.parametrize("answer", [True, False])
def test_a_cached_answer_is_returned_without_asking_again(monkeypatch, answer):
    """has_kernel answers from the table, a cached False as much as a True (a traced forward asks per call);
    only a name not in the table is looked up, once."""
    monkeypatch.setattr(_lib, "_KERNELS", {**_lib._KERNELS, ("qgemm_acc", "cpu"): answer})  # (a copy)
    asked = []
    monkeypatch.setattr(_lib, "_lookup", lambda name, dev: asked.append((name, dev)) or True)
    assert _lib.has_kernel("qgemm_acc", "cpu") is answer and asked == [], f"cached {answer}: asked {asked}"
    assert _lib.has_kernel("no_such_op", "cpu") is True and _lib.has_kernel("no_such_op", "cpu") is True
    assert asked == [("no_such_op", "cpu")], f"an unknown name was looked up {asked}"

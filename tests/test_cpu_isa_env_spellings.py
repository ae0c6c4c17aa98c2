"""How the CPU ops read DWQ_CPU_ISA (cpu::select_isa): set but empty is unset (the fastest path, as the CLI
reads it too), and a path is named exactly as supported_cpu_isas() spells it: another case or stray
whitespace is an unknown name, refused with the list of names, never taken for a path."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops.qgemm_reference import qgemm_acc_ref, quantize_act_ref  # noqa: E402

I32 = torch.int32


def _ops():
    """(name, call, expected) of ops that choose their path with DWQ_CPU_ISA: the GEMM and quantize_act."""
    g = torch.Generator().manual_seed(3)
    w = torch.randint(0, 256, (70, 9), dtype=torch.uint8, generator=g)
    zw = torch.randint(0, 256, (70,), dtype=I32, generator=g)
    x = torch.randint(0, 256, (7, 9), dtype=torch.uint8, generator=g)
    zx = torch.tensor([11], dtype=I32)
    blob = q.pack_weight(w, zw, 8)
    xf = torch.randn(37, generator=g) * 4
    s, z = torch.tensor([0.05]), torch.tensor([100], dtype=I32)
    return [("qgemm_acc", lambda: q.qgemm_acc(x, zx, 8, blob), qgemm_acc_ref(x, zx, w, zw)),
            ("quantize_act", lambda: q.quantize_act(xf, s, z, 8), quantize_act_ref(xf, s, z, 8))]


def test_an_empty_dwq_cpu_isa_runs_the_default_path(monkeypatch):
    """DWQ_CPU_ISA= (set, empty) is the same as unset: every op runs (on the fastest path), bit-exact."""
    monkeypatch.setenv("DWQ_CPU_ISA", "")
    for name, call, want in _ops():
        got = call()
        assert torch.equal(got, want), f"{name} with DWQ_CPU_ISA='' differs from the reference"


@pytest.mark.parametrize("spelling", ["SCALAR", "Scalar", "AVX2", "Avx512_Vnni", "AMX", " scalar", "avx2 ",
                                      "avx512", "avx512vnni"])
def test_a_path_name_in_another_spelling_is_refused(monkeypatch, spelling):
    """Only the exact lower-case names select a path: another case, a space or a near name is unknown."""
    monkeypatch.setenv("DWQ_CPU_ISA", spelling)
    for name, call, _ in _ops():
        with pytest.raises(RuntimeError, match=rf"dwq\.{name}: DWQ_CPU_ISA={spelling} is not one of scalar, avx2, "
                                               r"avx512_vnni, amx"):
            call()

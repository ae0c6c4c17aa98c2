"""Source rules the compilers of other machines enforce (issue 9: GCC 13 failed where GCC 12 built)."""
import pathlib
import re

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"


def test_isa_files_open_their_target_region_after_every_include():
    # A target pragma in force over the standard headers breaks GCC 13 (always_inline allocator
    # members: "target specific option mismatch") and compiles std:: COMDAT code for the ISA.
    isa_files = sorted(CSRC.glob("cpu/*_avx*.cpp"))
    assert isa_files, "no per-ISA kernel files found"
    for path in isa_files:
        text = path.read_text()
        begin = text.find("DWQ_ISA_REGION_BEGIN(")
        assert begin > 0, f"{path.name}: no DWQ_ISA_REGION_BEGIN"
        assert "DWQ_ISA_REGION_END" in text[begin:], f"{path.name}: region never closed"
        after = text[begin:]
        includes = re.findall(r'#include\s*([<"][^>"]+[>"])', after)
        # Only textual kernel pieces (cpu/*.inc.h) may be included inside the region, and only those
        # that include no header themselves (other pieces aside).
        bad = [i for i in includes if not re.fullmatch(r'"cpu/[a-z0-9_]+\.inc\.h"', i)
               or not _include_free(CSRC / i.strip('"'))]
        assert not bad, f"{path.name}: includes inside the ISA region: {bad}"


def _include_free(piece):
    """A .inc.h piece that includes only other such pieces (which in turn include nothing else)."""
    for inc in re.findall(r'^\s*#include\s*([<"][^>"]+[>"])', piece.read_text(), flags=re.M):
        if not re.fullmatch(r'"cpu/[a-z0-9_]+\.inc\.h"', inc) or not _include_free(CSRC / inc.strip('"')):
            return False
    return True


def test_no_target_pragma_outside_isa_region_header():
    for path in sorted(CSRC.rglob("*")):
        if path.suffix not in (".cpp", ".h", ".cu", ".cuh") or path.name == "isa_region.h":
            continue
        assert not re.search(r"#pragma\s+GCC\s+(target|optimize)", path.read_text()), path


def test_build_leaves_out_cuda_archs_below_8_0():
    # Many images set TORCH_CUDA_ARCH_LIST with 5.2..7.5; the kernels' mma.sync m16n8k32 and
    # cp.async would fail ptxas there. setup.py cannot be imported (it runs setup()): take the function.
    import ast

    src = (CSRC.parent / "setup.py").read_text()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "supported_arch_list"
            or isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "OLD_ARCH_NAMES" for t in n.targets)]
    assert len(keep) == 2, "setup.py: supported_arch_list / OLD_ARCH_NAMES not found"
    env = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "setup.py", "exec"), env)
    f = env["supported_arch_list"]
    assert f("5.2 6.0 7.0 7.5 8.0 8.6+PTX 9.0a") == (["8.0", "8.6+PTX", "9.0a"], ["5.2", "6.0", "7.0", "7.5"])
    assert f("7.5+PTX;Turing;Ampere,Hopper;12.0f") == (["Ampere", "Hopper", "12.0f"], ["7.5+PTX", "Turing"])
    assert f("8.0+PTX;9.0a") == (["8.0+PTX", "9.0a"], [])
    assert f("7.0") == ([], ["7.0"])

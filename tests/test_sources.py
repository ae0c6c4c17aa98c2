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
        includes = [m.group(0) for m in re.finditer(r'#include\s*[<"][^>"]+[>"]', after)]
        # Only the include-free driver pieces may be included inside the region.
        bad = [i for i in includes if not re.search(r'"cpu/qgemm_driver[^"]*\.inc\.h"', i)]
        assert not bad, f"{path.name}: includes inside the ISA region: {bad}"


def test_no_target_pragma_outside_isa_region_header():
    for path in sorted(CSRC.rglob("*")):
        if path.suffix not in (".cpp", ".h", ".cu", ".cuh") or path.name == "isa_region.h":
            continue
        assert not re.search(r"#pragma\s+GCC\s+(target|optimize)", path.read_text()), path

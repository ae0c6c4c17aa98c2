"""setup.py's ELF reader (elf_symbols) and what copied_libstdcxx counts as libstdc++'s own functions:
the global, non-weak functions defined in the object whose names are std:: (_ZNSt, _ZNKSt, _ZSt) or
the exception ABI (__cxa_*, __gxx_personality*), never weak template instances, the compiler's
local clones, data objects, or functions the object only imports. Checked on hand-made ELF files of
both classes and byte orders (the build machines make only 64-bit little-endian ones) and on small
shared objects built with the system C compiler, stripped or not."""
import shutil
import struct
import subprocess
import sys

import pytest

from test_build_link import _setup_namespace

LOCAL, GLOBAL, WEAK = 0, 1, 2
OBJECT, FUNC = 1, 2

# (name, binding, type, section index): section 0 means undefined (imported from another library).
SYMBOLS = [
    ("_ZNSt6thread6detachEv", GLOBAL, FUNC, 1),  # std::thread::detach(): libstdc++'s own
    ("_ZNKSt9exception4whatEv", GLOBAL, FUNC, 1),  # std::exception::what() const
    ("_ZSt9terminatev", GLOBAL, FUNC, 1),  # std::terminate()
    ("__cxa_throw", GLOBAL, FUNC, 1),
    ("__gxx_personality_v0", GLOBAL, FUNC, 1),
    ("_ZN3dwq3addEv", GLOBAL, FUNC, 1),  # the object's own function: defined, not libstdc++'s
    ("_ZNSt6vectorIiSaIiEE9push_backERKi", WEAK, FUNC, 1),  # a template instance
    ("_ZNSt8ios_base4InitC2Ev.cold", LOCAL, FUNC, 1),  # a compiler's local clone
    ("_ZSt4cout", GLOBAL, OBJECT, 1),  # data, not a function
    ("_ZNSt13runtime_errorC1EPKc", GLOBAL, FUNC, 0),  # imported from libstdc++.so.6
]
DEFINED = ["_ZNSt6thread6detachEv", "_ZNKSt9exception4whatEv", "_ZSt9terminatev", "__cxa_throw",
           "__gxx_personality_v0", "_ZN3dwq3addEv"]
NEEDED = ["libstdc++.so.6", "libc.so.6"]


def _elf(wide, big, symbols=SYMBOLS, needed=NEEDED, dynamic=True, link=1):
    """A minimal ELF shared object: section headers for .dynstr, .dynamic (NEEDED entries and a
    SONAME) and .dynsym, no program headers or code (elf_symbols reads only the sections)."""
    e = ">" if big else "<"
    strtab, offsets = bytearray(b"\0"), {}

    def s(name):
        if name not in offsets:
            offsets[name] = len(strtab)
            strtab.extend(name.encode() + b"\0")
        return offsets[name]

    entries = [(1, s(n)) for n in needed] + [(14, s("libprobe.so")), (0, 0)]
    dyn = b"".join(struct.pack(e + ("qQ" if wide else "iI"), tag, val) for tag, val in entries)
    syms = [(0, 0, 0)] + [(s(name), bind << 4 | typ, shndx) for name, bind, typ, shndx in symbols]
    if wide:
        sym = b"".join(struct.pack(e + "IBBHQQ", n, info, 0, shndx, 0, 0) for n, info, shndx in syms)
    else:
        sym = b"".join(struct.pack(e + "IIIBBH", n, 0, 0, info, 0, shndx) for n, info, shndx in syms)
    ehsize = 64 if wide else 52
    body = bytearray(ehsize)
    parts = {}
    for key, blob in (("str", bytes(strtab)), ("dyn", dyn), ("sym", sym)):
        body.extend(b"\0" * (-len(body) % 8))
        parts[key] = (len(body), len(blob))
        body.extend(blob)
    body.extend(b"\0" * (-len(body) % 8))
    shoff = len(body)
    shdr = e + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
    # name type flags addr offset size link info addralign entsize
    sections = [(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                (0, 3, 2, 0, *parts["str"], 0, 0, 1, 0),
                (0, 6 if dynamic else 1, 3, 0, *parts["dyn"], link, 0, 8, 16 if wide else 8),
                (0, 11, 2, 0, *parts["sym"], link, 1, 8, 24 if wide else 16)]
    for sec in sections:
        body.extend(struct.pack(shdr, *sec))
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if big else 1, 1]) + bytes(9)
    if wide:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, ehsize, 0, 0, 64, len(sections), 0)
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, 3, 1, 0, 0, shoff, 0, ehsize, 0, 0, 40, len(sections), 0)
    body[:ehsize] = header
    return bytes(body)


@pytest.mark.parametrize("wide", [True, False], ids=["64bit", "32bit"])
@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
def test_elf_reader_lists_needed_libraries_and_global_defined_functions(tmp_path, wide, big):
    f = _setup_namespace()
    path = tmp_path / "lib.so"
    path.write_bytes(_elf(wide, big))
    assert f["elf_symbols"](str(path)) == (NEEDED, DEFINED)
    assert f["copied_libstdcxx"](str(path)) == sorted(DEFINED[:5])


def test_an_object_with_only_its_own_functions_holds_no_copy(tmp_path):
    f = _setup_namespace()
    path = tmp_path / "lib.so"
    path.write_bytes(_elf(True, False, symbols=SYMBOLS[5:]))
    assert f["copied_libstdcxx"](str(path)) == []


def test_unreadable_or_non_dynamic_elf_files_give_none(tmp_path):
    f = _setup_namespace()
    cases = {
        "magic_only": b"\x7fELF",  # cut off right after the magic
        "bad_class": _elf(True, False)[:4] + b"\x03" + _elf(True, False)[5:],
        "bad_class_32bit": _elf(False, False)[:4] + b"\x03" + _elf(False, False)[5:],
        "bad_byte_order": _elf(True, False)[:5] + b"\x03" + _elf(True, False)[6:],
        "no_dynamic_section": _elf(True, False, dynamic=False),  # a relocatable .o has none
        "string_table_out_of_range": _elf(True, False, link=9),
        "truncated": _elf(True, False)[:200],
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        assert f["elf_symbols"](str(path)) is None, name
        assert f["copied_libstdcxx"](str(path)) is None, name
    assert f["elf_symbols"](str(tmp_path / "missing.so")) is None


C_SOURCE = r"""
void _ZNSt3dwq5probeEv(void) {}
void __cxa_dwq_probe(void) {}
__attribute__((weak)) void _ZNSt3dwq4weakEv(void) {}
static __attribute__((noinline)) void _ZNSt3dwq5localEv(void) { __asm__ volatile(""); }
int _ZSt3dwq_object = 1;
extern void _ZNSt3dwq6importEv(void);
extern int puts(const char*);
void dwq_own(void) { _ZNSt3dwq6importEv(); _ZNSt3dwq5localEv(); puts("dwq"); }
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and shutil.which("cc")), reason="needs Linux and cc")
def test_a_real_shared_object_is_read_whether_stripped_or_not(tmp_path):
    f = _setup_namespace()
    (tmp_path / "probe.c").write_text(C_SOURCE)
    so, obj = tmp_path / "probe.so", tmp_path / "probe.o"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(tmp_path / "probe.c")], check=True)
    subprocess.run(["cc", "-c", "-fPIC", "-o", str(obj), str(tmp_path / "probe.c")], check=True)
    needed, defined = f["elf_symbols"](str(so))
    assert "libc.so.6" in needed, needed
    assert {"_ZNSt3dwq5probeEv", "__cxa_dwq_probe", "dwq_own"} <= set(defined), defined
    assert not {"_ZNSt3dwq4weakEv", "_ZNSt3dwq5localEv", "_ZSt3dwq_object", "_ZNSt3dwq6importEv"} & set(defined)
    assert f["copied_libstdcxx"](str(so)) == ["_ZNSt3dwq5probeEv", "__cxa_dwq_probe"]
    if shutil.which("strip"):  # no .symtab left: the dynamic symbols alone must show the copy
        stripped = tmp_path / "stripped.so"
        subprocess.run(["strip", "--strip-all", "-o", str(stripped), str(so)], check=True)
        assert f["copied_libstdcxx"](str(stripped)) == ["_ZNSt3dwq5probeEv", "__cxa_dwq_probe"]
    assert f["elf_symbols"](str(obj)) is None  # a relocatable object, not a shared one

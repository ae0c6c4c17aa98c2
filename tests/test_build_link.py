"""dwq._C must use the libstdc++.so.6 that torch loaded, never carry a copy of libstdc++ (issue 9: on
the GPU machine CXX=/opt/gcc/bin/g++ linked libstdc++.a into dwq._C, and the first C++ error crashed
Python inside the copy's ostream, formatting a number of the message). setup.py's build reads the
built object's symbols, links it again against the loaded runtime where the toolchain copied
libstdc++ in, and refuses (and removes) one that still holds a copy."""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import shell_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
toolchain = pytest.mark.skipif(not (sys.platform.startswith("linux") and shutil.which("c++")),
                               reason="needs Linux and a C++ compiler named c++")

# What dwq's error messages do: format a number in an ostringstream (c10::str), in a Python module.
PROBE = r"""
#include <Python.h>
#include <sstream>
#include <string>
static PyObject* fmt(PyObject*, PyObject* arg) {
  std::ostringstream s;
  s << "v=" << PyLong_AsLong(arg);
  return PyUnicode_FromString(s.str().c_str());
}
static PyMethodDef methods[] = {{"fmt", fmt, METH_O, nullptr}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef mod = {PyModuleDef_HEAD_INIT, "probe", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_probe(void) { return PyModule_Create(&mod); }
"""

# setup.py's functions without its setup() call (importing it would build dwq).
SETUP_DEFS = """
import ast, sys
tree = ast.parse(open(SETUP).read())
ns = {"__file__": SETUP, "__name__": "dwq_setup"}
exec(compile(ast.Module(body=[n for n in tree.body if not isinstance(n, ast.Expr)], type_ignores=[]), SETUP, "exec"), ns)
"""


def _setup_namespace():
    ns = {"SETUP": str(ROOT / "setup.py")}
    exec(SETUP_DEFS, ns)
    return ns["ns"]


def test_the_elf_reader_sees_the_runtime_and_no_copy():
    f = _setup_namespace()
    assert f["elf_symbols"](str(ROOT / "setup.py")) is None  # not an ELF file
    from dwq.ops import HAS_EXT

    if not HAS_EXT:
        pytest.skip("dwq._C is not built")
    import dwq._C

    needed, _ = f["elf_symbols"](dwq._C.__file__)
    assert "libstdc++.so.6" in needed, needed
    assert f["copied_libstdcxx"](dwq._C.__file__) == []


def _build_probe(tmp_path, cxx, runtime_found=True):
    (tmp_path / "probe.cpp").write_text(PROBE)
    script = f"SETUP = {str(ROOT / 'setup.py')!r}\n" + SETUP_DEFS + textwrap.dedent(f"""
        if not {runtime_found}:
            ns["loaded_libstdcxx"] = lambda: None
        from setuptools import Extension, setup
        setup(name="probe", ext_modules=[Extension("probe", ["probe.cpp"], language="c++")],
              cmdclass=ns["cmdclass"](), script_args=["-q", "build_ext", "--inplace"])
    """)
    env = dict(os.environ, CXX=cxx)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def _wrapper(tmp_path):
    """A compiler that copies libstdc++ into every shared object, as the GPU machine's did."""
    wrapper = shell_script(tmp_path / "bin" / "g++", 'exec c++ "$@" -static-libstdc++\n')
    r = subprocess.run([str(wrapper), "-x", "c++", "-", "-o", str(tmp_path / "a.out")],
                       input="#include <sstream>\nint main() { std::ostringstream s; s << 1; }\n",
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("c++ -static-libstdc++ cannot link here (no libstdc++.a)")
    return str(wrapper)


@toolchain
def test_a_toolchain_that_copies_libstdcxx_is_linked_again_against_the_loaded_one(tmp_path):
    r = _build_probe(tmp_path, _wrapper(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dwq: the linker copied libstdc++ into" in r.stdout and "linking it again with" in r.stdout
    built = next(tmp_path.glob("probe*.so"))
    f = _setup_namespace()
    assert "libstdc++.so.6" in f["elf_symbols"](str(built))[0] and f["copied_libstdcxx"](str(built)) == []
    out = subprocess.run([sys.executable, "-c", "import probe; print(probe.fmt(16))"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "v=16", out.stdout + out.stderr


@toolchain
def test_a_plain_toolchain_builds_without_a_second_link(tmp_path):
    r = _build_probe(tmp_path, "c++")
    assert r.returncode == 0 and "linking it again" not in r.stdout, r.stdout + r.stderr


@toolchain
def test_a_copy_that_cannot_be_cured_is_refused_and_removed(tmp_path):
    r = _build_probe(tmp_path, _wrapper(tmp_path), runtime_found=False)
    assert r.returncode != 0
    assert "would hold its own copy of libstdc++" in r.stderr and "first C++ error would crash Python" in r.stderr
    assert not list(tmp_path.glob("probe*.so")) and not list(tmp_path.glob("build/lib*/probe*.so"))

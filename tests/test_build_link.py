"""dwq._C must link the libstdc++.so.6 that torch loaded, never carry a copy of libstdc++ (issue 9: on
the GPU machine CXX=/opt/gcc/bin/g++ copied libstdc++.a into dwq._C, and the first C++ error crashed
Python inside the copy's ostream, formatting a number of the message). setup.py detects such a
compiler with a probe, links the loaded runtime instead, and refuses a build that still lacks it."""
import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = {"needed_libraries", "links_cxx_runtime", "PROBE_SOURCE", "links_libstdcxx_statically"}
no_toolchain = pytest.mark.skipif(not (sys.platform.startswith("linux") and shutil.which("c++")
                                       and shutil.which("readelf")),
                                  reason="needs Linux, a C++ compiler named c++ and readelf (binutils)")


def _setup_functions():
    """setup.py's link checks (it cannot be imported: it runs setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in NAMES
            or isinstance(n, ast.Assign) and any(getattr(t, "id", "") in NAMES for t in n.targets)]
    assert {getattr(n, "name", None) or n.targets[0].id for n in keep} == NAMES
    import re
    import shlex

    env = {"os": os, "re": re, "shlex": shlex, "subprocess": subprocess}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "setup.py", "exec"), env)
    return env


@no_toolchain
def test_probe_tells_a_compiler_that_copies_libstdcxx(tmp_path):
    f = _setup_functions()
    assert f["links_libstdcxx_statically"]("c++") is False
    wrapper = tmp_path / "g++"  # what a wrapper of the GPU machine's kind does to every link
    wrapper.write_text('#!/bin/sh\nexec c++ "$@" -static-libstdc++\n')
    wrapper.chmod(0o755)
    result = f["links_libstdcxx_statically"](str(wrapper))
    if result is None:  # (the wrapper's own link failed: this toolchain has no libstdc++.a)
        pytest.skip("c++ -static-libstdc++ cannot link here (no libstdc++.a)")
    assert result is True
    assert f["links_libstdcxx_statically"](str(tmp_path / "absent-compiler")) is None


def test_needed_entries_and_the_runtime_test():
    f = _setup_functions()
    assert f["links_cxx_runtime"](["libc10.so", "libstdc++.so.6", "libc.so.6"])
    assert f["links_cxx_runtime"](["libc++.so.1"])
    assert not f["links_cxx_runtime"](["libc10.so", "libgcc_s.so.1", "libc.so.6"])
    assert f["needed_libraries"](str(ROOT / "setup.py")) is None  # not an ELF file: readelf cannot tell


@no_toolchain
def test_the_built_extension_links_the_shared_libstdcxx():
    from dwq.ops import HAS_EXT

    if not HAS_EXT:
        pytest.skip("dwq._C is not built")
    import dwq._C

    needed = _setup_functions()["needed_libraries"](dwq._C.__file__)
    assert needed is not None and "libstdc++.so.6" in needed, needed

"""How setup.py finds its toolchain: CUDA_HOME (from the environment, else from where a wrapper nvcc's
dry run says the real binary lives, else two levels above nvcc's real path), the libstdc++.so.6 the
process loaded (from /proc/self/maps: paths with spaces, deleted mappings and other libstdc++ versions),
and the warning when the C++ compiler ships a newer libstdc++ than the loaded one."""
import io
import os
import sys

import pytest
from conftest import shell_script

from test_build_link import _setup_namespace

posix = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shell-script stand-ins need Linux")


def test_cuda_home_from_the_environment(monkeypatch):
    monkeypatch.setenv("CUDA_HOME", "/opt/some/cuda")
    assert _setup_namespace()["find_cuda_home"]() == "/opt/some/cuda"


@posix
def test_cuda_home_from_the_dry_run_of_a_wrapper_nvcc(tmp_path, monkeypatch):
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "bin").mkdir(parents=True)
    (tmp_path / "cuda").symlink_to(toolkit)
    # what /usr/local/bin/nvcc (a wrapper) prints: the real binary's directory, through a symlink
    shell_script(tmp_path / "wrap" / "nvcc", f'echo "#\\$ _HERE_={tmp_path}/cuda/bin" >&2\n'
                                        f'echo "#\\$ _TOP_={tmp_path}/elsewhere/bin/.." >&2\n')
    monkeypatch.setenv("PATH", str(tmp_path / "wrap"))
    monkeypatch.setenv("CUDA_HOME", "")  # set but empty: not a toolkit
    assert _setup_namespace()["find_cuda_home"]() == str(toolkit)


@posix
def test_cuda_home_from_nvccs_real_path_when_the_dry_run_says_nothing(tmp_path, monkeypatch):
    toolkit = tmp_path / "cuda-12.8"
    shell_script(toolkit / "bin" / "nvcc", "exit 1\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").symlink_to(toolkit / "bin" / "nvcc")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    assert _setup_namespace()["find_cuda_home"]() == str(toolkit)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing_here"))
    assert _setup_namespace()["find_cuda_home"]() is None


def test_runtime_version_reads_the_real_file_name(tmp_path):
    f = _setup_namespace()
    (tmp_path / "libstdc++.so.6.0.30").write_bytes(b"")
    (tmp_path / "libstdc++.so.6").symlink_to(tmp_path / "libstdc++.so.6.0.30")
    assert f["_runtime_version"](str(tmp_path / "libstdc++.so.6")) == 30
    assert f["_runtime_version"](str(tmp_path / "libstdc++.so.6.0.30")) == 30
    assert f["_runtime_version"](str(tmp_path / "libc.so.6")) is None


MAPS = """\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 1000 /usr/bin/python3.11
7f0000000000-7f0000001000 r--p 00000000 08:01 1001 /usr/lib/libstdc++.so.5.0.7
7f0000001000-7f0000002000 r--p 00000000 08:01 1002 /opt/new gcc/lib64/libstdc++.so.6.0.33 (deleted)
7f0000002000-7f0000003000 r--p 00000000 00:00 0 
7f0000003000-7f0000004000 r-xp 00000000 08:01 1003 /opt/my libs/libstdc++.so.6.0.32
7f0000004000-7f0000005000 r-xp 00000000 08:01 1004 /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps on Linux only")
def test_loaded_libstdcxx_takes_the_first_live_mapping_of_libstdcxx_so_6():
    f = _setup_namespace()
    real = f["loaded_libstdcxx"]()  # this process imported torch, which loads libstdc++.so.6
    assert real is not None and os.path.basename(real).startswith("libstdc++.so.6") and os.path.exists(real)
    f["open"] = lambda path, *a, **k: io.StringIO(MAPS) if path == "/proc/self/maps" else open(path, *a, **k)
    assert f["loaded_libstdcxx"]() == "/opt/my libs/libstdc++.so.6.0.32"


@posix
def test_a_compiler_with_a_newer_runtime_is_warned_about(tmp_path, monkeypatch, capsys):
    f = _setup_namespace()
    for d, n in (("old", 30), ("new", 33)):
        (tmp_path / d).mkdir()
        (tmp_path / d / f"libstdc++.so.6.0.{n}").write_bytes(b"")
        (tmp_path / d / "libstdc++.so.6").symlink_to(tmp_path / d / f"libstdc++.so.6.0.{n}")
    # a compiler given with an argument (CXX="ccache g++", "g++ -m64"), like g++ -print-file-name
    cxx = shell_script(tmp_path / "bin" / "g++", 'for a in "$@"; do case "$a" in -print-file-name=*) '
                                           f'echo {tmp_path}/new/libstdc++.so.6;; esac; done\n')
    monkeypatch.setenv("CXX", f"{cxx} -m64")
    f["check_compiler_runtime"](str(tmp_path / "old" / "libstdc++.so.6"))
    out = capsys.readouterr().out
    assert "WARNING" in out and "libstdc++ 6.0.33" in out and "loads 6.0.30" in out, out
    f["check_compiler_runtime"](str(tmp_path / "new" / "libstdc++.so.6"))  # the same version: fine
    f["check_compiler_runtime"](None)  # no runtime found in this process: nothing to compare
    f["check_compiler_runtime"]("")
    assert capsys.readouterr().out == ""


@posix
def test_a_compiler_without_a_runtime_of_its_own_is_not_compared(tmp_path, monkeypatch, capsys):
    f = _setup_namespace()
    (tmp_path / "libstdc++.so.6.0.99").write_bytes(b"")
    (tmp_path / "libstdc++.so.6").symlink_to(tmp_path / "libstdc++.so.6.0.99")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "libstdc++.so.6.0.30").write_bytes(b"")
    # g++ -print-file-name prints the bare name back when it has no such file: not a path to read
    # (even where the current directory happens to hold a file of that name)
    cxx = shell_script(tmp_path / "bin" / "g++", "echo libstdc++.so.6\n")
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.chdir(tmp_path)
    f["check_compiler_runtime"](str(tmp_path / "old" / "libstdc++.so.6.0.30"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    f["check_compiler_runtime"](str(tmp_path / "old" / "libstdc++.so.6.0.30"))
    assert capsys.readouterr().out == ""

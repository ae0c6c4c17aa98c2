"""setup.py's build switches: DWQ_SKIP_EXT, DWQ_NO_CUDA, DWQ_DEBUG, DWQ_CUDA_ARCH over
TORCH_CUDA_ARCH_LIST (default "8.0+PTX;9.0a"; entries below 8.0 left out, the default where none is
left), and the sm_90a define that lets the host code pick the wgmma kernel only where the build holds
it. extensions() only describes the extension here: nothing is compiled."""
import os
import types

import pytest
import torch.utils.cpp_extension

from test_build_link import ROOT, _setup_namespace

SWITCHES = ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "DWQ_CUDA_ARCH", "DWQ_NO_CUDA", "DWQ_SKIP_EXT", "DWQ_DEBUG")


@pytest.fixture
def setup_env(tmp_path, monkeypatch):
    """setup.py's functions, run from the source tree, with a stand-in CUDA toolkit and no switch set."""
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", str(tmp_path))  # (CUDAExtension reads it)
    monkeypatch.chdir(ROOT)
    f = _setup_namespace()
    f["check_compiler_runtime"] = lambda loaded: None
    return f


def _cuda_torch(version="12.4"):
    return types.SimpleNamespace(version=types.SimpleNamespace(cuda=version))


def test_want_cuda_needs_a_cuda_torch_a_toolkit_and_no_opt_out(tmp_path, monkeypatch):
    f = _setup_namespace()
    monkeypatch.delenv("DWQ_NO_CUDA", raising=False)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    assert f["want_cuda"](_cuda_torch()) is True
    assert f["want_cuda"](_cuda_torch(None)) is False
    monkeypatch.setenv("DWQ_NO_CUDA", "1")
    assert f["want_cuda"](_cuda_torch()) is False
    monkeypatch.setenv("DWQ_NO_CUDA", "0")
    assert f["want_cuda"](_cuda_torch()) is True
    f["find_cuda_home"] = lambda: None  # no CUDA_HOME and no nvcc
    assert f["want_cuda"](_cuda_torch()) is False


def test_skip_ext_builds_nothing(setup_env, monkeypatch):
    monkeypatch.setenv("DWQ_SKIP_EXT", "1")
    assert setup_env["extensions"]() == []


def test_default_arch_list_and_cuda_home_are_set_before_torch_reads_them(setup_env, tmp_path):
    setup_env["want_cuda"] = lambda torch: False
    (ext,) = setup_env["extensions"]()
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "8.0+PTX;9.0a"
    assert os.environ["CUDA_HOME"] == str(tmp_path)
    assert ext.name == "dwq._C" and not any(s.endswith(".cu") for s in ext.sources)


@pytest.mark.parametrize("image, dwq_arch, expected", [
    ("7.5;8.6", "9.0a", "9.0a"),  # DWQ_CUDA_ARCH wins over the image's list
    ("6.1 7.0 8.6+PTX", None, "8.6+PTX"),  # entries below 8.0 left out
    ("6.1;7.0+PTX", None, "8.0+PTX;9.0a"),  # nothing left: the default
    (None, "7.0", "8.0+PTX;9.0a"),
    ("", None, "8.0+PTX;9.0a"),  # set but empty: unset (torch read no arch at all)
    (" ; ", None, "8.0+PTX;9.0a"),
    ("Volta+Tegra,8.0", None, "8.0"),  # torch's name of 7.2
    ("Ampere+Tegra", None, "Ampere+Tegra"),  # 8.7
])
def test_arch_list_from_the_switches(setup_env, monkeypatch, capsys, image, dwq_arch, expected):
    if image is not None:
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", image)
    if dwq_arch is not None:
        monkeypatch.setenv("DWQ_CUDA_ARCH", dwq_arch)
    setup_env["want_cuda"] = lambda torch: False
    setup_env["extensions"]()
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == expected


def test_no_cuda_leaves_the_arch_list_alone(setup_env, monkeypatch):
    monkeypatch.setenv("DWQ_NO_CUDA", "1")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.0")
    (ext,) = setup_env["extensions"]()
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "7.0"
    assert not any(s.endswith(".cu") for s in ext.sources)
    assert ("DWQ_WITH_CUDA", None) not in ext.define_macros


def test_debug_switch_sets_the_cxx_optimisation(setup_env, monkeypatch):
    setup_env["want_cuda"] = lambda torch: False
    (ext,) = setup_env["extensions"]()
    assert ext.extra_compile_args["cxx"][0] == "-O3" and "-g" not in ext.extra_compile_args["cxx"]
    monkeypatch.setenv("DWQ_DEBUG", "1")
    (ext,) = setup_env["extensions"]()
    assert ext.extra_compile_args["cxx"][:2] == ["-O0", "-g"] and "-O3" not in ext.extra_compile_args["cxx"]


@pytest.mark.parametrize("arch, sm90a", [("8.0;9.0a", True), ("9.0a+PTX", True), ("8.0+PTX, 8.6", False),
                                         ("8.0 9.0", False)])
def test_cuda_build_defines_sm90a_only_where_it_is_built(setup_env, monkeypatch, arch, sm90a):
    monkeypatch.setenv("DWQ_CUDA_ARCH", arch)
    setup_env["want_cuda"] = lambda torch: True
    (ext,) = setup_env["extensions"]()
    assert ("DWQ_WITH_CUDA", None) in ext.define_macros
    assert any(s.endswith(".cu") for s in ext.sources)
    assert (("DWQ_BUILT_SM90A", None) in ext.define_macros) == sm90a

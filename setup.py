"""Build dwq._C with torch.utils.cpp_extension.

Switches (environment variables):
  DWQ_NO_CUDA=1   build the C++ (CPU) ops only, even where torch and nvcc have CUDA.
  DWQ_DEBUG=1     -O0 -g, for gdb and sanitizers.
  CUDA_HOME       the CUDA toolkit; otherwise found from the real location of nvcc
                  (on these machines /usr/local/bin/nvcc is a shell wrapper).
  DWQ_CUDA_ARCH   TORCH_CUDA_ARCH_LIST to build for, over one set in the environment (default, when
                  neither is set: "8.0+PTX;9.0a": sm_80 and Hopper's sm_90a binaries, plus
                  compute_80 PTX that any newer GPU can JIT).
  DWQ_SKIP_EXT=1  install the Python package only (the Makefile then builds dwq._C in place).
  MAX_JOBS        parallel compile jobs for ninja (default: cores).

The CPU kernels pick their ISA at run time (csrc/cpu/*_avx512vnni.cpp carry their own
target pragmas), so the extension runs on any x86-64.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import find_packages, setup


def find_cuda_home():
    """CUDA_HOME, else the toolkit directory nvcc really lives in, else None."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        # nvcc may be a wrapper script; its dry run prints the directory of the real binary.
        out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull], capture_output=True, text=True, timeout=30)
        m = re.search(r"_HERE_=(\S+)", out.stdout + out.stderr)
        if m:
            return os.path.dirname(os.path.realpath(m.group(1)))
    except (OSError, subprocess.SubprocessError):
        pass
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def _runtime_version(path):
    """N of libstdc++.so.6.0.N from the library's real file name, else None."""
    m = re.search(r"libstdc\+\+\.so\.6\.0\.(\d+)$", os.path.realpath(path))
    return int(m.group(1)) if m else None


def loaded_libstdcxx():
    """Path of the libstdc++.so.6 this process loaded (importing torch loads it), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith("libstdc++.so.6"):
                    return path
    except OSError:
        pass
    return None


def needed_libraries(path):
    """The NEEDED entries of an ELF shared object (readelf -d), or None where readelf cannot tell."""
    try:
        out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def links_cxx_runtime(needed):
    return any(n.startswith(("libstdc++.so", "libc++.so")) for n in needed)


# What dwq's error messages do: format a number into an ostringstream (c10::str).
PROBE_SOURCE = ("#include <sstream>\n#include <string>\n"
                "std::string dwq_probe(long v) { std::ostringstream s; s << v; return s.str(); }\n")


def links_libstdcxx_statically(cxx):
    """True when ``cxx -shared`` copies libstdc++ into the shared object instead of linking
    libstdc++.so.6; None where that cannot be told (no compiler or no readelf).

    Issue 9: on the GPU machine CXX=/opt/gcc/bin/g++ did so. dwq._C then held a second libstdc++
    beside the one torch had loaded, and the first C++ error crashed Python (SIGSEGV in the copy's
    std::ostream::_M_insert<long>, formatting the message's first number; a gdb backtrace there).
    Where the copy matches the loaded runtime it does not crash but drops every number from the
    messages: what a wrapper adding -static-libstdc++ to GCC 12 does here."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src, so = os.path.join(d, "probe.cpp"), os.path.join(d, "probe.so")
        with open(src, "w") as f:
            f.write(PROBE_SOURCE)
        try:
            r = subprocess.run([*shlex.split(cxx), "-shared", "-fPIC", src, "-o", so], capture_output=True,
                               timeout=300)
        except (OSError, subprocess.SubprocessError):
            return None
        needed = needed_libraries(so) if r.returncode == 0 else None
        return None if needed is None else not links_cxx_runtime(needed)


def check_compiler_runtime(loaded):
    """Warns when the C++ compiler's runtime library is newer than ``loaded``, the one this Python
    loads: dwq._C is compiled against the compiler's libstdc++ headers but runs with the
    libstdc++.so.6 that the interpreter and torch already loaded (its SONAME is loaded once per
    process), and a newer compiler's code may need symbols that the older runtime lacks. This only
    warns (it was a suspect for issue 9, which links_libstdcxx_statically found instead), and names
    the remedy: LD_LIBRARY_PATH=<the compiler's lib dir>.
    """
    cxx = os.environ.get("CXX", "c++")
    try:
        mine = subprocess.run([*shlex.split(cxx), "-print-file-name=libstdc++.so.6"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return
    if not (loaded and os.path.isabs(mine) and os.path.exists(mine)):
        return
    have, need = _runtime_version(loaded), _runtime_version(mine)
    if have is not None and need is not None and need > have:
        print(f"dwq: WARNING: {cxx} ships libstdc++ 6.0.{need} ({os.path.realpath(mine)}) but this Python loads "
              f"6.0.{have} ({os.path.realpath(loaded)}); dwq._C may fail to import. Run "
              f"with LD_LIBRARY_PATH={os.path.dirname(os.path.realpath(mine))} or build with the system compiler.")


def runtime_link_args(loaded):
    """Linker inputs that make dwq._C use ``loaded`` (the process's libstdc++.so.6) where the compiler
    would otherwise copy libstdc++ into it: named before the libraries the compiler driver appends,
    it resolves every libstdc++ symbol, so nothing is taken from libstdc++.a."""
    cxx = os.environ.get("CXX", "c++")
    static = links_libstdcxx_statically(cxx) if loaded else False
    if static is None:
        print(f"dwq: WARNING: could not tell whether {cxx} links libstdc++ statically (its probe failed to link, "
              f"or readelf is missing); if dwq's C++ errors crash Python, that is the first thing to check")
    if not static:
        return []
    print(f"dwq: {cxx} links libstdc++ statically into shared objects; linking {loaded} instead (a second "
          f"libstdc++ inside dwq._C crashed Python on its first C++ error)")
    return [loaded]


# Named TORCH_CUDA_ARCH_LIST entries below compute capability 8.0 (torch's names).
OLD_ARCH_NAMES = {"kepler", "kepler+tesla", "maxwell", "maxwell+tegra", "pascal", "volta", "turing"}


def supported_arch_list(value):
    """(kept, dropped) entries of a TORCH_CUDA_ARCH_LIST value: the CUDA kernels use mma.sync
    m16n8k32 and cp.async, so archs below 8.0 (which many images list) would fail ptxas."""
    kept, dropped = [], []
    for a in value.replace(",", ";").replace(" ", ";").split(";"):
        a = a.strip()
        if not a:
            continue
        try:
            old = float(a.split("+")[0].rstrip("abf")) < 8.0
        except ValueError:
            old = a.lower() in OLD_ARCH_NAMES
        (dropped if old else kept).append(a)
    return kept, dropped


def want_cuda(torch):
    if os.environ.get("DWQ_NO_CUDA", "0") == "1":
        return False
    return torch.version.cuda is not None and find_cuda_home() is not None


def extensions():
    if os.environ.get("DWQ_SKIP_EXT", "0") == "1":
        return []
    # torch.utils.cpp_extension reads CUDA_HOME when torch is first imported: set it before.
    cuda_home = find_cuda_home()
    if cuda_home and os.environ.get("DWQ_NO_CUDA", "0") != "1":
        os.environ["CUDA_HOME"] = cuda_home
        # DWQ_CUDA_ARCH wins over a TORCH_CUDA_ARCH_LIST that the machine's image may set.
        if os.environ.get("DWQ_CUDA_ARCH"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = os.environ["DWQ_CUDA_ARCH"]
        default = "8.0+PTX;9.0a"
        kept, dropped = supported_arch_list(os.environ.setdefault("TORCH_CUDA_ARCH_LIST", default))
        if dropped:
            print(f"dwq: leaving {';'.join(dropped)} out of TORCH_CUDA_ARCH_LIST: the CUDA kernels need compute "
                  f"capability 8.0 or newer{'' if kept else f'; building for {default}'}")
            os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(kept) if kept else default
    import torch

    loaded = loaded_libstdcxx()  # after torch: its libstdc++ is the one dwq._C will run with
    check_compiler_runtime(loaded)
    debug = os.environ.get("DWQ_DEBUG", "0") == "1"
    use_cuda = want_cuda(torch)
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    sources += sorted(glob.glob(os.path.join("csrc", "ops", "*.cpp")))
    sources += sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    # -ffp-contract=off: never fuse multiply-add (the contract is float32 as torch computes it).
    # -fno-trapping-math: lets GCC if-convert the branch-free clamps of arith.h so that the kernel
    # loops vectorize; values are unchanged (no FP traps are enabled; NaN and signed-zero rules stay).
    cxx += ["-fopenmp", "-ffp-contract=off", "-fno-trapping-math"]
    define = []
    if use_cuda:
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        define.append(("DWQ_WITH_CUDA", None))
        # The host code may pick the sm_90a (wgmma) kernel only where the build holds it.
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(",", ";").replace(" ", ";").split(";")
        if any(a.strip().startswith("9.0a") for a in arch):
            define.append(("DWQ_BUILT_SM90A", None))
    kwargs = dict(
        name="dwq._C",
        sources=sources,
        include_dirs=[os.path.join(here, "csrc")],
        # nvcc: the same float contract as the C++ flags (no FMA contraction, IEEE division and
        # square root, subnormals kept), spelled out although the kernels' contract steps already use
        # the _rn intrinsics, so that a fast-math default elsewhere cannot change a CUDA result.
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "--expt-relaxed-constexpr", "--fmad=false", "--ftz=false",
                                                 "--prec-div=true", "--prec-sqrt=true"]},
        extra_link_args=runtime_link_args(loaded) + ["-fopenmp"],
        define_macros=define,
        py_limited_api=True,
    )
    ext = CUDAExtension(**kwargs) if use_cuda else CppExtension(**kwargs)
    print(f"dwq: building {'C++ and CUDA' if use_cuda else 'C++ only'} ops from {len(sources)} files")
    return [ext]


def cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    # Refuses a dwq._C that carries its own libstdc++ (runtime_link_args prevents it where its probe
    # can tell; this catches what the probe could not): it would crash Python at its first C++ error.
    class Build(BuildExtension):
        def build_extensions(self):
            super().build_extensions()
            if not sys.platform.startswith("linux"):
                return
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                needed = needed_libraries(path) if os.path.exists(path) else None
                if needed is not None and not links_cxx_runtime(needed):
                    os.remove(path)  # (an import of it would crash Python at the first C++ error)
                    raise SystemExit(
                        f"dwq: {path} does not link libstdc++.so.6 (NEEDED: {', '.join(needed)}): the compiler "
                        f"copied libstdc++ into it, and its first C++ error would crash Python. Build with a "
                        f"compiler that links libstdc++ dynamically (CXX=g++ with the system's GCC).")

    return {"build_ext": Build.with_options(use_ninja=True)}


setup(
    packages=find_packages(include=["dwq", "dwq.*"]),
    ext_modules=extensions(),
    cmdclass=cmdclass(),
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)

"""Build dwq._C with torch.utils.cpp_extension.

Switches (environment variables):
  DWQ_NO_CUDA=1   build the C++ (CPU) ops only, even where torch and nvcc have CUDA.
  DWQ_DEBUG=1     -O0 -g, for gdb and sanitizers.
  CUDA_HOME       the CUDA toolkit; otherwise found from the real location of nvcc
                  (on these machines /usr/local/bin/nvcc is a shell wrapper).
  DWQ_CUDA_ARCH   TORCH_CUDA_ARCH_LIST to build for, over one set in the environment (default, when
                  neither is set or both are empty: "8.0+PTX;9.0a": sm_80 and Hopper's sm_90a binaries, plus
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
                fields = line.rstrip("\n").split(None, 5)  # (the path is the rest of the line: it may hold spaces)
                if len(fields) == 6 and os.path.basename(fields[5]).startswith("libstdc++.so.6"):
                    if not fields[5].endswith(" (deleted)"):
                        return fields[5]
    except OSError:
        pass
    return None


def elf_symbols(path):
    """(NEEDED entries, names of the functions defined with global binding) of an ELF shared object,
    read from its section headers (no binutils, no locale); None where it is not a readable ELF file."""
    import struct

    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
            return None
        e, wide = "<" if data[5] == 1 else ">", data[4] == 2
        shoff = struct.unpack_from(e + ("Q" if wide else "I"), data, 0x28 if wide else 0x20)[0]
        shentsize, shnum = struct.unpack_from(e + "HH", data, 0x3A if wide else 0x2E)
        shdr = e + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")  # name type flags addr OFFSET SIZE LINK ...
        secs = [struct.unpack_from(shdr, data, shoff + i * shentsize) for i in range(shnum)]

        def string(table, at):
            start = secs[table][4] + at
            return data[start:data.index(b"\0", start)].decode()

        needed, defined, dynamic = [], [], False
        for sec in secs:
            if sec[1] == 6:  # SHT_DYNAMIC: (tag, value) pairs; DT_NEEDED = 1
                dynamic = True
                fmt = e + ("qQ" if wide else "iI")
                for k in range(sec[5] // struct.calcsize(fmt)):
                    tag, val = struct.unpack_from(fmt, data, sec[4] + k * struct.calcsize(fmt))
                    if tag == 0:
                        break
                    if tag == 1:
                        needed.append(string(sec[6], val))
            elif sec[1] in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
                fmt = e + ("IBBHQQ" if wide else "IIIBBH")
                for k in range(sec[5] // struct.calcsize(fmt)):
                    sym = struct.unpack_from(fmt, data, sec[4] + k * struct.calcsize(fmt))
                    name, info, shndx = (sym[0], sym[1], sym[3]) if wide else (sym[0], sym[3], sym[5])
                    # a function (type 2) defined here (section index not 0) with global binding (1):
                    # templates and inline functions are weak (2), the compiler's clones of them local (0)
                    if info & 0xF == 2 and info >> 4 == 1 and shndx != 0 and name:
                        defined.append(string(sec[6], name))
        return (needed, defined) if dynamic else None
    except (OSError, struct.error, IndexError, ValueError, UnicodeDecodeError):
        return None


def copied_libstdcxx(path):
    """Functions of libstdc++ itself defined inside the shared object ``path`` (the C++ runtime's
    non-template functions, the exception ABI), [] if none, None where that cannot be read.

    Issue 9: on the GPU machine CXX=/opt/gcc/bin/g++ linked libstdc++.a into dwq._C. dwq._C then
    held a second libstdc++ beside the one torch had loaded, and the first C++ error crashed Python
    (SIGSEGV in the copy's std::ostream::_M_insert<long>, formatting the message's first number; a
    cuda-gdb backtrace there). Where the copy matches the loaded runtime it does not crash but drops
    the numbers from the messages: what a wrapper adding -static-libstdc++ to GCC 12 does here. Our
    own code defines std:: functions only as weak template or inline instances, never these."""
    syms = elf_symbols(path)
    if syms is None:
        return None
    prefixes = ("_ZNSt", "_ZNKSt", "_ZSt", "__cxa_", "__gxx_personality")
    return sorted({n for n in syms[1] if n.startswith(prefixes)})


def check_compiler_runtime(loaded):
    """Warns when the C++ compiler's runtime library is newer than ``loaded``, the one this Python
    loads: dwq._C is compiled against the compiler's libstdc++ headers but runs with the
    libstdc++.so.6 that the interpreter and torch already loaded (its SONAME is loaded once per
    process), and a newer compiler's code may need symbols that the older runtime lacks.
    """
    if not loaded:
        return
    cxx = os.environ.get("CXX", "c++")
    try:
        mine = subprocess.run([*shlex.split(cxx), "-print-file-name=libstdc++.so.6"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return
    if not (os.path.isabs(mine) and os.path.exists(mine)):
        return
    have, need = _runtime_version(loaded), _runtime_version(mine)
    if have is not None and need is not None and need > have:
        print(f"dwq: WARNING: {cxx} ships libstdc++ 6.0.{need} ({os.path.realpath(mine)}) but this Python loads "
              f"6.0.{have} ({os.path.realpath(loaded)}); dwq._C may fail to import. Run "
              f"with LD_LIBRARY_PATH={os.path.dirname(os.path.realpath(mine))} or build with the system compiler.")


# Named TORCH_CUDA_ARCH_LIST entries below compute capability 8.0 (torch's names).
OLD_ARCH_NAMES = {"kepler", "kepler+tesla", "maxwell", "maxwell+tegra", "pascal", "volta", "volta+tegra", "turing"}


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
        kept, dropped = supported_arch_list(os.environ.get("TORCH_CUDA_ARCH_LIST", ""))
        if dropped:
            print(f"dwq: leaving {';'.join(dropped)} out of TORCH_CUDA_ARCH_LIST: the CUDA kernels need compute "
                  f"capability 8.0 or newer{'' if kept else f'; building for {default}'}")
        # (a list set but empty, as DWQ_CUDA_ARCH= is unset: torch read it as no arch and failed, or built
        # for the visible GPU only)
        os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(kept) if kept else default
    import torch

    check_compiler_runtime(loaded_libstdcxx())  # after torch: its libstdc++ is the one dwq._C will run with
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
        extra_link_args=["-fopenmp"],
        define_macros=define,
        py_limited_api=True,
    )
    ext = CUDAExtension(**kwargs) if use_cuda else CppExtension(**kwargs)
    print(f"dwq: building {'C++ and CUDA' if use_cuda else 'C++ only'} ops from {len(sources)} files")
    return [ext]


def cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    class Build(BuildExtension):
        """Makes every extension use the libstdc++.so.6 that the process loaded (copied_libstdcxx says
        why): where the toolchain copied libstdc++ in (a compiler wrapper, LDFLAGS, a relocated GCC
        whose libstdc++.so symlink dangles), the extension is linked again with that library named
        before the driver's own, which then resolves every libstdc++ symbol; an extension that still
        holds a copy is refused (and removed, so that it cannot be imported)."""

        def build_extensions(self):
            super().build_extensions()
            for ext in self.extensions:
                self.check_runtime(ext)

        def check_runtime(self, ext):
            path = self.get_ext_fullpath(ext.name)
            copied = copied_libstdcxx(path) if os.path.exists(path) else None
            if not copied:
                return
            loaded = loaded_libstdcxx()
            if loaded and loaded not in ext.extra_link_args:
                print(f"dwq: the linker copied libstdc++ into {path} ({len(copied)} of its functions, e.g. "
                      f"{copied[0]}); linking it again with {loaded}, the one this Python loads")
                ext.extra_link_args = [loaded, *ext.extra_link_args]
                os.remove(path)
                self.build_extension(ext)
                copied = copied_libstdcxx(path)
                if not copied:
                    return
            stale = {path}
            try:  # (setuptools copies an --inplace build into the source tree after this method)
                stale.add(self._get_inplace_equivalent(self.get_finalized_command("build_py"), ext)[0])
            except (AttributeError, TypeError, ValueError):
                pass
            for old in stale:
                if os.path.exists(old):
                    os.remove(old)
            raise SystemExit(
                f"dwq: {os.path.basename(path)} would hold its own copy of libstdc++ ({len(copied)} of its functions, "
                f"e.g. {', '.join(copied[:3])}) beside the libstdc++.so.6 that torch loads "
                f"({loaded or 'none found'}), and its first C++ error would crash Python. The loaded library "
                f"lacks what this compiler's headers need (it is older), or the link leaves it out. Build with "
                f"the compiler that matches the runtime (the system's g++: CXX=g++), or run with a newer "
                f"libstdc++.so.6 (LD_LIBRARY_PATH).")

    return {"build_ext": Build.with_options(use_ninja=True)}


setup(
    packages=find_packages(include=["dwq", "dwq.*"]),
    ext_modules=extensions(),
    cmdclass=cmdclass(),
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)

// A region of code compiled for one instruction set inside a translation unit built for generic
// x86-64: the per-ISA kernels (qgemm_avx2.cpp, qgemm_avx512vnni.cpp) open it AFTER their last
// #include and close it at the end of the file:
//
//   #include <...>                       every header first: std:: code stays generic
//   DWQ_ISA_REGION_BEGIN("avx2,fma")
//   ... kernels, the textually included driver ...
//   DWQ_ISA_REGION_END
//
// Why after the includes: with the target pragma in force, the standard headers' always_inline
// members (std::allocator's constructor and destructor since GCC 13) are declared with the ISA,
// while the special members GCC synthesizes for them are not, and GCC 13 rejects the build
// ("inlining failed in call to 'always_inline' ... target specific option mismatch"). It also
// kept std:: template instantiations out of the ISA: emitted as COMDAT copies compiled with
// AVX-512, the linker could otherwise pick them for the generic (scalar) path too.
// Templates instantiated inside the region (std::vector<...>::resize, std::min) keep the target
// of their definition, i.e. generic; generic inline code is inlined into ISA functions freely.
//
// fp-contract=off: the arithmetic contract (DESIGN.md) is float32 as torch computes it, never a
// fused multiply-add; the build passes -ffp-contract=off everywhere, and the region repeats it so
// that an FMA-capable target cannot contract `acc * mult + bias` even in a build without the flag.
// Clang has no `#pragma GCC target`; it gets the same scope through `#pragma clang attribute`
// (and contracts only within one expression, which the kernels never rely on).
#pragma once

#define DWQ_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define DWQ_ISA_REGION_BEGIN(isa) \
  DWQ_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define DWQ_ISA_REGION_END DWQ_PRAGMA(clang attribute pop)
#elif defined(__GNUC__)
#define DWQ_ISA_REGION_BEGIN(isa) \
  DWQ_PRAGMA(GCC push_options) DWQ_PRAGMA(GCC target(isa)) DWQ_PRAGMA(GCC optimize("fp-contract=off"))
#define DWQ_ISA_REGION_END DWQ_PRAGMA(GCC pop_options)
#else
#error "dwq's per-ISA kernels need GCC or Clang (target pragmas)"
#endif

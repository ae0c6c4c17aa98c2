// The instruction sets the CPU kernels are built for (the integer engine's qgemm_*.cpp and the
// float kernels' float_kernels_*.cpp), chosen at run time (definitions in qgemm_common.cpp).
#pragma once
#include <string>

namespace dwq::cpu {

// amx: AVX-512 VNNI plus AMX-INT8 tiles for the integer engine's products (its float kernels are
// the AVX-512 ones).
enum class Isa : int { scalar = 0, avx2 = 1, avx512_vnni = 2, amx = 3 };
constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512_vnni, Isa::amx};  // in $DWQ_CPU_ISA's order

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
// The ISA to use now: $DWQ_CPU_ISA (scalar|avx2|avx512_vnni|amx) if set, else the best supported one.
// Returns false and fills *err if the variable names an unknown or unsupported ISA.
bool select_isa(Isa* isa, std::string* err);

}  // namespace dwq::cpu

// Dispatch of residual.h's kernels to their per-ISA builds (float_kernels_*.cpp).
#include "cpu/residual.h"

#include "cpu/float_kernels.h"

namespace dwq::cpu {

void add_relu(Isa isa, float* a, const float* b, int64_t n) {
  switch (isa) {
    case Isa::amx:  // (its float kernels are the AVX-512 build's)
    case Isa::avx512_vnni: return avx512_vnni::add_relu(a, b, n);
    case Isa::avx2: return avx2::add_relu(a, b, n);
    default: return scalar::add_relu(a, b, n);
  }
}

void add_to(Isa isa, float* a, const float* b, int64_t n) {
  switch (isa) {
    case Isa::amx:
    case Isa::avx512_vnni: return avx512_vnni::add_to(a, b, n);
    case Isa::avx2: return avx2::add_to(a, b, n);
    default: return scalar::add_to(a, b, n);
  }
}

}  // namespace dwq::cpu

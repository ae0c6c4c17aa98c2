// Dispatch of fake_quant.h's kernel to its per-ISA builds (float_kernels_*.cpp).
#include "cpu/fake_quant.h"

#include "cpu/float_kernels.h"
#include "cpu/float_io.h"

namespace dwq::cpu {

template <typename T>
int64_t fake_quant_rows(Isa isa, const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point,
                        int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits) {
  switch (isa) {
    case Isa::amx:  // (its float kernels are the AVX-512 build's)
    case Isa::avx512_vnni:
      return avx512_vnni::fake_quant_rows(x, out, codes, scale, zero_point, C, inner, row_begin, row_end, bits);
    case Isa::avx2: return avx2::fake_quant_rows(x, out, codes, scale, zero_point, C, inner, row_begin, row_end, bits);
    default: return scalar::fake_quant_rows(x, out, codes, scale, zero_point, C, inner, row_begin, row_end, bits);
  }
}

#define DWQ_INSTANTIATE(T)                                                                                        \
  template int64_t fake_quant_rows<T>(Isa, const T*, T*, int32_t*, const float*, const int32_t*, int64_t, int64_t, \
                                      int64_t, int64_t, int);
DWQ_INSTANTIATE(float)
DWQ_INSTANTIATE(double)
DWQ_INSTANTIATE(Float16)
DWQ_INSTANTIATE(BFloat16)
#undef DWQ_INSTANTIATE

}  // namespace dwq::cpu

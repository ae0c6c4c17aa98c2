// Dispatch of quantizer_fused.h's kernels to their per-ISA builds (float_kernels_*.cpp).
#include "cpu/quantizer_fused.h"

#include "cpu/float_io.h"
#include "cpu/float_kernels.h"

namespace dwq::cpu {

template <typename T>
bool range_of(Isa isa, const T* x, int64_t n, float* mn, float* mx) {
  switch (isa) {
    case Isa::amx:  // (its float kernels are the AVX-512 build's)
    case Isa::avx512_vnni: return avx512_vnni::range_of(x, n, mn, mx);
    case Isa::avx2: return avx2::range_of(x, n, mn, mx);
    default: return scalar::range_of(x, n, mn, mx);
  }
}

template <typename T, typename O>
int64_t weight_fake_quant_rows(Isa isa, const T* w, O* out, int64_t inner, int64_t row_begin, int64_t row_end,
                               int bits, int64_t* inf_rows) {
  switch (isa) {
    case Isa::amx:  // (its float kernels are the AVX-512 build's)
    case Isa::avx512_vnni: return avx512_vnni::weight_fake_quant_rows(w, out, inner, row_begin, row_end, bits, inf_rows);
    case Isa::avx2: return avx2::weight_fake_quant_rows(w, out, inner, row_begin, row_end, bits, inf_rows);
    default: return scalar::weight_fake_quant_rows(w, out, inner, row_begin, row_end, bits, inf_rows);
  }
}

#define DWQ_INSTANTIATE(T)                                                    \
  template bool range_of<T>(Isa, const T*, int64_t, float*, float*);          \
  template int64_t weight_fake_quant_rows<T, T>(Isa, const T*, T*, int64_t, int64_t, int64_t, int, int64_t*);
DWQ_INSTANTIATE(float)
DWQ_INSTANTIATE(Float16)
DWQ_INSTANTIATE(BFloat16)
#undef DWQ_INSTANTIATE
template int64_t weight_fake_quant_rows<float, Float16>(Isa, const float*, Float16*, int64_t, int64_t, int64_t, int,
                                                        int64_t*);
template int64_t weight_fake_quant_rows<float, BFloat16>(Isa, const float*, BFloat16*, int64_t, int64_t, int64_t,
                                                         int, int64_t*);

}  // namespace dwq::cpu

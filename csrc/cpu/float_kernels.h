// The float kernels of fake_quant.h / quantizer_fused.h / residual.h, once per instruction set (bodies in
// float_kernels.inc.h); fake_quant.cpp, quantizer_fused.cpp and residual.cpp dispatch on cpu::Isa.
#pragma once
#include <cstdint>

#include "cpu/fake_quant.h"

#define DWQ_FLOAT_KERNEL_DECLS                                                                                \
  template <typename T>                                                                                       \
  int64_t fake_quant_rows(const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point, \
                          int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits);            \
  template <typename T>                                                                                       \
  bool range_of(const T* x, int64_t n, float* mn, float* mx);                                                 \
  template <typename T, typename O>                                                                           \
  int64_t weight_fake_quant_rows(const T* w, O* out, int64_t inner, int64_t row_begin, int64_t row_end,      \
                                 int bits, int64_t* inf_rows);                                               \
  void add_relu(float* a, const float* b, int64_t n);                                                         \
  void add_to(float* a, const float* b, int64_t n);

namespace dwq::cpu {
namespace scalar {
DWQ_FLOAT_KERNEL_DECLS
}
namespace avx2 {
DWQ_FLOAT_KERNEL_DECLS
}
namespace avx512_vnni {
DWQ_FLOAT_KERNEL_DECLS
}
}  // namespace dwq::cpu

// Explicit instantiations, in each ISA's translation unit.
#define DWQ_FLOAT_KERNEL_INSTANTIATIONS                                                                      \
  template int64_t fake_quant_rows<float>(const float*, float*, int32_t*, const float*, const int32_t*,      \
                                          int64_t, int64_t, int64_t, int64_t, int);                          \
  template int64_t fake_quant_rows<double>(const double*, double*, int32_t*, const float*, const int32_t*,   \
                                           int64_t, int64_t, int64_t, int64_t, int);                         \
  template int64_t fake_quant_rows<Float16>(const Float16*, Float16*, int32_t*, const float*, const int32_t*, \
                                            int64_t, int64_t, int64_t, int64_t, int);                        \
  template int64_t fake_quant_rows<BFloat16>(const BFloat16*, BFloat16*, int32_t*, const float*,             \
                                             const int32_t*, int64_t, int64_t, int64_t, int64_t, int);       \
  template bool range_of<float>(const float*, int64_t, float*, float*);                                      \
  template bool range_of<Float16>(const Float16*, int64_t, float*, float*);                                  \
  template bool range_of<BFloat16>(const BFloat16*, int64_t, float*, float*);                                \
  template int64_t weight_fake_quant_rows<float, float>(const float*, float*, int64_t, int64_t, int64_t, int, \
                                                        int64_t*);                                           \
  template int64_t weight_fake_quant_rows<Float16, Float16>(const Float16*, Float16*, int64_t, int64_t,      \
                                                            int64_t, int, int64_t*);                         \
  template int64_t weight_fake_quant_rows<BFloat16, BFloat16>(const BFloat16*, BFloat16*, int64_t, int64_t,  \
                                                              int64_t, int, int64_t*);                       \
  template int64_t weight_fake_quant_rows<float, Float16>(const float*, Float16*, int64_t, int64_t, int64_t, \
                                                          int, int64_t*);                                    \
  template int64_t weight_fake_quant_rows<float, BFloat16>(const float*, BFloat16*, int64_t, int64_t,        \
                                                           int64_t, int, int64_t*);

// Torch-free fake quantization (quantize -> dequantize) at b bits, the arithmetic contract of
// DESIGN.md through csrc/common/arith.h:  q = clamp(round_half_even(x / s) + z, 0, 2^b - 1),
// out = (q - z) * s, computed in float32 (float64 for double input; float16/bfloat16 storage is
// widened to float32 exactly and the result rounded back to nearest even, as torch's casts do).
// The caller views x in memory order as [outer, C, inner] (C = 1 for per-tensor) and hands each
// thread a range of rows r in [0, outer*C); row r uses scale[r % C] and zero_point[r % C].
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dwq::cpu {

// 16-bit float storage types (bit patterns; same size and layout as at::Half / at::BFloat16).
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// T: float, double, Float16 or BFloat16. Returns the number of NaN inputs met in
// [row_begin, row_end); their outputs are NaN and codes -1. codes may be null when not wanted.
// isa: the build that runs (float_kernels_*.cpp); every one gives the same values.
template <typename T>
int64_t fake_quant_rows(Isa isa, const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point,
                        int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits);

}  // namespace dwq::cpu

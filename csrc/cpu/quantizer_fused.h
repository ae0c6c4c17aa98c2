// Torch-free CPU kernels of the fused quantizer ops (dwq::act_qparams, dwq::weight_fake_quantize;
// CUDA twins in csrc/cuda/quantizer_fused.cuh): the range of a tensor, and per-output-channel
// weight fake quantization with its own range and qparams (arith.h), one pass each; isa picks the
// build that runs (float_kernels_*.cpp), all of which give the same values.
#pragma once
#include <cstdint>

#include "cpu/fake_quant.h"

namespace dwq::cpu {

// min / max of x[0..n) as float32; returns true if x holds a NaN (then mn, mx are not meaningful).
// An empty range leaves mn = +inf, mx = -inf.
template <typename T>
bool range_of(Isa isa, const T* x, int64_t n, float* mn, float* mx);

// Rows [row_begin, row_end) of w [rows, inner] (contiguous): each row's min/max, its scale and
// zero point (arith::qparams_of_range), then its fake quantization into out, of storage type O
// (T's, or float16/bfloat16 for a float32 w: rounded once on store). A row with NaN or inf gets NaN
// outputs (the caller raises). Returns the number of NaN rows; adds the number of rows with inf
// (and no NaN) to *inf_rows.
template <typename T, typename O = T>
int64_t weight_fake_quant_rows(Isa isa, const T* w, O* out, int64_t inner, int64_t row_begin, int64_t row_end,
                               int bits, int64_t* inf_rows);

}  // namespace dwq::cpu

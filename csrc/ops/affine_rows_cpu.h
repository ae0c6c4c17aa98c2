// The row-parallel driver of the CPU affine_quantize_act (csrc/ops/qgemm.cpp) and add_affine_quantize_
// (csrc/ops/residual.cpp): rows of `inner` values, NCHW (row r has channel r % C) or channels-last.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "cpu/qgemm.h"
#include "cpu/residual.h"

namespace dwq {
namespace {

// Codes of relu?(x * mul[c] + add[c]) for `rows` rows into out. With `other`, x += other first, in
// blocks of about 2,048 values so that each block's sums are quantized while in L1; x is written only
// then. Returns the number of NaN results.
inline int64_t affine_quantize_rows_cpu(cpu::Isa isa, float* x, const float* other, int64_t rows, int64_t inner,
                                        const cpu::AffineRows& a, float scale, int32_t zp, int bits, char* out,
                                        bool u8) {
  if (rows == 0 || inner == 0) return 0;
  const int64_t esz = u8 ? 1 : 4;
  const int64_t block = other == nullptr ? rows : std::max<int64_t>(1, 2048 / inner);
  std::atomic<int64_t> nans{0};
  at::parallel_for(0, rows, std::max<int64_t>(1, (int64_t{1} << 16) / inner), [&](int64_t begin, int64_t end) {
    int64_t n = 0;
    for (int64_t r = begin; r < end; r += block) {
      const int64_t cnt = std::min(block, end - r);
      if (other != nullptr) cpu::add_to(isa, x + r * inner, other + r * inner, cnt * inner);
      cpu::AffineRows ab = a;
      ab.c0 = r % a.C;  // (the channel of row r in NCHW; unused channels-last)
      n += cpu::affine_quantize_act(isa, x + r * inner, cnt, inner, ab, scale, zp, bits, out + r * inner * esz, u8);
    }
    nans += n;
  });
  return nans.load();
}

}  // namespace
}  // namespace dwq

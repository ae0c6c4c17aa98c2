// Portable scalar microkernel of the integer GEMM engine (qgemm.h): the reference-speed fallback
// that runs on any x86-64 (and elsewhere). Same packed layouts as the SIMD paths.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/arith.h"
#include "cpu/qgemm.h"

namespace dwq::cpu::scalar {

constexpr int kMR = 4;

// C[r][j] = sum_k A[r*lda + k] * B[(k/4)*256 + j*4 + k%4], r < mr, j < 64, k < 4*kg.
static void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  for (int r = 0; r < mr; ++r) {
    int32_t acc[kBlockN] = {0};
    const uint8_t* a = A + r * lda;
    for (int64_t g = 0; g < kg; ++g) {
      const int32_t a0 = a[4 * g], a1 = a[4 * g + 1], a2 = a[4 * g + 2], a3 = a[4 * g + 3];
      const int8_t* b = B + g * 256;
      for (int j = 0; j < kBlockN; ++j)
        acc[j] += a0 * b[4 * j] + a1 * b[4 * j + 1] + a2 * b[4 * j + 2] + a3 * b[4 * j + 3];
    }
    std::memcpy(C + r * kBlockN, acc, sizeof(acc));
  }
}

#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::scalar

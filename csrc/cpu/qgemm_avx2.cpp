// AVX2 microkernel of the integer GEMM engine (qgemm.h). vpmaddubsw saturates at int16 (255*-128*2
// does not fit), so codes are widened to int16 and multiplied with vpmaddwd, which cannot overflow
// here; each int32 lane holds half of an output's 4-deep dot product and the halves are added when
// the tile is stored. Only the code after the includes is built for AVX2 (isa_region.h), so the rest stays generic.
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/isa_region.h"
#include "common/arith.h"
#include "cpu/qgemm.h"

// Everything above is generic x86-64 (see isa_region.h for why the region opens only here).
DWQ_ISA_REGION_BEGIN("avx2,fma")

namespace dwq::cpu::avx2 {

constexpr int kMR = 3;

// 16 output columns (one quarter of a 64-wide block) for MR rows.
template <int MR>
static inline void ukernel16(const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  __m256i c[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < 4; ++q) c[r][q] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; ++g) {
    __m256i a[MR];
    for (int r = 0; r < MR; ++r) {
      int32_t av;
      std::memcpy(&av, A + r * lda + 4 * g, 4);
      a[r] = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(av)));
    }
    const int8_t* b = B + g * 256;
    for (int q = 0; q < 4; ++q) {
      const __m256i bq = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + q * 16)));
      for (int r = 0; r < MR; ++r) c[r][q] = _mm256_add_epi32(c[r][q], _mm256_madd_epi16(a[r], bq));
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < 4; ++q) {
      alignas(32) int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), c[r][q]);
      for (int i = 0; i < 4; ++i) C[r * kBlockN + q * 4 + i] = t[2 * i] + t[2 * i + 1];
    }
}

static void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  for (int s = 0; s < 4; ++s) {
    const int8_t* Bs = B + s * 64;
    int32_t* Cs = C + s * 16;
    switch (mr) {
      case 1: ukernel16<1>(A, lda, Bs, kg, Cs); break;
      case 2: ukernel16<2>(A, lda, Bs, kg, Cs); break;
      default: ukernel16<3>(A, lda, Bs, kg, Cs); break;
    }
  }
}

#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::avx2

DWQ_ISA_REGION_END

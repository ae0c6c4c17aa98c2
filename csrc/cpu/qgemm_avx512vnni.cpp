// AVX-512 VNNI microkernel of the integer GEMM engine (qgemm.h): a 6 x 64 register tile,
// 24 zmm int32 accumulators fed by vpdpbusd (u8 activations x s8 shifted weights, no saturation);
// per 4-deep k step: 4 weight loads, 6 activation broadcasts, 24 vpdpbusd. Built with its own
// target pragma so the rest of the library stays generic x86-64; chosen at run time (qgemm_common).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,popcnt")
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/qgemm.h"

namespace dwq::cpu::avx512_vnni {

constexpr int kMR = 6;

// Named accumulators (not arrays) so that GCC keeps all 24 in zmm registers across the k loop.
#define DWQ_ROW_DECL(r) __m512i c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z;
#define DWQ_ROW_STEP(r, ptr)                                       \
  if constexpr (MR > r) {                                          \
    int32_t av;                                                    \
    std::memcpy(&av, (ptr), 4);                                    \
    const __m512i a = _mm512_set1_epi32(av);                       \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, a, b0);                 \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, a, b1);                 \
    c##r##2 = _mm512_dpbusd_epi32(c##r##2, a, b2);                 \
    c##r##3 = _mm512_dpbusd_epi32(c##r##3, a, b3);                 \
  }
#define DWQ_ROW_STORE(r)                                           \
  if constexpr (MR > r) {                                          \
    _mm512_storeu_si512(C + r * kBlockN, c##r##0);                 \
    _mm512_storeu_si512(C + r * kBlockN + 16, c##r##1);            \
    _mm512_storeu_si512(C + r * kBlockN + 32, c##r##2);            \
    _mm512_storeu_si512(C + r * kBlockN + 48, c##r##3);            \
  }

template <int MR>
static inline void ukernel_mr(const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  const __m512i z = _mm512_setzero_si512();
  DWQ_ROW_DECL(0) DWQ_ROW_DECL(1) DWQ_ROW_DECL(2) DWQ_ROW_DECL(3) DWQ_ROW_DECL(4) DWQ_ROW_DECL(5)
  for (int64_t g = 0; g < kg; ++g) {
    const int8_t* b = B + g * 256;
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
    const __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
    DWQ_ROW_STEP(0, A + 4 * g) DWQ_ROW_STEP(1, A + lda + 4 * g) DWQ_ROW_STEP(2, A + 2 * lda + 4 * g)
    DWQ_ROW_STEP(3, A + 3 * lda + 4 * g) DWQ_ROW_STEP(4, A + 4 * lda + 4 * g) DWQ_ROW_STEP(5, A + 5 * lda + 4 * g)
  }
  DWQ_ROW_STORE(0) DWQ_ROW_STORE(1) DWQ_ROW_STORE(2) DWQ_ROW_STORE(3) DWQ_ROW_STORE(4) DWQ_ROW_STORE(5)
}

#undef DWQ_ROW_DECL
#undef DWQ_ROW_STEP
#undef DWQ_ROW_STORE

static void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  switch (mr) {
    case 1: ukernel_mr<1>(A, lda, B, kg, C); break;
    case 2: ukernel_mr<2>(A, lda, B, kg, C); break;
    case 3: ukernel_mr<3>(A, lda, B, kg, C); break;
    case 4: ukernel_mr<4>(A, lda, B, kg, C); break;
    case 5: ukernel_mr<5>(A, lda, B, kg, C); break;
    default: ukernel_mr<6>(A, lda, B, kg, C); break;
  }
}

// Byte copy + sum (vpsadbw) + out-of-range count for the activation packer, 64 bytes a step.
static inline uint64_t copy_sum_u8(const uint8_t* src, int64_t n, uint8_t* dst, uint32_t qmax, int64_t* bad) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i lim = _mm512_set1_epi8(static_cast<char>(qmax > 255 ? 255 : qmax));
  const bool check = qmax < 255;
  __m512i acc = zero;
  int64_t b = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i v = _mm512_loadu_si512(src + i);
    _mm512_storeu_si512(dst + i, v);
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
    if (check) b += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
  }
  if (i < n) {
    const __mmask64 k = (n - i) >= 64 ? ~__mmask64{0} : ((__mmask64{1} << (n - i)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi8(k, src + i);
    _mm512_mask_storeu_epi8(dst + i, k, v);
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
    if (check) b += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
  }
  *bad += b;
  alignas(64) uint64_t lanes[8];  // (not _mm512_reduce_add_epi64: GCC 12 warns inside its header)
  _mm512_store_si512(lanes, acc);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::avx512_vnni

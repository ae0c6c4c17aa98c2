// AVX-512 VNNI microkernel of the integer GEMM engine (qgemm.h): a 6 x 64 register tile,
// 24 zmm int32 accumulators fed by vpdpbusd (u8 activations x s8 shifted weights, no saturation);
// per 4-deep k step: 4 weight loads, 6 activation broadcasts, 24 vpdpbusd; its rows come from packed
// im2col rows, per-row conv tap pointers or the zero-point-padded copy. Only the code after
// the includes is built for AVX-512 (isa_region.h), the rest stays generic x86-64; chosen at run time (qgemm_common).
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
DWQ_ISA_REGION_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,popcnt")


namespace dwq::cpu::avx512_vnni {

constexpr int kMR = 6;
#include "cpu/qgemm_mr.inc.h"

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

// One 4-deep k group g of the weights at B against rows 0..5 at row0..row5 (only the first MR used).
#define DWQ_KGROUP(g, row0, row1, row2, row3, row4, row5)                                   \
  {                                                                                          \
    const int8_t* b = B + (g) * 256;                                                         \
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);               \
    const __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);        \
    DWQ_ROW_STEP(0, row0) DWQ_ROW_STEP(1, row1) DWQ_ROW_STEP(2, row2)                        \
    DWQ_ROW_STEP(3, row3) DWQ_ROW_STEP(4, row4) DWQ_ROW_STEP(5, row5)                        \
  }

template <int MR>
static inline void ukernel_mr(const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  const __m512i z = _mm512_setzero_si512();
  DWQ_ROW_DECL(0) DWQ_ROW_DECL(1) DWQ_ROW_DECL(2) DWQ_ROW_DECL(3) DWQ_ROW_DECL(4) DWQ_ROW_DECL(5)
  for (int64_t g = 0; g < kg; ++g)
    DWQ_KGROUP(g, A + 4 * g, A + lda + 4 * g, A + 2 * lda + 4 * g, A + 3 * lda + 4 * g, A + 4 * lda + 4 * g,
               A + 5 * lda + 4 * g)
  DWQ_ROW_STORE(0) DWQ_ROW_STORE(1) DWQ_ROW_STORE(2) DWQ_ROW_STORE(3) DWQ_ROW_STORE(4) DWQ_ROW_STORE(5)
}

// Implicit-GEMM form for convolutions over dense channels-last uint8 codes: row r's K values are
// the ntaps slices rows[r * ntaps + t][0 .. 4*kgt) (an input pixel's channels, or a zero-point
// line for padding), in the weight's k order (tap-major, channel-minor; 4 | C).
template <int MR>
static inline void ukernel_taps_mr(const uint8_t* const* rows, int64_t ntaps, int64_t kgt, const int8_t* B,
                                   int32_t* C) {
  const __m512i z = _mm512_setzero_si512();
  DWQ_ROW_DECL(0) DWQ_ROW_DECL(1) DWQ_ROW_DECL(2) DWQ_ROW_DECL(3) DWQ_ROW_DECL(4) DWQ_ROW_DECL(5)
  for (int64_t t = 0; t < ntaps; ++t) {
    const uint8_t* p0 = rows[t];
    const uint8_t* p1 = MR > 1 ? rows[ntaps + t] : p0;
    const uint8_t* p2 = MR > 2 ? rows[2 * ntaps + t] : p0;
    const uint8_t* p3 = MR > 3 ? rows[3 * ntaps + t] : p0;
    const uint8_t* p4 = MR > 4 ? rows[4 * ntaps + t] : p0;
    const uint8_t* p5 = MR > 5 ? rows[5 * ntaps + t] : p0;
    for (int64_t g = 0; g < kgt; ++g)
      DWQ_KGROUP(g, p0 + 4 * g, p1 + 4 * g, p2 + 4 * g, p3 + 4 * g, p4 + 4 * g, p5 + 4 * g)
    B += kgt * 256;
  }
  DWQ_ROW_STORE(0) DWQ_ROW_STORE(1) DWQ_ROW_STORE(2) DWQ_ROW_STORE(3) DWQ_ROW_STORE(4) DWQ_ROW_STORE(5)
}

#define DWQ_ISA_IMPLICIT 1
__attribute__((noinline)) static void ukernel_taps(int mr, const uint8_t* const* rows, int64_t ntaps, int64_t kgt,
                                                   const int8_t* B, int32_t* C) {
  with_mr<kMR>(mr, [&](auto m) { ukernel_taps_mr<decltype(m)::value>(rows, ntaps, kgt, B, C); });
}

// Stride-1 conv tile read from the zero-point-padded copy (padded_rows, 64 | ch): row r's tap t is
// the ch bytes at P + toff[t] + r * ch (consecutive outputs of one output row are a pixel apart).
template <int MR>
static inline void ukernel_padded_mr(const uint8_t* P, const int64_t* toff, int64_t ntaps, int64_t ch,
                                     const int8_t* B, int32_t* C) {
  const __m512i z = _mm512_setzero_si512();
  DWQ_ROW_DECL(0) DWQ_ROW_DECL(1) DWQ_ROW_DECL(2) DWQ_ROW_DECL(3) DWQ_ROW_DECL(4) DWQ_ROW_DECL(5)
  const int64_t kgt = ch / 4;
  for (int64_t t = 0; t < ntaps; ++t) {
    const uint8_t* p = P + toff[t];
    for (int64_t g = 0; g < kgt; ++g)
      DWQ_KGROUP(g, p + 4 * g, p + ch + 4 * g, p + 2 * ch + 4 * g, p + 3 * ch + 4 * g, p + 4 * ch + 4 * g,
                 p + 5 * ch + 4 * g)
    B += kgt * 256;
  }
  DWQ_ROW_STORE(0) DWQ_ROW_STORE(1) DWQ_ROW_STORE(2) DWQ_ROW_STORE(3) DWQ_ROW_STORE(4) DWQ_ROW_STORE(5)
}

#define DWQ_ISA_PADDED 1
__attribute__((noinline)) static void ukernel_padded(int mr, const uint8_t* P, const int64_t* toff, int64_t ntaps,
                                                     int64_t ch, const int8_t* B, int32_t* C) {
  with_mr<kMR>(mr, [&](auto m) { ukernel_padded_mr<decltype(m)::value>(P, toff, ntaps, ch, B, C); });
}
// Which stride-1 convs (64 | C) read the padded copy rather than per-row tap pointers (codes of at
// most 8 bits) or im2col (limbs). bench_qgemm A/B, medians of five processes at one and two threads
// (benchmarks/results_vnni_padded_bench_qgemm.json): limbs (16 bits) at 64 channels 1.13-1.14x at
// OW 32 and 56, 1.08x at 14, 0.99x at 8; at 128 1.01-1.04x; at 256 and 512 0.76-0.92x. Codes of at
// most 8 bits at 64 channels: 4-bit weights (no pixel sums) 1.03-1.05x at OW 32 and 56, 0.96x at 8;
// 8-bit weights (pixel sums) 0.95-1.01x, so they keep the tap pointers; at 128 0.98-1.02x; at 256
// and 512 0.78-0.88x.
static bool padded_pays(int64_t C, int64_t OW, bool limbs, bool sums) {
  return limbs ? C <= 128 && OW >= 14 : C == 64 && OW >= 16 && !sums;
}

#undef DWQ_KGROUP
#undef DWQ_ROW_DECL
#undef DWQ_ROW_STEP
#undef DWQ_ROW_STORE

static void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  with_mr<kMR>(mr, [&](auto m) { ukernel_mr<decltype(m)::value>(A, lda, B, kg, C); });
}

#include "cpu/qgemm_avx512_parts.inc.h"
#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::avx512_vnni

DWQ_ISA_REGION_END

// AVX2 microkernels of the integer GEMM engine (qgemm.h).
// Codes of at most 7 bits (ukernel_narrow): vpmaddubsw multiplies u8 x s8 pairs into int16 exactly
// (|a0*b0 + a1*b1| <= 2*127*128 < 2^15) and vpmaddwd by ones completes each output's 4-deep dot
// product in one int32 lane: 32 products per vpmaddubsw. 8-bit codes and limbs (ukernel) would
// saturate there (255*-128*2 does not fit int16), so they are widened to int16 and multiplied with
// vpmaddwd (16 products each); each int32 lane then holds half of a dot product, and the halves are
// added when the tile is stored.
// Both tiles (4 rows: 5 or 6 spilled) keep their accumulators in registers (AVX2 has 16: a 3 x
// 16-column int16 tile needed 17 and spilled to the stack in every k step). Only the code after the
// includes is built for AVX2 (isa_region.h), so the rest stays generic.
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
DWQ_ISA_REGION_BEGIN("avx2,fma,popcnt")

namespace dwq::cpu::avx2 {

constexpr int kMR = 4;
#include "cpu/qgemm_mr.inc.h"
constexpr int64_t kGChunk = 256;  // 4-k groups of A widened to int16 per pass (kMR rows: 8 KiB, in L1)

// 8 output columns (of a 64-wide block) for MR rows over groups [0, kg) of rows widened to int16
// (aw: row r at r * 4 * kGChunk); adds to C when acc, else stores.
template <int MR>
static inline void ukernel8(const int16_t* aw, const int8_t* B, int64_t kg, int32_t* C, bool acc) {
  __m256i c[MR][2];
  for (int r = 0; r < MR; ++r) c[r][0] = c[r][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; ++g) {
    const int8_t* b = B + g * 256;
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
    for (int r = 0; r < MR; ++r) {
      int64_t av;
      std::memcpy(&av, aw + r * 4 * kGChunk + 4 * g, 8);
      const __m256i a = _mm256_set1_epi64x(av);
      c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(a, b0));
      c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(a, b1));
    }
  }
  for (int r = 0; r < MR; ++r) {
    // lanes (2i, 2i+1) of c[r][h] are the halves of column 4h + i: hadd pairs them
    const __m256i h = _mm256_permute4x64_epi64(_mm256_hadd_epi32(c[r][0], c[r][1]), 0xD8);
    __m256i* dst = reinterpret_cast<__m256i*>(C + r * kBlockN);
    _mm256_storeu_si256(dst, acc ? _mm256_add_epi32(_mm256_loadu_si256(dst), h) : h);
  }
}

template <int MR>
static void ukernel_mr(const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  // Each row is widened once per chunk, not once per 8 columns: the tile then broadcasts it from L1.
  alignas(32) int16_t aw[MR * 4 * kGChunk];
  for (int64_t g0 = 0; g0 < kg; g0 += kGChunk) {
    const int64_t gn = std::min(kGChunk, kg - g0);
    for (int r = 0; r < MR; ++r) {
      const uint8_t* src = A + r * lda + 4 * g0;
      int16_t* dst = aw + r * 4 * kGChunk;
      int64_t i = 0;
      for (; i + 16 <= 4 * gn; i += 16)
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + i),
                           _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
      for (; i < 4 * gn; ++i) dst[i] = src[i];
    }
    for (int s = 0; s < 8; ++s) ukernel8<MR>(aw, B + g0 * 256 + s * 32, gn, C + s * 8, g0 > 0);
  }
}

static void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  with_mr<kMR>(mr, [&](auto m) { ukernel_mr<decltype(m)::value>(A, lda, B, kg, C); });
}

// Two-limb activations (9..16 bits) as one int16 operand: x' = x - 32768 = (lo | hi << 8) ^ 0x8000
// fits int16, so vpmaddwd multiplies whole codes by a weight limb (2 passes for 16 x 16 bits, 1 for
// 16 x 8, where the limb pairs took 4 and 2). |x' * b| <= 32768 * 128 = 2^22; a 4-k group adds 4
// such products to a column (two pairs in two int32 lanes that ukernel8 adds when it stores), so
// kWideChunk groups stay within 2^30 (128 could reach 2^31), and the tile is then widened into
// int64. The caller adds 32768 * sum_k b_k per column (ukernel_wide).
constexpr int64_t kWideChunk = 64;

template <int MR>
static void ukernel_wide_mr(const uint8_t* A0, const uint8_t* A1, int64_t lda, const int8_t* B0, const int8_t* B1,
                            int64_t kg, int64_t* C) {
  alignas(32) int16_t aw[MR * 4 * kGChunk];
  alignas(32) int32_t c0[MR * kBlockN], c1[MR * kBlockN];
  const __m256i flip = _mm256_set1_epi16(static_cast<int16_t>(0x8000));
  for (int64_t g0 = 0; g0 < kg; g0 += kWideChunk) {
    const int64_t gn = std::min(kWideChunk, kg - g0);
    for (int r = 0; r < MR; ++r) {
      const uint8_t* lo = A0 + r * lda + 4 * g0;
      const uint8_t* hi = A1 + r * lda + 4 * g0;
      int16_t* dst = aw + r * 4 * kGChunk;
      int64_t i = 0;
      for (; i + 16 <= 4 * gn; i += 16) {
        const __m256i l = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + i)));
        const __m256i h = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + i)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + i),
                           _mm256_xor_si256(_mm256_or_si256(l, _mm256_slli_epi16(h, 8)), flip));
      }
      for (; i < 4 * gn; ++i) dst[i] = static_cast<int16_t>((lo[i] | hi[i] << 8) ^ 0x8000);
    }
    for (int s = 0; s < 8; ++s) {
      ukernel8<MR>(aw, B0 + g0 * 256 + s * 32, gn, c0 + s * 8, false);
      if (B1 != nullptr) ukernel8<MR>(aw, B1 + g0 * 256 + s * 32, gn, c1 + s * 8, false);
    }
    for (int64_t i = 0; i < MR * kBlockN; ++i) {
      const int64_t t = B1 != nullptr ? int64_t{c0[i]} + int64_t{c1[i]} * 256 : int64_t{c0[i]};
      C[i] = g0 > 0 ? C[i] + t : t;
    }
  }
}

// C[r][j] = sum_k (x[r][k] - 32768) * b[k][j] over K = 4 * kg (two-limb rows A0 | A1 << 8 of codes,
// b the shifted weight limb B0, plus 256 times B1 when given): T minus 32768 * sum_k b_k[j].
#define DWQ_ISA_WIDE 1
static void ukernel_wide(int mr, const uint8_t* A0, const uint8_t* A1, int64_t lda, const int8_t* B0,
                         const int8_t* B1, int64_t kg, int64_t* C) {
  with_mr<kMR>(mr, [&](auto m) { ukernel_wide_mr<decltype(m)::value>(A0, A1, lda, B0, B1, kg, C); });
}

// 16 output columns for MR rows of codes <= 127 (see the top of the file).
template <int MR>
static inline void ukernel16_narrow(const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c[MR][2];
  for (int r = 0; r < MR; ++r) c[r][0] = c[r][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + g * 256));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + g * 256 + 32));
    for (int r = 0; r < MR; ++r) {
      int32_t av;
      std::memcpy(&av, A + r * lda + 4 * g, 4);
      const __m256i a = _mm256_set1_epi32(av);
      c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b0), ones));
      c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b1), ones));
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * kBlockN), c[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * kBlockN + 8), c[r][1]);
  }
}

#define DWQ_ISA_NARROW 1
static void ukernel_narrow(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  for (int s = 0; s < 4; ++s)
    with_mr<kMR>(mr, [&](auto m) { ukernel16_narrow<decltype(m)::value>(A, lda, B + s * 64, kg, C + s * 16); });
}

// Single-pass activation packing (the driver's DWQ_ISA_ROWPACK / DWQ_ISA_COPY_SUM): byte copy, sum by
// vpsadbw and out-of-range count, 32 bytes a step (the generic loops did this a byte at a time).
#define DWQ_ISA_ROWPACK 1
struct RowPack {
  __m256i acc = _mm256_setzero_si256();
  __m256i lim;
  int64_t bad = 0, extra = 0;
  uint32_t qmax;
  bool check;
  explicit RowPack(uint32_t qm)
      : lim(_mm256_set1_epi8(static_cast<char>(qm > 255 ? 255 : qm))), qmax(qm), check(qm < 255) {}
  inline void step(__m256i v) {
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(v, _mm256_setzero_si256()));
    // v <= lim exactly where max(v, lim) == lim
    if (check) bad += _mm_popcnt_u32(~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(v, lim), lim))));
  }
  inline void tail(const uint8_t* src, int64_t n, uint8_t* dst) {
    for (int64_t i = 0; i < n; ++i) {
      if (dst != nullptr) dst[i] = src[i];
      extra += src[i];
      bad += src[i] > qmax;
    }
  }
  inline void copy(const uint8_t* src, int64_t n, uint8_t* dst) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), v);
      step(v);
    }
    tail(src + i, n - i, dst + i);
  }
  inline void add(const uint8_t* src, int64_t n) {  // sum and range check only
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) step(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    tail(src + i, n - i, nullptr);
  }
  inline void fill(uint8_t* dst, uint8_t val, int64_t n) {
    std::memset(dst, val, static_cast<size_t>(n));
    extra += static_cast<int64_t>(val) * n;
  }
  // The row's sum; resets for the next row.
  inline int64_t take() {
    const __m128i q = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    const int64_t r = _mm_cvtsi128_si64(q) + _mm_extract_epi64(q, 1) + extra;
    acc = _mm256_setzero_si256();
    extra = 0;
    return r;
  }
};

#define DWQ_ISA_COPY_SUM 1
static inline uint64_t copy_sum_u8(const uint8_t* src, int64_t n, uint8_t* dst, uint32_t qmax, int64_t* bad) {
  RowPack rp(qmax);
  rp.copy(src, n, dst);
  *bad += rp.bad;
  return static_cast<uint64_t>(rp.take());
}

#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::avx2

DWQ_ISA_REGION_END

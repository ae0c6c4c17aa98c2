// CUDA-core kernel of the integer engine for a few rows (M <= kDpMaxM: batch-1 and small-batch
// linears), where a tensor-core tile of 64 or 128 rows would be mostly zero padding: the same
// T = sum_k qx * (qw - shift), limb sets, split-K slices and fused epilogue (qgemm_epilogue.cuh) as
// the tensor-core kernels, by dp4a (4 u8 x s8 products per instruction).
//
// One CTA: kDpRows rows x one 64-column block of the blob, one K slice. Its 8 warps take every 8th
// 4-k group; lane l reads columns 2l and 2l + 1 of the group, 8 consecutive bytes of the blob's
// [Npad/64][Kp/4][64][4] planes (a warp reads the group's 256 bytes at once), and the rows' 4 codes
// (the same word for the whole warp). The warps' int32 sums meet in shared memory; thread t then
// finishes row t / 64, column t % 64. Weights past K are padding, and activation bytes past K are
// never read (the last group is assembled byte by byte), so a row of x needs only K readable bytes.
#pragma once
#include <cstdint>

#include "cuda/qgemm_epilogue.cuh"
#include "cuda/qgemm_params.h"

namespace dwq::cuda {

constexpr int kDpRows = 4, kDpWarps = 8, kDpThreads = kDpWarps * 32, kDpMaxM = 8;
static_assert(kDpRows * 64 == kDpThreads, "one finishing thread per output of the CTA");

// sum of the 4 products of u8 bytes of a and s8 bytes of b, plus c.
__device__ __forceinline__ int32_t dp4a_us(uint32_t a, uint32_t b, int32_t c) {
#if defined(__CUDA_ARCH__)
  int32_t d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else  // the C++ tests' CPU emulation of the kernels (csrc/tests/cuda_emu.h)
  for (int i = 0; i < 4; ++i)
    c += static_cast<int32_t>((a >> (8 * i)) & 255u) * static_cast<int8_t>(static_cast<uint8_t>(b >> (8 * i)));
  return c;
#endif
}

// The 4 codes at row + k, of which `left` (>= 1) lie before K; the rest read as zero.
__device__ __forceinline__ uint32_t codes4(const uint8_t* row, int64_t k, int64_t left) {
  if (left >= 4) return *reinterpret_cast<const uint32_t*>(row + k);
  uint32_t v = 0;
  for (int i = 0; i < left; ++i) v |= uint32_t(row[k + i]) << (8 * i);
  return v;
}

// Matrix mode of MmaParams (A rows 4-byte aligned: lda and the base multiples of 4), the blob's limb
// planes as B (p.b, p.Kp, p.Npad). Grid: (Npad / 64, ceil(M / kDpRows), K slices of p.k_chunk).
template <int LX, int LW>
__global__ void __launch_bounds__(kDpThreads) qgemm_dp4a_kernel(__grid_constant__ const MmaParams p) {
  constexpr int SETS = LX + LW - 1;
  __shared__ int32_t part[kDpWarps][SETS][kDpRows][64];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t nb = blockIdx.x, m0 = int64_t(blockIdx.y) * kDpRows;
  const int64_t kbeg = int64_t(blockIdx.z) * p.k_chunk;
  const int64_t kend = p.K < kbeg + p.k_chunk ? p.K : kbeg + p.k_chunk;

  const uint8_t* arow[kDpRows];
  bool rok[kDpRows];
#pragma unroll
  for (int r = 0; r < kDpRows; ++r) {
    rok[r] = m0 + r < p.M;
    arow[r] = p.a + (rok[r] ? m0 + r : 0) * p.lda;
  }
  int32_t acc[SETS][kDpRows][2];
#pragma unroll
  for (int s = 0; s < SETS; ++s)
#pragma unroll
    for (int r = 0; r < kDpRows; ++r) acc[s][r][0] = acc[s][r][1] = 0;

  const int8_t* wcol = p.b + nb * 64 * p.Kp + lane * 8;
  for (int64_t g = kbeg / 4 + warp; g * 4 < kend; g += kDpWarps) {
    const int64_t k = g * 4;
    uint32_t xa[LX][kDpRows];
#pragma unroll
    for (int ia = 0; ia < LX; ++ia)
#pragma unroll
      for (int r = 0; r < kDpRows; ++r) xa[ia][r] = rok[r] ? codes4(arow[r] + ia * p.a_plane, k, kend - k) : 0u;
#pragma unroll
    for (int ib = 0; ib < LW; ++ib) {
      const uint2 wv = *reinterpret_cast<const uint2*>(wcol + ib * p.Npad * p.Kp + g * 256);
#pragma unroll
      for (int ia = 0; ia < LX; ++ia)
#pragma unroll
        for (int r = 0; r < kDpRows; ++r) {
          acc[ia + ib][r][0] = dp4a_us(xa[ia][r], wv.x, acc[ia + ib][r][0]);
          acc[ia + ib][r][1] = dp4a_us(xa[ia][r], wv.y, acc[ia + ib][r][1]);
        }
    }
  }
#pragma unroll
  for (int s = 0; s < SETS; ++s)
#pragma unroll
    for (int r = 0; r < kDpRows; ++r) {
      part[warp][s][r][2 * lane] = acc[s][r][0];
      part[warp][s][r][2 * lane + 1] = acc[s][r][1];
    }
  __syncthreads();

  const int r = threadIdx.x / 64, c = threadIdx.x % 64;
  const int64_t m = m0 + r, n = nb * 64 + c;
  if (m >= p.M || n >= p.N) return;
  int64_t t = 0;
#pragma unroll
  for (int s = 0; s < SETS; ++s) {
    int32_t v = 0;  // the slice's set sum: int32-exact for a slice of at most mma_k_chunk
#pragma unroll
    for (int w = 0; w < kDpWarps; ++w) v += part[w][s][r][c];
    t += int64_t(v) << (8 * s);
  }
  const EpiParams& e = p.ep;
  const EpiScalars sc = load_scalars(e);
  store_output(e, sc, col_terms(e, sc, n), e.kind == kOutPartialT ? 0 : e.rowsum[m], m, n, t);
}

}  // namespace dwq::cuda

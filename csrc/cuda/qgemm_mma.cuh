// Tensor-core kernel of the CUDA integer engine: T = sum_k qx * (qw - shift) on int8 MMA
// (mma.sync.m16n8k32 .u8 x .s8 -> .s32: sm_80, sm_86, sm_89, sm_90), shared-memory tiles filled
// by cp.async in a multi-stage pipeline, then the fused epilogue (qgemm_epilogue.cuh).
//
// Operands:
//  * A (activations): uint8 limb planes, rows 16-byte aligned (matrix mode: the caller's uint8
//    codes or the planes act_rows_kernel wrote), or, in implicit conv mode, the channels-last uint8
//    input itself: each 16-byte chunk of a row is 16 channels of one tap, read in place; a tap
//    outside the image is the code zx (a shared-memory store instead of a copy).
//  * B (weights): the packed blob's limb planes as they are: [Npad/64][Kp/4][64 columns][4 k] int8
//    of (limb - 128). A 16-byte chunk is 4 columns x 4 k, which is how the MMA's B fragment wants
//    them (4 consecutive k of one column per register): no repacking on the device.
// Tiles (MmaCfg): 8 warps of 16 MI x 32 columns each. 8-bit (one limb each): MI = 4, 128 x 128
// CTA tiles (warps 2 x 4), or 256 x 64 (warps 4 x 2) when N is at most 64, so that a 64-channel
// layer does not compute 128 columns; limbs (up to two 8-bit limbs of x and of w): MI = 2, 64 x 128
// tiles, three int32 accumulator sets t_s = sum_{ia+ib=s} P_ia,ib combined as
// t0 + 256 t1 + 65536 t2 in int64, as the CPU's limb3 path. Each grid z-slice covers k_chunk of K
// so that the int32 partials are exact (|P| <= 255 * 128 * k_chunk per set, twice that for t1):
// 65,536 (8-bit) and 32,768 (limb) columns; with several slices every CTA adds its int64 T into a
// workspace (split-K) and splitk_epilogue_kernel finishes.
//
// Shared-memory layouts (one pipeline stage; XOR swizzles make the fragment reads conflict-free):
//  A: [limb][BM rows][64 bytes]: 16-byte chunk c of row r at chunk c ^ ((r >> 1) & 3); fragments by
//     ldmatrix.x4 (8 rows x 16 bytes each = the m16n8k32 A fragment's four registers).
//  B: [limb][16 k-groups][BN columns x 4 bytes]: chunk c of group row g at c ^ ((g & 3) << 1);
//     fragments by 32-bit loads (lane: column gid, k-group tig: 32 distinct banks).
//
// Hopper: mma.sync runs at a fraction of sm_90's int8 rate; qgemm_wgmma.cuh is the sm_90a kernel.
#pragma once
#include <cstdint>

#include "cuda/cp_async.cuh"
#include "cuda/qgemm_arows.cuh"
#include "cuda/qgemm_epilogue.cuh"
#include "cuda/qgemm_params.h"
#include "cuda/tile_order.cuh"

namespace dwq::cuda {

constexpr int kThreads = 256;  // 8 warps
constexpr int kBK = 64, kWN = 32, kNI = 4;

template <bool LIMB_, int BN_ = 128>
struct MmaCfg {
  static constexpr bool LIMB = LIMB_;
  static constexpr int BN = BN_, WARPS_N = BN / kWN, WARPS_M = 8 / WARPS_N;
  static constexpr int MI = LIMB ? 2 : 4, WM = 16 * MI, BM = WM * WARPS_M;
  static constexpr int LXM = LIMB ? 2 : 1, LWM = LXM, STAGES = LIMB ? 3 : 4, SETS = LIMB ? 3 : 1;
  static constexpr int A_BYTES = LXM * BM * kBK, B_BYTES = LWM * kBK * BN;
  static constexpr int SMEM = STAGES * (A_BYTES + B_BYTES);
  // K per z-slice: the int32 partials' exactness bound (see the header comment).
  static constexpr int64_t K_CHUNK = LIMB ? 32768 : 65536;
  static_assert(WARPS_M * WARPS_N == 8 && BM % 64 == 0 && BN % 64 == 0, "8 warps over whole 64-row/column blocks");
};

// The tile width of a product with N columns (limbs: 128).
__host__ __device__ constexpr int mma_tile_n(bool limb, int64_t N) { return !limb && N <= 64 ? 64 : 128; }

// Runs Launch<Cfg, CONV>::run(p, stream) for the tile configuration of p (limbs: matrix mode only).
template <template <class, bool> class Launch>
cudaError_t mma_dispatch(const MmaParams& p, bool limb, bool conv, cudaStream_t stream) {
  if (limb && conv) return cudaErrorInvalidValue;  // limbs run here in matrix mode (im2col planes) only
  if (limb) return Launch<MmaCfg<true>, false>::run(p, stream);
  if (mma_tile_n(false, p.N) == 64)
    return conv ? Launch<MmaCfg<false, 64>, true>::run(p, stream) : Launch<MmaCfg<false, 64>, false>::run(p, stream);
  return conv ? Launch<MmaCfg<false>, true>::run(p, stream) : Launch<MmaCfg<false>, false>::run(p, stream);
}

#ifndef DWQ_CUDA_EMU
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// d += a (u8, 16x32 row-major) * b (s8, 32x8 column-major).
__device__ __forceinline__ void mma_u8s8(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif  // DWQ_CUDA_EMU

template <class Cfg, bool CONV>
__global__ void __launch_bounds__(kThreads) qgemm_mma_kernel(__grid_constant__ const MmaParams p) {
  constexpr bool LIMB = Cfg::LIMB;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, MI = Cfg::MI, LXM = Cfg::LXM, LWM = Cfg::LWM, STAGES = Cfg::STAGES;
  constexpr int A_BYTES = Cfg::A_BYTES, STAGE_BYTES = A_BYTES + Cfg::B_BYTES;
  constexpr int AR = BM / 64;  // A chunks per thread per limb and stage (BM rows x 4 chunks / 256)
  constexpr int BR = BN / 64;  // B chunks per thread per limb and stage (16 k-groups x BN / 4 / 256)
  DWQ_DYNAMIC_SMEM(smem);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N, gid = lane >> 2, tig = lane & 3;
  int64_t mt, nt;
  tile_of(blockIdx.x, (p.M + BM - 1) / BM, (p.N + BN - 1) / BN, &mt, &nt);
  const int64_t m0 = mt * BM, n0 = nt * BN;
  const int64_t kbeg = int64_t(blockIdx.z) * p.k_chunk;
  const int64_t kend = p.K < kbeg + p.k_chunk ? p.K : kbeg + p.k_chunk;
  const int nk = static_cast<int>((kend - kbeg + kBK - 1) / kBK);
  const int lx = LIMB ? p.lx : 1, lw = LIMB ? p.lw : 1;

  // ---- this thread's A rows (fixed over the K loop) and B chunks
  const int ac = tid & 3;  // A chunk (16 bytes) within a 64-byte stage row
  ARows<AR, CONV> ar(p, m0 + (tid >> 2), 64, kbeg + ac * 16);
  const int64_t ngroups = p.Kp / 4, nblocks = p.Npad / 64;

  auto load_stage = [&](int stage, int kt) {
    uint8_t* As = smem + stage * STAGE_BYTES;
    uint8_t* Bs = As + A_BYTES;
    const int64_t k = kbeg + int64_t(kt) * kBK + ac * 16;
    // A
    const int64_t left = p.K - k;
    const int nbytes = left <= 0 ? 0 : (left < 16 ? static_cast<int>(left) : 16);
#pragma unroll
    for (int i = 0; i < AR; ++i) {
      const int r = (tid >> 2) + i * 64;
      const int sw = (ac ^ ((r >> 1) & 3)) << 4;
#pragma unroll
      for (int ia = 0; ia < LXM; ++ia) {
        if (ia >= lx) break;
        ar.copy(p, i, ia, k, nbytes, As + ia * BM * kBK + r * kBK + sw);
      }
    }
    ar.advance(p, kBK);
    // B: 16 k-groups x BN / 4 chunks per limb
    const int64_t g0 = (kbeg + int64_t(kt) * kBK) / 4;
#pragma unroll
    for (int i = 0; i < BR; ++i) {
      const int id = tid + i * kThreads;
      const int g = id / (BN / 4), c = id % (BN / 4);
      const int64_t G = g0 + g, NB = n0 / 64 + (c >> 4);
      const bool ok = G < ngroups && NB < nblocks;
      const int off = g * (BN * 4) + ((c ^ ((g & 3) << 1)) << 4);
#pragma unroll
      for (int ib = 0; ib < LWM; ++ib) {
        if (ib >= lw) break;
        const int8_t* src = p.b + ib * p.Npad * p.Kp + NB * 64 * p.Kp + G * 256 + (c & 15) * 16;
        cp_async16(Bs + ib * kBK * BN + off, ok ? static_cast<const void*>(src) : static_cast<const void*>(p.b),
                   ok ? 16 : 0);
      }
    }
  };

  int32_t acc[Cfg::SETS][MI][kNI][4];
#pragma unroll
  for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < kNI; ++ni)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[s][mi][ni][j] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < nk; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    {
      const int nxt = kt + STAGES - 1;
      if (nxt < nk) load_stage(nxt % STAGES, nxt);
      cp_async_commit();
    }
    const uint8_t* As = smem + (kt % STAGES) * STAGE_BYTES;
    const uint8_t* Bs = As + A_BYTES;
#pragma unroll
    for (int kk = 0; kk < kBK / 32; ++kk) {
      uint32_t af[LXM][MI][4];
      uint32_t bf[LWM][kNI][2];
#pragma unroll
      for (int ia = 0; ia < LXM; ++ia) {
        if (ia >= lx) break;
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
          const int q = lane >> 3;
          const int r = wm * Cfg::WM + mi * 16 + (q & 1) * 8 + (lane & 7);
          const int ch = kk * 2 + (q >> 1);
          ldmatrix_x4(af[ia][mi], As + ia * BM * kBK + r * kBK + ((ch ^ ((r >> 1) & 3)) << 4));
        }
      }
#pragma unroll
      for (int ib = 0; ib < LWM; ++ib) {
        if (ib >= lw) break;
#pragma unroll
        for (int ni = 0; ni < kNI; ++ni) {
          const int col = wn * kWN + ni * 8 + gid;
          const int cc = col >> 2;
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int g = kk * 8 + r * 4 + tig;
            bf[ib][ni][r] = *reinterpret_cast<const uint32_t*>(Bs + ib * kBK * BN + g * (BN * 4) +
                                                               ((cc ^ (tig << 1)) << 4) + (col & 3) * 4);
          }
        }
      }
#pragma unroll
      for (int ia = 0; ia < LXM; ++ia) {
#pragma unroll
        for (int ib = 0; ib < LWM; ++ib) {
          if (ia >= lx || ib >= lw) continue;
#pragma unroll
          for (int mi = 0; mi < MI; ++mi)
#pragma unroll
            for (int ni = 0; ni < kNI; ++ni) mma_u8s8(acc[LIMB ? ia + ib : 0][mi][ni], af[ia][mi], bf[ib][ni]);
        }
      }
    }
  }
  cp_async_wait<0>();

  // ---- epilogue: each thread owns rows (gid, gid + 8) of every m16 tile and columns
  // (2 tig, 2 tig + 1) of every n8 tile.
  const EpiParams& e = p.ep;
  const EpiScalars sc = load_scalars(e);
  ColTerms ct[kNI][2];
#pragma unroll
  for (int ni = 0; ni < kNI; ++ni)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t n = n0 + wn * kWN + ni * 8 + tig * 2 + j;
      if (n < p.N) ct[ni][j] = col_terms(e, sc, n);
    }
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + wm * Cfg::WM + mi * 16 + gid + h * 8;
      if (m >= p.M) continue;
      const int64_t rs = e.kind == kOutPartialT ? 0 : e.rowsum[m];
#pragma unroll
      for (int ni = 0; ni < kNI; ++ni) {
        const int64_t n = n0 + wn * kWN + ni * 8 + tig * 2;
        if (n >= p.N) continue;
        int64_t t[2];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          t[j] = acc[0][mi][ni][h * 2 + j];
          if (LIMB) {
            t[j] += int64_t(acc[LIMB ? 1 : 0][mi][ni][h * 2 + j]) * 256;
            t[j] += int64_t(acc[LIMB ? 2 : 0][mi][ni][h * 2 + j]) * 65536;
          }
        }
        store_pair(e, sc, ct[ni][0], ct[ni][1], rs, m, n, p.N, t[0], t[1]);
      }
    }
  }
}

}  // namespace dwq::cuda

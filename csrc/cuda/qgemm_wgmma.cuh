// Hopper (sm_90a) tensor-core kernel of the CUDA integer engine: the same product sum
// T = sum_k qx * (qw - shift), operands, split-K slices and fused epilogue (qgemm_epilogue.cuh) as
// qgemm_mma_kernel (qgemm_mma.cuh), on warpgroup MMA: wgmma.mma_async.m64n128k32.s32.u8.s8 reads
// both operands from shared memory through matrix descriptors, at Hopper's int8 rate, which
// mma.sync does not reach. Every width <= 8 is one 8-bit limb (Hopper has no int4 MMA).
//
// Operands (one pipeline stage, 128 columns of K; 128-byte swizzle, the layout wgmma's descriptors
// and TMA's SWIZZLE_128B share: 16-byte chunk c of 128-byte row r at chunk c ^ (r & 7), each 8-row
// atom 1024 bytes and 1024-aligned):
//  * A: [limb][BM rows][128 bytes] of uint8 codes: the caller's rows or planes (matrix mode) or,
//    in implicit conv mode, 16 channels of one tap per chunk of the channels-last input or of its
//    limb planes (a tap outside the image is the code zx, limb by limb), copied by cp.async as the
//    mma.sync kernel does (ARows);
//  * B: [limb][BN rows][128 bytes] int8 (limb - 128), from a K-major copy of the blob's limb planes
//    (repack_kmajor_kernel, qgemm_repack.cuh): 8-bit wgmma wants K-major rows of 16 k-bytes, the
//    blob (shared with the CPU) holds 4 columns x 4 k per 16 bytes.
// Tiles: 8-bit: two consumer warpgroups of 64 rows x 256 columns (BM 128, BN 256, two n128 MMAs per
// k-step), or x 128 / x 64 (one n128 / n64 MMA) when N is at most that; limbs (9..16 bits of x
// and/or w): one warpgroup of 64 x 128, or 64 x 64 when N is at most 64, with the int32 sets
// t_s = sum_{ia+ib=s} P_ia,ib that the mma.sync limb kernel keeps, combined in int64 the same way.
// Pipeline: 4 stages filled by cp.async from all threads, loads two stages ahead; a stage is
// overwritten only after the barrier that follows every warpgroup's wgmma.wait_group<1> on it, and
// wgmma runs asynchronously while the next stage's copies are issued.
// Compiled for sm_90a only (other targets get a trapping stub; the launcher never picks it there).
// Selected by DWQ_CUDA_GEMM=wgmma (qgemm.cu). Bit-exact on an H200 (docs/gpu_h200.md).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/cp_async.cuh"
#include "cuda/qgemm_arows.cuh"
#include "cuda/qgemm_epilogue.cuh"
#include "cuda/qgemm_params.h"
#include "cuda/tile_order.cuh"

#if (defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)) || defined(DWQ_CUDA_EMU)
#define DWQ_SM90A 1
#else
#define DWQ_SM90A 0
#endif

namespace dwq::cuda {

constexpr int kWgBK = 128;  // K per stage: one 128-byte swizzle row per operand row
constexpr int kWgStages = 4;

// Tiles by the limb counts of x (LX) and w (LW) and the tile width BN: one limb each runs two
// warpgroups; limbs run one warpgroup with LX + LW - 1 accumulator sets (the limb counts are
// template arguments so that every MMA is unconditional: the compiler then keeps them back to back).
// BN: 256 (two n128 MMAs per k-step), 128 (one) or 64 (one n64 MMA): the launcher takes the
// narrowest tile that covers N (limbs: 64 or 128), so that a 64- or 128-channel layer does not
// compute 256 columns.
// (One n256 MMA per k-step instead of two n128 ones ran no faster on an H200: docs/gpu_h200.md.)
// PP (ping-pong, the TMA kernel only, one limb each, BN <= 128): the two consumer warpgroups take
// whole 128-row tiles in turn (MSUB = 2 m64 row blocks each) instead of sharing one, so that one
// warpgroup's epilogue runs while the other's MMAs do; the stage layout is the same.
template <int LX_, int LW_, int BN_ = (LX_ * LW_ > 1 ? 128 : 256), bool PP_ = false>
struct WgCfg {
  static constexpr int LX = LX_, LW = LW_;
  static constexpr bool LIMB = LX * LW > 1, PP = PP_;
  static constexpr int WGS = LIMB ? 1 : 2, SETS = LX + LW - 1;
  static constexpr int BN = BN_, MMA_N = BN < 128 ? BN : 128, HALVES = BN / MMA_N;
  static constexpr int MSUB = PP ? 2 : 1, BLOCKS = MSUB * HALVES;  // MMAs per k32 step and warpgroup
  static constexpr int ACC = MMA_N / 2;  // accumulator registers per thread and MMA
  static_assert((MMA_N == 64 || MMA_N == 128) && HALVES * MMA_N == BN, "a tile is n64, n128 or 2 x n128");
  static_assert(!PP || (!LIMB && BN <= 128), "ping-pong tiles: one limb each, at most 128 columns");
  static constexpr int BM = 64 * WGS, THREADS = 128 * WGS;
  // The threads of one epilogue (a warpgroup in ping-pong, else every MMA thread).
  static constexpr int EPI_THREADS = PP ? 128 : THREADS;
  static constexpr int A_BYTES = LX * BM * kWgBK, B_BYTES = LW * BN * kWgBK;
  // + 1024: the dynamic shared memory base is rounded up to the swizzle atom; then the epilogue's
  // column terms (ColTerms or ColTerms32: 32 bytes per column at most, after the stages; one set per
  // warpgroup in ping-pong), then (one limb each) 8 rows of ones, the B operand of the row sums
  // (wg_mma_stage).
  static constexpr int TERMS_OFF = kWgStages * (A_BYTES + B_BYTES);
  static constexpr int ONES_OFF = TERMS_OFF + 32 * BN * (PP ? WGS : 1);
  static constexpr int SMEM = ONES_OFF + (LIMB ? 0 : 1024) + 1024;
};
static_assert(sizeof(ColTerms) <= 32 && sizeof(ColTerms32) <= 32, "WgCfg::SMEM holds 32 bytes per column's terms");

// The tile width of a product with N columns (limbs and ping-pong: 64 or 128).
__host__ __device__ constexpr int wg_tile_n(bool limb, int64_t N, bool pp = false) {
  return N <= 64 ? 64 : (limb || pp || N <= 128) ? 128 : 256;
}

// Launch<WgCfg<LX, LW, BN, PP>, conv> (CONV_OK: the implicit conv mode is instantiated at all).
template <template <class, bool> class Launch, int LX, int LW, int BN, bool CONV_OK = true, bool PP = false>
cudaError_t wg_launch(const MmaParams& p, bool conv, cudaStream_t stream) {
  if constexpr (CONV_OK) {
    if (conv) return Launch<WgCfg<LX, LW, BN, PP>, true>::run(p, stream);
  }
  return Launch<WgCfg<LX, LW, BN, PP>, false>::run(p, stream);
}

// The limb counts (p.lx, p.lw) of a product on tiles BN wide.
template <template <class, bool> class Launch, int BN, bool CONV_OK>
cudaError_t wg_launch_limbs(const MmaParams& p, bool conv, cudaStream_t stream) {
  if (p.lx == 2 && p.lw == 2) return wg_launch<Launch, 2, 2, BN, CONV_OK>(p, conv, stream);
  if (p.lx == 2) return wg_launch<Launch, 2, 1, BN, CONV_OK>(p, conv, stream);
  return wg_launch<Launch, 1, 2, BN, CONV_OK>(p, conv, stream);
}

// Runs Launch<Cfg, CONV>::run(p, stream) for the tile configuration of p: limb counts p.lx, p.lw
// and the tile width wg_tile_n(limb, p.N) (a 64-channel layer computes 64 columns, not 128 or 256).
// Limbs in implicit conv mode where LIMB_CONV (the cp.async kernel: its conv rows read limb planes
// of the input, ARows), else an error.
template <template <class, bool> class Launch, bool LIMB_CONV = false>
cudaError_t wg_dispatch(const MmaParams& p, bool limb, bool conv, cudaStream_t stream) {
  if (limb) {
    if (conv && !LIMB_CONV) return cudaErrorInvalidValue;
    return p.N <= 64 ? wg_launch_limbs<Launch, 64, LIMB_CONV>(p, conv, stream)
                     : wg_launch_limbs<Launch, 128, LIMB_CONV>(p, conv, stream);
  }
  switch (wg_tile_n(false, p.N)) {
    case 64:
      return wg_launch<Launch, 1, 1, 64>(p, conv, stream);
    case 128:
      return wg_launch<Launch, 1, 1, 128>(p, conv, stream);
    default:
      return wg_launch<Launch, 1, 1, 256>(p, conv, stream);
  }
}

// Launch<WgCfg<1, 1, BN, true>, conv>: the ping-pong tiles of a product of one limb each.
template <template <class, bool> class Launch>
cudaError_t wg_dispatch_pp(const MmaParams& p, bool conv, cudaStream_t stream) {
  if (wg_tile_n(false, p.N, true) == 64) return wg_launch<Launch, 1, 1, 64, true, true>(p, conv, stream);
  return wg_launch<Launch, 1, 1, 128, true, true>(p, conv, stream);
}

// Byte offset of chunk c (16 bytes) of row r in a 128-byte-swizzled tile.
__device__ __forceinline__ int sw128(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// Shared-memory matrix descriptor of a K-major, 128-byte-swizzled operand starting at p: start
// address >> 4 (bits 0-13), leading offset 16 bytes (unused by swizzled K-major layouts), stride
// between 8-row atoms 1024 bytes (bits 32-45), swizzle mode 1 = 128 bytes (bits 62-63). A k-step of
// 32 bytes inside the 128-byte row advances the start address (the swizzle is on address bits).
__device__ __forceinline__ uint64_t sw128_desc(const uint8_t* p) {
  const uint64_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  return ((a & 0x3FFFF) >> 4) | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

#if DWQ_SM90A && !defined(DWQ_CUDA_EMU)
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Barrier `id` (1..15; 0 is __syncthreads') of the block's first `count` threads (a multiple of 32).
__device__ __forceinline__ void named_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
// Orders this thread's generic-proxy shared-memory writes (cp.async, stores) before the async
// proxy's reads (wgmma) that follow the next barrier.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#endif  // PTX wrappers

#if DWQ_SM90A
// Keeps the compiler from moving accumulator accesses across the asynchronous MMAs.
template <int N>
__device__ __forceinline__ void fence_regs(int32_t (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

#if !defined(DWQ_CUDA_EMU)
// d (N / 2 int32 per thread: the m64nN s32 accumulator fragment) += A (u8, 64x32, smem desc a) x
// B (s8, Nx32 K-major, smem desc b), N = 64 or 128. Asynchronous: the registers are live until
// wgmma_wait.
__device__ __forceinline__ void wgmma_m64n64k32_u8s8(int32_t (&d)[32], uint64_t a, uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.u8.s8 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31},"
      " %32, %33, p;\n"
      "}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
      : "l"(a), "l"(b), "r"(1));
}
__device__ __forceinline__ void wgmma_u8s8(int32_t (&d)[32], uint64_t a, uint64_t b) { wgmma_m64n64k32_u8s8(d, a, b); }
// (the row sums: A x 8 columns of ones)
__device__ __forceinline__ void wgmma_u8s8(int32_t (&d)[4], uint64_t a, uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %6, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.s32.u8.s8 {%0, %1, %2, %3}, %4, %5, p;\n"
      "}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "l"(a), "l"(b), "r"(1));
}
__device__ __forceinline__ void wgmma_u8s8(int32_t (&d)[64], uint64_t a, uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.u8.s8 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63},"
      " %64, %65, p;\n"
      "}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(a), "l"(b), "r"(1));
}

#endif  // !DWQ_CUDA_EMU

// What a CTA's epilogues keep across its work items: the launch's scalars, read once, and the first
// column of the tile whose terms are staged in shared memory (-1: none yet), so that an item of the
// same columns as the last skips the staging and its two barriers (every item does, where N fits one
// tile: the convs of up to 256 channels).
struct WgEpiState {
  EpiScalars sc;
  int64_t staged_n0 = -1;
};
__device__ __forceinline__ WgEpiState wg_epi_state(const EpiParams& e) {
  WgEpiState st;
  st.sc = load_scalars(e);
  return st;
}

// Accumulators of one thread: [set][MMA block: m64 row block ms, n-MMA h at ms * HALVES + h][fragment
// register].
template <class Cfg>
using WgAcc = int32_t[Cfg::SETS][Cfg::BLOCKS][Cfg::ACC];
// Row sums of the A codes as the MMAs read them, per m64 row block: the m64n8 fragment of A x ones
// (register 2 h + c: row gid + 8 h, every column the same sum). Products of one limb each take their
// row sums from here (RS) unless split, not from a prep kernel over the input's rows or receptive
// fields (an implicit conv's padded taps read zx in both, so the sums are the same); < 2^31 for
// K < 8,421,505.
template <class Cfg>
using WgRows = int32_t[Cfg::MSUB][4];

// The ones operand of the row sums: 8 rows of 128 bytes at smem + Cfg::ONES_OFF (every byte 1, so the
// swizzle does not matter), written by threads 0..63 of the block; each writer then fences its
// writes for the async proxy (the barrier before the first MMA orders them for everyone).
template <class Cfg>
__device__ __forceinline__ void wg_write_ones(uint8_t* smem, int tid) {
  constexpr uint32_t kOnes = 0x01010101u;
  if (tid < 64) *reinterpret_cast<uint4*>(smem + Cfg::ONES_OFF + 16 * tid) = make_uint4(kOnes, kOnes, kOnes, kOnes);
}

// The MMAs of one pipeline stage for one warpgroup: As = its 64 A rows (ping-pong: 2 x 64; per limb
// BM * kWgBK apart), Bs = the stage's B tile; then commit and wait until at most this stage's group is
// in flight (the previous stage's MMAs completed: its buffers may be refilled once every warpgroup
// that reads them got here).
// RS: also rows += A x ones (the ones operand at `ones`).
template <class Cfg, bool RS = false>
__device__ __forceinline__ void wg_mma_stage(WgAcc<Cfg>& acc, WgRows<Cfg>& rows, const uint8_t* As, const uint8_t* Bs,
                                             const uint8_t* ones) {
  constexpr int LX = Cfg::LX, LW = Cfg::LW;
  static_assert(!RS || !Cfg::LIMB, "row sums by MMA: one limb each");
#pragma unroll
  for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
    for (int b = 0; b < Cfg::BLOCKS; ++b) fence_regs(acc[s][b]);
  if constexpr (RS)
#pragma unroll
    for (int ms = 0; ms < Cfg::MSUB; ++ms) fence_regs(rows[ms]);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kWgBK / 32; ++kk) {
#pragma unroll
    for (int ia = 0; ia < LX; ++ia) {
#pragma unroll
      for (int ms = 0; ms < Cfg::MSUB; ++ms) {
        const uint64_t da = sw128_desc(As + (ia * Cfg::BM + ms * 64) * kWgBK + kk * 32);
#pragma unroll
        for (int ib = 0; ib < LW; ++ib) {
#pragma unroll
          for (int h = 0; h < Cfg::HALVES; ++h)
            wgmma_u8s8(acc[ia + ib][ms * Cfg::HALVES + h], da,
                       sw128_desc(Bs + ib * Cfg::BN * kWgBK + h * Cfg::MMA_N * kWgBK + kk * 32));
        }
        if constexpr (RS) wgmma_u8s8(rows[ms], da, sw128_desc(ones + kk * 32));
      }
    }
  }
  wgmma_commit();
  wgmma_wait<1>();
#pragma unroll
  for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
    for (int b = 0; b < Cfg::BLOCKS; ++b) fence_regs(acc[s][b]);
  if constexpr (RS)
#pragma unroll
    for (int ms = 0; ms < Cfg::MSUB; ++ms) fence_regs(rows[ms]);
}

// The fused epilogue of kind KIND for warpgroup wg's 64 rows of tile (m0, n0), with column terms C
// (ColTerms32: the int32 epilogue, p.ep.acc32, one limb each; ColTerms: exact int64, the limb sets
// combined). The epilogue's threads (Cfg::EPI_THREADS: every MMA thread, barrier 1; in ping-pong
// warpgroup wg alone, barrier 1 + wg, its own terms) first stage the tile's column terms in `terms`
// (shared, Cfg::BN entries), then each thread finishes its fragment's outputs.
// Accumulator fragment of m64nN: warp wq of the warpgroup owns rows 16 wq .. +15 of its row block;
// register 4 j + 2 h + c holds row gid + 8 h, column 8 j + 2 tig + c.
template <class Cfg, bool RS, int KIND, class C>
__device__ __forceinline__ void wg_epilogue_k(const MmaParams& p, WgEpiState& st, WgAcc<Cfg>& acc,
                                              const WgRows<Cfg>& rows, int64_t m0, int64_t n0, int tid, C* terms) {
  constexpr bool I32 = std::is_same_v<C, ColTerms32>;
  static_assert(!I32 || Cfg::SETS == 1, "limb sets are combined in int64");
  using R = std::conditional_t<I32, uint32_t, int64_t>;  // row sum, and product sum T:
  using T = std::conditional_t<I32, int32_t, int64_t>;
  const EpiParams& e = p.ep;
  const int wg = tid >> 7, bar = Cfg::PP ? 1 + wg : 1, etid = Cfg::PP ? tid & 127 : tid;
  const EpiScalars& sc = st.sc;
  if (n0 != st.staged_n0) {  // (uniform: every thread of the epilogue walks the same items)
    named_sync(bar, Cfg::EPI_THREADS);  // everyone has read the last tile's terms
    for (int c = etid; c < Cfg::BN; c += Cfg::EPI_THREADS) terms[c] = col_terms_of<C>(e, sc, n0 + c, p.N);
    named_sync(bar, Cfg::EPI_THREADS);
    st.staged_n0 = n0;
  }
  const int lane = tid & 31, wq = (tid >> 5) & 3, gid = lane >> 2, tig = lane & 3;
  OutT<KIND>* base = static_cast<OutT<KIND>*>(KIND == kOutPartialT ? static_cast<void*>(e.ws) : e.out);
#pragma unroll
  for (int ms = 0; ms < Cfg::MSUB; ++ms) {
    int64_t row[2];
    R rs[2];
    bool mok[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + (Cfg::PP ? ms : wg) * 64 + wq * 16 + gid + h * 8;
      mok[h] = m < p.M;
      rs[h] = (KIND == kOutPartialT || !mok[h]) ? R(0)
              : RS ? static_cast<R>(static_cast<uint32_t>(rows[ms][2 * h]))
                   : static_cast<R>(e.rowsum[m]);
      row[h] = m * e.ldo;
    }
#pragma unroll
    for (int hv = 0; hv < Cfg::HALVES; ++hv) {
      const int b = ms * Cfg::HALVES + hv;
#pragma unroll
      for (int j = 0; j < Cfg::MMA_N / 8; ++j) {
        const int c = hv * Cfg::MMA_N + j * 8 + tig * 2;
        const int64_t n = n0 + c;
        if (n >= p.N) continue;
        const C c0 = terms[c], c1 = terms[c + 1];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          if (!mok[h]) continue;
          T t[2];
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const int r = 4 * j + 2 * h + q;
            t[q] = acc[0][b][r];
#pragma unroll
            for (int st = 1; st < Cfg::SETS; ++st) t[q] += int64_t(acc[st][b][r]) << (8 * st);
          }
          store_pair_k<KIND>(e, sc, c0, c1, rs[h], base, row[h] + n, n + 1 < p.N, t[0], t[1]);
        }
      }
    }
  }
}

// wg_epilogue_k for the launch's output kind (ColTerms32: not kOutPartialT).
template <class Cfg, bool RS, class C>
__device__ __forceinline__ void wg_epilogue_kinds(const MmaParams& p, WgEpiState& st, WgAcc<Cfg>& acc,
                                                  const WgRows<Cfg>& rows, int64_t m0, int64_t n0, int tid, C* terms) {
  switch (p.ep.kind) {
    case kOutF32:
      return wg_epilogue_k<Cfg, RS, kOutF32>(p, st, acc, rows, m0, n0, tid, terms);
    case kOutU8:
      return wg_epilogue_k<Cfg, RS, kOutU8>(p, st, acc, rows, m0, n0, tid, terms);
    case kOutI32:
      return wg_epilogue_k<Cfg, RS, kOutI32>(p, st, acc, rows, m0, n0, tid, terms);
    case kOutPartialT:
      if constexpr (std::is_same_v<C, ColTerms>)
        return wg_epilogue_k<Cfg, RS, kOutPartialT>(p, st, acc, rows, m0, n0, tid, terms);
      return;
    default:
      return wg_epilogue_k<Cfg, RS, kOutAccI64>(p, st, acc, rows, m0, n0, tid, terms);
  }
}

// Waits for the last MMAs, then the fused epilogue of warpgroup wg's rows of tile (m0, n0): 64
// (ping-pong: all 128) (wg_epilogue_k for the launch's kind: one branch per tile; the first version
// branched on the kind per output, fully unrolled, and ran at a fifth of the MMAs' speed on an H200,
// bound by instruction fetch). terms: the shared column terms (Cfg::TERMS_OFF; ping-pong: one set of
// 32 * BN bytes per warpgroup).
// RS: the row sums are `rows` (the MMA's), else the prep kernel's e.rowsum. st: the CTA's epilogue
// state (WgEpiState), kept across its work items.
template <class Cfg, bool RS = false>
__device__ __forceinline__ void wg_epilogue(const MmaParams& p, WgEpiState& st, WgAcc<Cfg>& acc, WgRows<Cfg>& rows,
                                            int64_t m0, int64_t n0, int tid, uint8_t* terms) {
  wgmma_wait<0>();
#pragma unroll
  for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
    for (int b = 0; b < Cfg::BLOCKS; ++b) fence_regs(acc[s][b]);
  if constexpr (RS)
#pragma unroll
    for (int ms = 0; ms < Cfg::MSUB; ++ms) fence_regs(rows[ms]);
  if constexpr (Cfg::PP) terms += (tid >> 7) * 32 * Cfg::BN;
  const EpiParams& e = p.ep;
  if constexpr (!Cfg::LIMB) {
    // (split-K partials: the launcher never sets acc32 for them)
    if (e.acc32 && e.kind != kOutPartialT)
      return wg_epilogue_kinds<Cfg, RS>(p, st, acc, rows, m0, n0, tid, reinterpret_cast<ColTerms32*>(terms));
  }
  wg_epilogue_kinds<Cfg, RS>(p, st, acc, rows, m0, n0, tid, reinterpret_cast<ColTerms*>(terms));
}

// The K range [*kbeg, *kend) of z-slice z, in nk stages of kWgBK.
__device__ __forceinline__ int wg_k_range(const MmaParams& p, int64_t z, int64_t* kbeg, int64_t* kend) {
  *kbeg = z * p.k_chunk;
  *kend = p.K < *kbeg + p.k_chunk ? p.K : *kbeg + p.k_chunk;
  return static_cast<int>((*kend - *kbeg + kWgBK - 1) / kWgBK);
}

#endif  // DWQ_SM90A

template <class Cfg, bool CONV>
__global__ void __launch_bounds__(Cfg::THREADS, 1) qgemm_wgmma_kernel(__grid_constant__ const MmaParams p) {
#if DWQ_SM90A
  constexpr int LX = Cfg::LX, LW = Cfg::LW;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, NT = Cfg::THREADS;
  constexpr int BLOCKS = Cfg::BLOCKS, SETS = Cfg::SETS;
  static_assert(!Cfg::PP, "ping-pong tiles need the TMA kernel's producer warpgroup");
  constexpr int A_BYTES = Cfg::A_BYTES, STAGE_BYTES = A_BYTES + Cfg::B_BYTES;
  constexpr int RSTEP = NT / 8;     // rows between a thread's chunks (8 chunks per 128-byte row)
  constexpr int AR = BM / RSTEP;    // A rows per thread, limb and stage
  constexpr int BR = BN / RSTEP;    // B rows per thread, limb and stage
  DWQ_DYNAMIC_SMEM(smem_raw);
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  uint8_t* smem = smem_raw + ((1024u - (base & 1023u)) & 1023u);

  const int tid = threadIdx.x, wg = tid >> 7;
  int64_t mt, nt;
  tile_of(blockIdx.x, (p.M + BM - 1) / BM, (p.N + BN - 1) / BN, &mt, &nt);
  const int64_t m0 = mt * BM, n0 = nt * BN;
  int64_t kbeg, kend;
  const int nk = wg_k_range(p, blockIdx.z, &kbeg, &kend);
  const int ac = tid & 7, r0 = tid >> 3;

  ARows<AR, CONV> ar(p, m0 + r0, RSTEP, kbeg + ac * 16);  // this thread's A rows and tap walk

  auto load_stage = [&](int stage, int kt) {
    uint8_t* As = smem + stage * STAGE_BYTES;
    uint8_t* Bs = As + A_BYTES;
    const int64_t k = kbeg + int64_t(kt) * kWgBK + ac * 16;
    const int64_t left = kend - k;
    const int nbytes = left <= 0 ? 0 : (left < 16 ? static_cast<int>(left) : 16);
#pragma unroll
    for (int i = 0; i < AR; ++i) {
      const int off = sw128(r0 + i * RSTEP, ac);
#pragma unroll
      for (int ia = 0; ia < LX; ++ia) ar.copy(p, i, ia, k, nbytes, As + ia * BM * kWgBK + off);
    }
    ar.advance(p, kWgBK);
#pragma unroll
    for (int i = 0; i < BR; ++i) {
      const int r = r0 + i * RSTEP;
      const int64_t n = n0 + r;
      const bool ok = n < p.N && nbytes > 0;
#pragma unroll
      for (int ib = 0; ib < LW; ++ib) {
        const int8_t* src = p.b + ib * p.b_plane + n * p.ldb + k;
        cp_async16(Bs + ib * BN * kWgBK + sw128(r, ac), ok ? static_cast<const void*>(src) : static_cast<const void*>(p.b),
                   ok ? nbytes : 0);
      }
    }
  };

  WgAcc<Cfg> acc;
#pragma unroll
  for (int s = 0; s < SETS; ++s)
#pragma unroll
    for (int b = 0; b < BLOCKS; ++b)
#pragma unroll
      for (int j = 0; j < Cfg::ACC; ++j) acc[s][b][j] = 0;
  constexpr bool RS = !Cfg::LIMB;  // row sums by MMA
  WgRows<Cfg> rows = {};
  if constexpr (RS) wg_write_ones<Cfg>(smem, tid);  // (fenced in the loop, before its first barrier)

#pragma unroll
  for (int s = 0; s < kWgStages - 2; ++s) {
    if (s < nk) load_stage(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < nk; ++kt) {
    cp_async_wait<kWgStages - 3>();  // this thread's copies of stage kt landed
    fence_proxy_async();
    __syncthreads();  // everyone's copies of kt landed; every warpgroup's MMAs of kt - 2 completed
    {
      const int nxt = kt + kWgStages - 2;  // into the buffer of kt - 2
      if (nxt < nk) load_stage(nxt % kWgStages, nxt);
      cp_async_commit();
    }
    const uint8_t* As = smem + (kt % kWgStages) * STAGE_BYTES + wg * 64 * kWgBK;
    wg_mma_stage<Cfg, RS>(acc, rows, As, smem + (kt % kWgStages) * STAGE_BYTES + A_BYTES, smem + Cfg::ONES_OFF);
  }
  cp_async_wait<0>();
  WgEpiState st = wg_epi_state(p.ep);
  wg_epilogue<Cfg, RS>(p, st, acc, rows, m0, n0, tid, smem + Cfg::TERMS_OFF);
#else
  (void)p;
  __trap();
#endif
}

}  // namespace dwq::cuda

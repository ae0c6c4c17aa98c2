// Warp-specialized Hopper kernel of the CUDA integer engine (sm_90a): the wgmma kernel's tiles, MMAs
// and fused epilogue (qgemm_wgmma.cuh), fed by the Tensor Memory Accelerator instead of cp.async
// from every thread. One producer warpgroup, of which one thread issues the TMA copies of a stage
// (A and B tiles, 128-byte swizzled by the copy engine exactly as the descriptors read them), and
// one or two consumer warpgroups that only wait and issue MMAs; the two sides meet at mbarriers:
//  * full[s]: armed by the producer with the stage's byte count, completed by the copies;
//  * empty[s]: one arrival per consumer thread once its warpgroup's MMAs on stage s completed.
// So loads run kWgStages - 1 stages ahead, and no __syncthreads sits in the main loop.
// Matrix mode only: a conv's padded taps read the code zx, which a TMA copy cannot produce (it
// fills zeros), so convs stay on the cp.async kernel. A and B are described by 3-D tensor maps
// (k, row, limb) made by the launcher (qgemm_wgmma_tma.cu); rows and k past the operand's end are
// zero-filled by the copy engine, so every stage is a full box and transfers the same byte count.
// COMPILED, NOT YET RUN ON A GPU when written; selected by DWQ_CUDA_GEMM=wgmma_tma.
#pragma once
#include <cuda.h>  // CUtensorMap (the type only: no driver library is linked)

#include <cstdint>

#include "cuda/qgemm_wgmma.cuh"

namespace dwq::cuda {

// Registers per thread after the split (8-bit tiles): the consumers' 128 accumulators need more
// than the 168 that 384 threads get by default; the producer needs few (256 x 232 + 128 x 40 fits
// the 64 K register file).
constexpr int kTmaProducerRegs = 40, kTmaConsumerRegs = 232;

#if DWQ_SM90A
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
// Makes the initialized barriers visible to the async proxy (the copy engine) and other threads.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// Returns once the phase of parity `parity` completed (a fresh barrier counts parity 1 as done).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t a = smem_u32(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
  } while (!done);
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// This thread's arrival plus `bytes` of copies that must land before the phase completes.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
// The box of `map` at (k, row, limb) -> dst, completing `bytes` on bar.
__device__ __forceinline__ void tma_load_3d(void* dst, const CUtensorMap* map, int k, int row, int limb, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(k), "r"(row), "r"(limb), "r"(smem_u32(bar))
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
template <int R>
__device__ __forceinline__ void regs_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R>
__device__ __forceinline__ void regs_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}
#endif  // DWQ_SM90A

// Consumer warpgroups first (threads 0 .. Cfg::THREADS - 1: the epilogue's row mapping is the
// wgmma kernel's), then the producer warpgroup.
template <int LX, int LW>
__global__ void __launch_bounds__(WgCfg<LX, LW>::THREADS + 128, 1)
    qgemm_wgmma_tma_kernel(__grid_constant__ const MmaParams p, __grid_constant__ const CUtensorMap map_a,
                           __grid_constant__ const CUtensorMap map_b) {
#if DWQ_SM90A
  using Cfg = WgCfg<LX, LW>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, CONSUMERS = Cfg::THREADS;
  constexpr int A_BYTES = Cfg::A_BYTES, STAGE_BYTES = A_BYTES + Cfg::B_BYTES;
  extern __shared__ uint8_t smem_raw[];
  __shared__ uint64_t full[kWgStages], empty[kWgStages];
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);

  const int tid = threadIdx.x;
  int64_t mt, nt;
  tile_of(blockIdx.x, (p.M + BM - 1) / BM, (p.N + BN - 1) / BN, &mt, &nt);
  const int64_t m0 = mt * BM, n0 = nt * BN;
  int64_t kbeg, kend;
  const int nk = wg_k_range(p, &kbeg, &kend);
  if (tid == CONSUMERS) {
    tma_prefetch_map(&map_a);
    tma_prefetch_map(&map_b);
  }
  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kWgStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], CONSUMERS);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (tid >= CONSUMERS) {  // producer warpgroup: one thread issues every copy, the others leave
    if constexpr (!Cfg::LIMB) regs_dec<kTmaProducerRegs>();
    if (tid == CONSUMERS) {
      for (int kt = 0; kt < nk; ++kt) {
        const int s = kt % kWgStages;
        mbar_wait(&empty[s], ((kt / kWgStages) & 1) ^ 1);  // the consumers released its last use
        uint8_t* As = smem + s * STAGE_BYTES;
        uint8_t* Bs = As + A_BYTES;
        const int k = static_cast<int>(kbeg + int64_t(kt) * kWgBK);
        mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
#pragma unroll
        for (int ia = 0; ia < LX; ++ia) tma_load_3d(As + ia * BM * kWgBK, &map_a, k, static_cast<int>(m0), ia, &full[s]);
#pragma unroll
        for (int ib = 0; ib < LW; ++ib) tma_load_3d(Bs + ib * BN * kWgBK, &map_b, k, static_cast<int>(n0), ib, &full[s]);
      }
    }
    return;
  }
  if constexpr (!Cfg::LIMB) regs_inc<kTmaConsumerRegs>();

  int32_t acc[Cfg::SETS][Cfg::HALVES][64];
#pragma unroll
  for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
    for (int h = 0; h < Cfg::HALVES; ++h)
#pragma unroll
      for (int j = 0; j < 64; ++j) acc[s][h][j] = 0;

  const int wg = tid >> 7;
  for (int kt = 0; kt < nk; ++kt) {
    const int s = kt % kWgStages;
    mbar_wait(&full[s], (kt / kWgStages) & 1);
    const uint8_t* stage = smem + s * STAGE_BYTES;
    wg_mma_stage<LX, LW>(acc, stage + wg * 64 * kWgBK, stage + A_BYTES);
    // wg_mma_stage waited until only this stage's MMAs are in flight: the previous one is free.
    if (kt > 0) mbar_arrive(&empty[(kt - 1) % kWgStages]);
  }
  wg_epilogue<LX, LW>(p, acc, m0, n0, tid);
#else
  (void)p;
  (void)map_a;
  (void)map_b;
  __trap();
#endif
}

}  // namespace dwq::cuda

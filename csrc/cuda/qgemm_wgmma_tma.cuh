// Warp-specialized Hopper kernel of the CUDA integer engine (sm_90a): the wgmma kernel's tiles, MMAs
// and fused epilogue (qgemm_wgmma.cuh), fed by a producer warpgroup instead of copies from every
// thread, while one or two consumer warpgroups only wait and issue MMAs; the two sides meet at
// mbarriers, so loads run ahead and no __syncthreads sits in the main loop:
//  * full[s]: completed when stage s landed (copy-engine bytes and producer-thread arrivals);
//  * empty[s]: one arrival per consumer thread once its warpgroup's MMAs on stage s completed.
// Matrix mode: one producer thread issues TMA copies of the A and B tiles (3-D tensor maps over
// (k, row, limb) made by the launcher, qgemm_wgmma_tma.cu, 128-byte swizzled by the copy engine
// exactly as the descriptors read them; rows and k past the operand's end are zero-filled, so every
// stage is a full box and transfers the same byte count).
// Implicit conv mode: a padded tap reads the code zx, which a TMA copy cannot produce (it fills
// zeros), so the 128 producer threads copy the A rows by cp.async (ARows, as the wgmma kernel does)
// and arrive on full[s] once their copies of stage s landed, kTmaLag stages behind the newest; the
// weights still come by TMA.
// Persistent: a grid of at most one CTA per SM walks the work items (output tile, K slice) with a
// stride of gridDim.x, and the stage ring and its barrier phases run on across items, so the
// producer loads the next item's first stages while the consumers still run the last MMAs and the
// epilogue of the current one (the epilogue writes from registers; its column terms have their own
// shared memory after the stage ring).
// Ping-pong (Cfg::PP, one limb each): the two consumer warpgroups take the CTA's items in turn, each
// a whole 128-row tile, so one warpgroup's epilogue overlaps the other's MMAs (in the cooperative
// tiles both wait in the epilogue while the tensor cores idle). The producer is unchanged (the
// stage ring in item order); a stage is released by the one warpgroup that reads it; and an order
// barrier pair hands the main loop over: warpgroup g starts an item's MMAs only once the other
// finished issuing those of the item before, so that a warpgroup never waits on a stage of the ring
// more than one phase ahead (an mbarrier's parity tells only one phase from the next).
// Bit-exact on an H200 (docs/gpu_h200.md); selected by DWQ_CUDA_GEMM=wgmma_tma.
#pragma once
#include <cuda.h>  // CUtensorMap (the type only: no driver library is linked)

#include <cstdint>

#include "cuda/qgemm_wgmma.cuh"

namespace dwq::cuda {

// Registers per thread after the split (8-bit tiles, 384 threads: 168 each by default): the
// consumers' 128 accumulators want more, a TMA producer needs few, a cp.async producer (conv) holds
// its rows' tap state; each pair fits the 64 K register file (256 x 232 + 128 x 40, 256 x 200 + 128 x 104).
template <bool CONV>
struct TmaRegs {
  static constexpr int PRODUCER = CONV ? 104 : 40, CONSUMER = CONV ? 200 : 232;
};
// Conv producer: stages in flight per thread before it waits for the oldest and signals it.
constexpr int kTmaLag = 2;
static_assert(kTmaLag < kWgStages, "the producer must signal a stage before it waits to refill it");

// What a tensor map describes: a [planes][rows][ld] byte operand read in boxes of kWgBK bytes x
// box_rows rows x one plane (128-byte swizzle; k >= dim[0] and rows >= dim[1] read as zeros). The
// launcher encodes it for the driver (qgemm_wgmma_tma.cu), the C++ tests' emulation models it.
struct TmaBox {
  cuuint64_t dim[3], stride[2];  // (the driver API's types)
  cuuint32_t box[3];
};
inline TmaBox byte_box(int64_t k_len, int64_t rows, int planes, int64_t ld, int64_t plane_stride, int box_rows) {
  return {{cuuint64_t(k_len), cuuint64_t(rows), cuuint64_t(planes)},
          {cuuint64_t(ld), cuuint64_t(planes > 1 ? plane_stride : rows * ld)},
          {cuuint32_t(kWgBK), cuuint32_t(box_rows), 1u}};
}
// The A (activation rows) and B (K-major weights) boxes of tile config Cfg.
template <class Cfg>
TmaBox a_box(const MmaParams& p) {
  return byte_box(p.K, p.M, Cfg::LX, p.lda, p.a_plane, Cfg::BM);
}
template <class Cfg>
TmaBox b_box(const MmaParams& p) {
  return byte_box(p.K, p.N, Cfg::LW, p.ldb, p.b_plane, Cfg::BN);
}

// Persistent launch grid: the work items (output tiles x K slices), at most max_ctas CTAs.
template <class Cfg>
inline dim3 wg_persistent_grid(const MmaParams& p, int max_ctas) {
  int64_t tiles, slices;
  tile_work<Cfg>(p, &tiles, &slices);
  const int64_t items = tiles * slices;
  return dim3(static_cast<unsigned>(items < max_ctas ? items : max_ctas));
}

#if DWQ_SM90A && !defined(DWQ_CUDA_EMU)  // (the C++ tests' emulation: csrc/tests/cuda_emu_ptx.h)
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
// Makes the initialized barriers visible to the async proxy (the copy engine) and other threads.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
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
// `bytes` of copies that must land before the phase completes (no arrival).
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
// This thread's arrival plus `bytes` of copies that must land before the phase completes.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
// The box of `map` at (k, row, limb) -> dst, completing `bytes` on bar.
__device__ __forceinline__ void tma_load_3d(void* dst, const CUtensorMap* map, int k, int row, int limb,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_u32(dst)),
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

// Stages left out by benchmarks/cuda/wgmma_probe.cu, which times the kernel without each to place its
// time (no hardware counters needed); the engine always runs PROBE = 0.
enum : int { kProbeNoLoad = 1, kProbeNoMma = 2, kProbeNoEpilogue = 4 };

// Consumer warpgroups first (threads 0 .. Cfg::THREADS - 1: the epilogue's row mapping is the
// wgmma kernel's), then the producer warpgroup. CONV: implicit conv (one limb each).
template <class Cfg, bool CONV, int PROBE = 0>
__global__ void __launch_bounds__(Cfg::THREADS + 128, 1)
    qgemm_wgmma_tma_kernel(__grid_constant__ const MmaParams p, __grid_constant__ const CUtensorMap map_a,
                           __grid_constant__ const CUtensorMap map_b) {
#if DWQ_SM90A
  constexpr int LX = Cfg::LX, LW = Cfg::LW;
  using Regs = TmaRegs<CONV>;
  static_assert(!CONV || !Cfg::LIMB, "implicit conv runs one limb each");
  constexpr int BM = Cfg::BM, BN = Cfg::BN, CONSUMERS = Cfg::THREADS;
  constexpr int A_BYTES = Cfg::A_BYTES, STAGE_BYTES = A_BYTES + Cfg::B_BYTES;
  DWQ_DYNAMIC_SMEM(smem_raw);
  __shared__ uint64_t full[kWgStages], empty[kWgStages];
  __shared__ uint64_t order[2];  // ping-pong: order[g] completes when warpgroup 1 - g hands warpgroup g the MMAs
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);

  const int tid = threadIdx.x;
  int64_t tiles, slices;
  tile_work<Cfg>(p, &tiles, &slices);
  const int64_t items = tiles * slices, num_m = (p.M + BM - 1) / BM, num_n = (p.N + BN - 1) / BN;
  // Work item w: K slice w / tiles of output tile w % tiles.
  auto item = [&](int64_t w, int64_t* m0, int64_t* n0, int64_t* kbeg, int64_t* kend) {
    int64_t mt, nt, t;
    const int64_t z = divmod(w, tiles, &t);
    tile_of(t, num_m, num_n, &mt, &nt);
    *m0 = mt * BM, *n0 = nt * BN;
    return wg_k_range(p, z, kbeg, kend);
  };
  if (tid == CONSUMERS) {
    if (!CONV) tma_prefetch_map(&map_a);
    tma_prefetch_map(&map_b);
  }
  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kWgStages; ++s) {
      mbar_init(&full[s], CONV ? 128 : 1);
      mbar_init(&empty[s], Cfg::PP ? 128 : CONSUMERS);
    }
    if constexpr (Cfg::PP) {
      mbar_init(&order[0], 128);
      mbar_init(&order[1], 128);
    }
    mbar_init_fence();
  }
  constexpr bool RS = !Cfg::LIMB;  // row sums by MMA
  if constexpr (RS) {
    wg_write_ones<Cfg>(smem, tid);
    fence_proxy_async();
  }
  __syncthreads();

  // Stage `it` of the CTA's run (over all its items) is buffer it % kWgStages in phase it / kWgStages.
  if (tid >= CONSUMERS) {  // producer warpgroup
    if constexpr (!Cfg::LIMB) regs_dec<Regs::PRODUCER>();
    const int pt = tid - CONSUMERS;
    if (!CONV && pt != 0) return;  // matrix: one thread issues every copy
    uint32_t it = 0;
    for (int64_t w = blockIdx.x; w < items; w += gridDim.x) {
      int64_t m0, n0, kbeg, kend;
      const int nk = item(w, &m0, &n0, &kbeg, &kend);
      if constexpr (CONV) {
        // A by cp.async from all 128 threads: 16-byte chunk pt & 7 of rows pt / 8 + 16 i.
        constexpr int AR = BM / 16;
        const int ac = pt & 7, r0 = pt >> 3;
        ARows<AR, true> ar(p, m0 + r0, 16, kbeg + ac * 16);
        for (int kt = 0; kt < nk; ++kt, ++it) {
          const int s = it % kWgStages;
          mbar_wait(&empty[s], ((it / kWgStages) & 1) ^ 1);
          if constexpr ((PROBE & kProbeNoLoad) != 0) {
            mbar_arrive(&full[s]);
            continue;
          }
          uint8_t* As = smem + s * STAGE_BYTES;
          const int64_t kst = kbeg + int64_t(kt) * kWgBK, k = kst + ac * 16, left = kend - k;
          const int nbytes = left <= 0 ? 0 : (left < 16 ? static_cast<int>(left) : 16);
#pragma unroll
          for (int i = 0; i < AR; ++i) ar.copy(p, i, 0, k, nbytes, As + sw128(r0 + i * 16, ac));
          ar.advance(p, kWgBK);
          cp_async_commit();
          if (pt == 0) {
            mbar_expect_tx(&full[s], Cfg::B_BYTES);
            tma_load_3d(As + A_BYTES, &map_b, static_cast<int>(kst), static_cast<int>(n0), 0, &full[s]);
          }
          if (kt >= kTmaLag) {  // this thread's copies of stage it - kTmaLag landed: hand them over
            cp_async_wait<kTmaLag>();
            fence_proxy_async();
            mbar_arrive(&full[(it - kTmaLag) % kWgStages]);
          }
        }
        if constexpr ((PROBE & kProbeNoLoad) != 0) continue;
        cp_async_wait<0>();  // the item's last stages (the next item's tap walk starts afresh)
        fence_proxy_async();
        for (uint32_t j = it - (nk < kTmaLag ? nk : kTmaLag); j < it; ++j) mbar_arrive(&full[j % kWgStages]);
      } else {
        for (int kt = 0; kt < nk; ++kt, ++it) {
          const int s = it % kWgStages;
          mbar_wait(&empty[s], ((it / kWgStages) & 1) ^ 1);  // the consumers released its last use
          uint8_t* As = smem + s * STAGE_BYTES;
          uint8_t* Bs = As + A_BYTES;
          const int k = static_cast<int>(kbeg + int64_t(kt) * kWgBK);
          if constexpr ((PROBE & kProbeNoLoad) != 0) {
            mbar_arrive(&full[s]);
            continue;
          }
          mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
          const int mrow = static_cast<int>(m0), ncol = static_cast<int>(n0);
#pragma unroll
          for (int ia = 0; ia < LX; ++ia) tma_load_3d(As + ia * BM * kWgBK, &map_a, k, mrow, ia, &full[s]);
#pragma unroll
          for (int ib = 0; ib < LW; ++ib) tma_load_3d(Bs + ib * BN * kWgBK, &map_b, k, ncol, ib, &full[s]);
        }
      }
    }
    return;
  }
  if constexpr (!Cfg::LIMB) regs_inc<Regs::CONSUMER>();

  const int wg = tid >> 7;
  WgEpiState st = wg_epi_state(p.ep);
  uint32_t it = 0, turns = 0;  // (ping-pong: this warpgroup's waits on order[wg])
  int64_t j = 0;               // the item's index among the CTA's
  for (int64_t w = blockIdx.x; w < items; w += gridDim.x, ++j) {
    int64_t m0, n0, kbeg, kend;
    const int nk = item(w, &m0, &n0, &kbeg, &kend);
    if constexpr (Cfg::PP) {
      if ((j & 1) != wg) {  // the other warpgroup's item: its stages pass by
        it += nk;
        continue;
      }
      if (j > 0) mbar_wait(&order[wg], turns++ & 1);
    }
    WgAcc<Cfg> acc;
#pragma unroll
    for (int s = 0; s < Cfg::SETS; ++s)
#pragma unroll
      for (int b = 0; b < Cfg::BLOCKS; ++b)
#pragma unroll
        for (int r = 0; r < Cfg::ACC; ++r) acc[s][b][r] = 0;
    WgRows<Cfg> rows = {};
    for (int kt = 0; kt < nk; ++kt, ++it) {
      const int s = it % kWgStages;
      mbar_wait(&full[s], (it / kWgStages) & 1);
      const uint8_t* stage = smem + s * STAGE_BYTES;
      if constexpr ((PROBE & kProbeNoMma) == 0)
        wg_mma_stage<Cfg, RS>(acc, rows, stage + (Cfg::PP ? 0 : wg * 64 * kWgBK), stage + A_BYTES,
                              smem + Cfg::ONES_OFF);
      // wg_mma_stage waited until only this stage's MMAs are in flight: the previous one is free.
      if (kt > 0) mbar_arrive(&empty[(it - 1) % kWgStages]);
    }
    if constexpr (Cfg::PP) mbar_arrive(&order[wg ^ 1]);  // every stage of this item waited for
    wgmma_wait<0>();  // the item's last stage is free too: the producer refills it during the epilogue
    mbar_arrive(&empty[(it - 1) % kWgStages]);
    if constexpr ((PROBE & kProbeNoEpilogue) == 0) {
      wg_epilogue<Cfg, RS>(p, st, acc, rows, m0, n0, tid, smem + Cfg::TERMS_OFF);
    } else if (acc[0][0][0] == 0x7fffffff) {  // (keeps the MMAs: their result is "used")
      static_cast<int32_t*>(p.ep.out)[0] = acc[Cfg::SETS - 1][Cfg::BLOCKS - 1][Cfg::ACC - 1];
    }
  }
#else
  (void)p;
  (void)map_a;
  (void)map_b;
  __trap();
#endif
}

}  // namespace dwq::cuda

// Launchers of the mma.sync GEMM / implicit-conv kernel (qgemm_mma.cuh): five instantiations,
// 8-bit matrix and implicit conv on 128- and 64-wide tiles, limbs (matrix); the dp4a kernel for a few rows
// (qgemm_dp4a.cuh); the split-K epilogue and the tile queries of every engine. Kept apart from the
// bindings (qgemm.cu) so that the translation units compile in parallel.
#include <algorithm>
#include <atomic>

#include "cuda/launch_smem.cuh"
#include "cuda/qgemm_dp4a.cuh"
#include "cuda/qgemm_launch.h"
#include "cuda/qgemm_mma.cuh"
#include "cuda/qgemm_splitk.cuh"
#include "cuda/qgemm_wgmma.cuh"  // tile sizes only

namespace dwq::cuda {
namespace {

template <class Cfg, bool CONV>
struct Launch {
  static cudaError_t run(const MmaParams& p, cudaStream_t stream) {
    dim3 grid;
    if (!tile_grid<Cfg>(p, &grid)) return cudaErrorInvalidConfiguration;
    return launch_smem(qgemm_mma_kernel<Cfg, CONV>, grid, kThreads, Cfg::SMEM, stream, p);
  }
};

template <int LX, int LW>
cudaError_t launch_dp4a(const MmaParams& p, cudaStream_t stream) {
  const int64_t zt = (p.K + p.k_chunk - 1) / p.k_chunk;
  if (zt > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(p.Npad / 64), static_cast<unsigned>((p.M + kDpRows - 1) / kDpRows),
                  static_cast<unsigned>(zt));
  qgemm_dp4a_kernel<LX, LW><<<grid, kDpThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

int dp4a_max_rows() { return kDpMaxM; }

cudaError_t launch_qgemm_dp4a(const MmaParams& p, bool limb, cudaStream_t stream) {
  if (limb) {
    if (p.lx == 2) return p.lw == 2 ? launch_dp4a<2, 2>(p, stream) : launch_dp4a<2, 1>(p, stream);
    return launch_dp4a<1, 2>(p, stream);
  }
  return launch_dp4a<1, 1>(p, stream);
}

int gemm_block_m(Engine engine, bool limb, int64_t N) {
  if (engine == Engine::kDp4a) return kDpRows;
  if (engine != Engine::kMma) return limb ? WgCfg<2, 2>::BM : WgCfg<1, 1>::BM;
  if (limb) return MmaCfg<true>::BM;
  return mma_tile_n(false, N) == 64 ? MmaCfg<false, 64>::BM : MmaCfg<false>::BM;
}

int gemm_block_n(Engine engine, bool limb, int64_t N) {
  if (engine == Engine::kDp4a) return 64;
  if (engine != Engine::kMma) return wg_tile_n(limb, N, engine == Engine::kWgmmaPp);
  return mma_tile_n(limb, N);
}

int sm_count(int device) {
  // Cached per device; threads driving different GPUs may ask at once (atomics: no data race).
  static std::atomic<int> counts[64];
  const bool cached = device >= 0 && device < 64;
  int n = cached ? counts[device].load(std::memory_order_relaxed) : 0;
  if (n > 0) return n;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n < 1) {
    (void)cudaGetLastError();  // not this op's launch error for the next check to report
    n = 1;
  }
  if (cached) counts[device].store(n, std::memory_order_relaxed);
  return n;
}

int gemm_k_align(Engine engine) { return engine == Engine::kMma || engine == Engine::kDp4a ? kBK : kWgBK; }

int64_t mma_k_chunk(bool limb) { return limb ? MmaCfg<true>::K_CHUNK : MmaCfg<false>::K_CHUNK; }

cudaError_t launch_qgemm_mma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream) {
  return mma_dispatch<Launch>(p, limb, conv, stream);
}

cudaError_t launch_splitk_epilogue(const EpiParams& e, int64_t M, int64_t N, cudaStream_t stream) {
  const int64_t total = M * N;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535 * 8);
  splitk_epilogue_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(e, M, N);
  return cudaGetLastError();
}

}  // namespace dwq::cuda

// Launchers of the tensor-core GEMM / implicit-conv kernel (qgemm_mma.cuh): three instantiations,
// 8-bit matrix, 8-bit implicit conv, limbs (matrix). Kept apart from the bindings (qgemm.cu) so
// that the two translation units compile in parallel.
#include <algorithm>

#include "cuda/qgemm_launch.h"
#include "cuda/qgemm_mma.cuh"

namespace dwq::cuda {
namespace {

template <bool LIMB, bool CONV>
cudaError_t launch(const MmaParams& p, cudaStream_t stream) {
  constexpr int smem = mma_smem_bytes<LIMB>();
  auto kernel = qgemm_mma_kernel<LIMB, CONV>;
  // Above 48 KiB of dynamic shared memory needs an opt-in (per device; cheap to repeat).
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const int64_t mt = (p.M + MmaCfg<LIMB>::BM - 1) / MmaCfg<LIMB>::BM;
  const int64_t nt = (p.N + kBN - 1) / kBN;
  const int64_t zt = (p.K + p.k_chunk - 1) / p.k_chunk;
  const dim3 grid(static_cast<unsigned>(mt), static_cast<unsigned>(nt), static_cast<unsigned>(zt));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

int mma_block_m(bool limb) { return limb ? MmaCfg<true>::BM : MmaCfg<false>::BM; }

int64_t mma_k_chunk(bool limb) { return limb ? mma_k_chunk_of<true>() : mma_k_chunk_of<false>(); }

cudaError_t launch_qgemm_mma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream) {
  // Hopper (sm_90a) would take a wgmma + TMA kernel here (see qgemm_mma.cuh).
  if (limb) return launch<true, false>(p, stream);
  return conv ? launch<false, true>(p, stream) : launch<false, false>(p, stream);
}

cudaError_t launch_splitk_epilogue(const EpiParams& e, int64_t M, int64_t N, cudaStream_t stream) {
  const int64_t total = M * N;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535 * 8);
  splitk_epilogue_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(e, M, N);
  return cudaGetLastError();
}

}  // namespace dwq::cuda

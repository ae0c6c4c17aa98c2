// Host entry points of the tensor-core kernels (qgemm_mma.cu), for the bindings in qgemm.cu.
// Torch-free; the caller owns the memory and picks the stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/qgemm_params.h"

namespace dwq::cuda {

// K per grid z-slice for which the kernel's int32 partials are exact: 65,536 for one limb each,
// 32,768 when x or w has two 8-bit limbs (see qgemm_mma.cuh).
int64_t mma_k_chunk(bool limb);
// Rows of output per CTA (the columns are 128).
int mma_block_m(bool limb);

// Launches qgemm_mma_kernel over ceil(M/BM) x ceil(N/128) x ceil(K/p.k_chunk) CTAs. limb: x or w has
// two limbs (p.lx, p.lw); conv: implicit conv mode (one limb each). Returns the launch error.
cudaError_t launch_qgemm_mma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream);

// out from the int64 split-K sums in e.ws (e.kind is the final output kind).
cudaError_t launch_splitk_epilogue(const EpiParams& e, int64_t M, int64_t N, cudaStream_t stream);

}  // namespace dwq::cuda

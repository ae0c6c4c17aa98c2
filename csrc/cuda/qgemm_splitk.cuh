// The epilogue of a split-K GEMM (every engine): out from the int64 T sums that the z-slices added
// into e.ws (e.kind is the final kind). Included by its launcher (qgemm_mma.cu) only.
#pragma once
#include <cstdint>

#include "cuda/qgemm_epilogue.cuh"

namespace dwq::cuda {

__global__ void splitk_epilogue_kernel(__grid_constant__ const EpiParams e, int64_t M, int64_t N) {
  const EpiScalars s = load_scalars(e);
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / N, n = i - m * N;
    const ColTerms c = col_terms(e, s, n);
    store_output(e, s, c, e.rowsum[m], m, n, e.ws[m * e.ldo + n]);
  }
}

}  // namespace dwq::cuda

// Index division for the CUDA kernels (tile walk, conv row, pixel and tap decomposition).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dwq::cuda {

// q = a / b and *rem = a - q * b for 0 <= a, 0 < b: in 32 bits where both fit (always, in practice),
// since a 64-bit division by a run-time divisor is a long instruction sequence on the GPU, and the
// kernels divide per work item, per copied row and per output or input pixel.
__host__ __device__ __forceinline__ int64_t divmod(int64_t a, int64_t b, int64_t* rem) {
  if (((a | b) >> 31) == 0) {
    const uint32_t q = static_cast<uint32_t>(a) / static_cast<uint32_t>(b);
    *rem = a - int64_t(q) * b;
    return q;
  }
  const int64_t q = a / b;
  *rem = a - q * b;
  return q;
}

}  // namespace dwq::cuda

// cp.async helpers shared by the tensor-core kernels (qgemm_mma.cuh, qgemm_wgmma.cuh).
#pragma once
#include <cstdint>

namespace dwq::cuda {

// 16 bytes global -> shared, of which src_bytes are read and the rest zero-filled (0: all zeros).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

}  // namespace dwq::cuda

// cp.async helpers shared by the tensor-core kernels (qgemm_mma.cuh, qgemm_wgmma.cuh), and their
// dynamic shared memory. Under DWQ_CUDA_EMU (the C++ tests' CPU emulation, csrc/tests/cuda_emu.h)
// the PTX wrappers of the kernels are the emulator's (csrc/tests/cuda_emu_ptx.h) instead.
#pragma once
#include <cstdint>

#ifdef DWQ_CUDA_EMU
#define DWQ_DYNAMIC_SMEM(name) uint8_t* name = cuda_emu::dynamic_smem()
#else
#define DWQ_DYNAMIC_SMEM(name) extern __shared__ __align__(128) uint8_t name[]
#endif

namespace dwq::cuda {
#ifndef DWQ_CUDA_EMU

// 16 bytes global -> shared, of which src_bytes are read and the rest zero-filled (0: all zeros).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
#endif  // DWQ_CUDA_EMU

}  // namespace dwq::cuda

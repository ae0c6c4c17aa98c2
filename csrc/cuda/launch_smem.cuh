// Host-side launch of a kernel with `smem` bytes of dynamic shared memory (nvcc only: <<< >>>).
#pragma once
#include <cuda_runtime.h>

namespace dwq::cuda {

template <class... Params, class... Args>
cudaError_t launch_smem(void (*kernel)(Params...), dim3 grid, int threads, int smem, cudaStream_t stream,
                        const Args&... args) {
  // Above 48 KiB of dynamic shared memory needs an opt-in (per device; cheap to repeat).
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // the op raises this error; a later launch check must not see it again
    return err;
  }
  kernel<<<grid, threads, smem, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace dwq::cuda

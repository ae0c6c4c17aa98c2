// Device kernel of dwq::fake_quantize (launcher: fake_quant.cu). The arithmetic is arith.h's, as
// in csrc/cpu/fake_quant.cpp, so CPU and GPU agree bit for bit: float32 inside (float64 for
// double), float16/bfloat16 widened exactly and rounded back to nearest even. NaN inputs give NaN
// outputs and code -1 (raising would need a device sync; the Python quantizers assert on NaN
// ranges asynchronously instead).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/arith.h"

namespace dwq::cuda {

template <typename T>
struct Io {  // storage <-> compute type
  using F = T;
  __device__ __forceinline__ static F load(T v) { return v; }
  __device__ __forceinline__ static T store(F v) { return v; }
};
template <>
struct Io<__half> {
  using F = float;
  __device__ __forceinline__ static float load(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half store(float v) { return __float2half_rn(v); }
};
template <>
struct Io<__nv_bfloat16> {
  using F = float;
  __device__ __forceinline__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

// x, out, codes: contiguous in memory order, viewed as [outer, C, inner]; element i uses channel
// (i / inner) % C. Grid-stride loop.
template <typename T>
__global__ void fake_quant_kernel(const T* __restrict__ x, T* __restrict__ out, int32_t* __restrict__ codes,
                                  const float* __restrict__ scale, const int32_t* __restrict__ zero_point, int64_t n,
                                  int64_t C, int64_t inner, int bits) {
  using F = typename Io<T>::F;
  const F qmax = static_cast<F>(arith::max_code(bits));
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = C == 1 ? 0 : (i / inner) % C;
    const F s = static_cast<F>(scale[c]);
    const F z = static_cast<F>(zero_point[c]);
    const F v = Io<T>::load(x[i]);
    if (v != v) {
      out[i] = x[i];
      if (codes) codes[i] = -1;
      continue;
    }
    const F q = arith::quantize(v, s, z, qmax);
    out[i] = Io<T>::store(arith::dequantize(q, s, z));
    if (codes) codes[i] = static_cast<int32_t>(q);
  }
}

}  // namespace dwq::cuda

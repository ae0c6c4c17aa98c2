// Device kernel of dwq::fake_quantize (launcher: fake_quant.cu). The arithmetic is arith.h's, as
// in csrc/cpu/fake_quant.cpp, so CPU and GPU agree bit for bit: float32 inside (float64 for
// double), float16/bfloat16 widened exactly and rounded back to nearest even. Where the CPU op
// raises, the kernel fails a device-side assert (asynchronous: no host sync): NaN in x (its output
// would be the CPU kernel's quiet NaN, Io::nan, and code -1), a scale that is not finite and > 0, a
// zero point that is not a code.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cassert>
#include <cfloat>
#include <cstdint>
#include <limits>

#include "common/arith.h"

// The asynchronous error of the CUDA quantizer kernels: a device-side assert (what
// torch._assert_async raises too), so a bad range or scale is never a silent wrong answer and costs
// no host sync; the caller then runs no check of its own.
#ifndef DWQ_DEVICE_FAIL  // (the C++ tests' emulation counts them instead: csrc/tests/cuda_emu.h)
#define DWQ_DEVICE_FAIL(msg) __assert_fail(msg, __FILE__, static_cast<unsigned int>(__LINE__), __func__)
#endif

namespace dwq::cuda {

// Storage <-> compute type, and the NaN a NaN input or row comes out as: the CPU kernels' quiet NaN
// bit for bit (csrc/cpu/float_io.h: 0x7FC00000, 0x7FF8..., half 0x7E00, bfloat16 0x7FC0), not the
// input's payload nor CUDA's own half NaN (0x7FFF), so that NaN outputs match across devices too.
template <typename T>
struct Io {
  using F = T;
  __device__ __forceinline__ static F load(T v) { return v; }
  __device__ __forceinline__ static T store(F v) { return v; }
  __device__ __forceinline__ static T nan() { return std::numeric_limits<T>::quiet_NaN(); }
};
template <>
struct Io<__half> {
  using F = float;
  __device__ __forceinline__ static float load(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half store(float v) { return __float2half_rn(v); }
  __device__ __forceinline__ static __half nan() { return __half(__half_raw{0x7E00}); }
};
template <>
struct Io<__nv_bfloat16> {
  using F = float;
  __device__ __forceinline__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
  __device__ __forceinline__ static __nv_bfloat16 nan() { return __nv_bfloat16(__nv_bfloat16_raw{0x7FC0}); }
};

// One element: out (and the code) from v with the channel's s, z. NaN has no code: its output is the
// CPU kernel's quiet NaN with code -1 (as there) and `nan` is set; the caller fails the CPU op's check
// once per thread (a device assert), out of the loop that moves the data.
template <typename T>
__device__ __forceinline__ T fake_quant_one(T x, typename Io<T>::F s, typename Io<T>::F z, typename Io<T>::F qmax,
                                            int32_t& code, bool& nan) {
  using F = typename Io<T>::F;
  const F v = Io<T>::load(x);
  if (v != v) {
    nan = true;
    code = -1;
    return Io<T>::nan();
  }
  const F q = arith::quantize(v, s, z, qmax);
  code = static_cast<int32_t>(q);
  return Io<T>::store(arith::dequantize(q, s, z));
}

// The CPU op's value check of one channel's scale and zero point, as a device assert.
__device__ __forceinline__ void check_qparam(float s, int32_t z, int bits) {
  if (!(s > 0.f && s <= FLT_MAX) || z < 0 || z > static_cast<int32_t>(arith::max_code(bits)))
    DWQ_DEVICE_FAIL("dwq.fake_quantize: scale must be finite and > 0 and zero_point a code of bits");
}

// Threads per block of fake_quant_kernel; with at most 64 registers a thread (the launch bounds), four
// blocks fit on a multiprocessor.
constexpr int kFakeQuantThreads = 256;

// V elements moved as 16-byte vectors (the alignment the launcher checks; never assume more).
template <typename T, int V>
struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) Pack {
  T v[V];
};

// The V elements of x from `base` (one channel: see fake_quant_kernel) into out and codes.
template <typename T, int V, bool PER_CHANNEL>
__device__ __forceinline__ void fake_quant_vector(const Pack<T, V>& in, int64_t base, T* __restrict__ out,
                                                  int32_t* __restrict__ codes, const float* __restrict__ scale,
                                                  const int32_t* __restrict__ zero_point, int64_t C, int64_t inner,
                                                  int bits, typename Io<T>::F s, typename Io<T>::F z,
                                                  typename Io<T>::F qmax, bool& nan) {
  using F = typename Io<T>::F;
  if (PER_CHANNEL) {
    const int64_t c = (base / inner) % C;
    check_qparam(scale[c], zero_point[c], bits);
    s = static_cast<F>(scale[c]);
    z = static_cast<F>(zero_point[c]);
  }
  Pack<T, V> res;
  Pack<int32_t, V> q;
#pragma unroll
  for (int j = 0; j < V; ++j) res.v[j] = fake_quant_one<T>(in.v[j], s, z, qmax, q.v[j], nan);
  *reinterpret_cast<Pack<T, V>*>(out + base) = res;
  if (codes != nullptr) *reinterpret_cast<Pack<int32_t, V>*>(codes + base) = q;
}

// x, out, codes: contiguous in memory order, viewed as [outer, C, inner]; element i uses channel
// (i / inner) % C. Memory-bound: each thread moves V elements (16 bytes of x) per vector with vector
// loads and stores, and U vectors per step, all U loads issued before any arithmetic, so that U x 16
// bytes per thread are in flight (one vector per thread left the H200 at 0.75x the bandwidth of
// torch's own fake quantization). The U vectors of a step lie a grid apart, so each load is coalesced
// across a warp. PER_CHANNEL: inner % V == 0, so a vector never straddles two channels, whose scale and
// zero point are read once per vector; the per-tensor ones once per thread. V = 1 serves pointers
// that are not 16-byte aligned. Grid-stride: steps of U vectors, then single vectors, then the
// n % V tail element by element.
template <typename T, int V, bool PER_CHANNEL, int U = 4>
__global__ void __launch_bounds__(kFakeQuantThreads, 4)
    fake_quant_kernel(const T* __restrict__ x, T* __restrict__ out, int32_t* __restrict__ codes,
                      const float* __restrict__ scale, const int32_t* __restrict__ zero_point, int64_t n, int64_t C,
                      int64_t inner, int bits) {
  using F = typename Io<T>::F;
  const F qmax = static_cast<F>(arith::max_code(bits));
  check_qparam(scale[0], zero_point[0], bits);
  const F s = static_cast<F>(scale[0]), z = static_cast<F>(zero_point[0]);
  const int64_t nvec = n / V, stride = int64_t(gridDim.x) * blockDim.x;
  bool nan = false;
  int64_t iv = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (; iv + (U - 1) * stride < nvec; iv += U * stride) {
    Pack<T, V> in[U];
#pragma unroll
    for (int u = 0; u < U; ++u) in[u] = *reinterpret_cast<const Pack<T, V>*>(x + (iv + u * stride) * V);
#pragma unroll
    for (int u = 0; u < U; ++u)
      fake_quant_vector<T, V, PER_CHANNEL>(in[u], (iv + u * stride) * V, out, codes, scale, zero_point, C, inner,
                                           bits, s, z, qmax, nan);
  }
  for (; iv < nvec; iv += stride)
    fake_quant_vector<T, V, PER_CHANNEL>(*reinterpret_cast<const Pack<T, V>*>(x + iv * V), iv * V, out, codes, scale,
                                         zero_point, C, inner, bits, s, z, qmax, nan);
  for (int64_t i = nvec * V + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride)
    fake_quant_vector<T, 1, PER_CHANNEL>(Pack<T, 1>{{x[i]}}, i, out, codes, scale, zero_point, C, inner, bits, s, z,
                                         qmax, nan);
  if (nan) DWQ_DEVICE_FAIL("dwq.fake_quantize: x contains NaN; NaN has no quantized code");
}

}  // namespace dwq::cuda

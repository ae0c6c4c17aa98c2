// Fused quantizer kernels for training on GPUs (issue 10): what dwq.quant's ActQuantizer and
// WeightQuantizer compute with a dozen small torch ops per call, in one launch each. Launchers
// and bindings: quantizer_fused.cu. The arithmetic is arith.h's and the contract's (DESIGN.md):
//   range  [min(mn, 0), max(mx, 0)];  s = max((max - min) / qmax, 1e-8);
//   z = clamp(round_half_even(-min / s), 0, qmax)
// with IEEE divisions, as dwq.quant.choose_qparams computes them (it divides by a device tensor:
// ATen's CUDA division by a Python number multiplies by the reciprocal instead, one bit off).
// COMPILED, NEVER RUN: these kernels were written without a GPU; tests/test_quantizer_fused.py
// compares them with the pure-PyTorch path bit for bit where CUDA is present.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cassert>
#include <cfloat>
#include <cstdint>

#include "common/arith.h"
#include "cuda/fake_quant.cuh"

namespace dwq::cuda {

// Float -> uint32 encoding whose unsigned order is the float order and in which 0 is below every
// encoded float, so that zeroed memory is the identity of atomicMax (min: atomicMax of ~encoding).
__device__ __forceinline__ unsigned int float_to_ordered(float f) {
  const unsigned int u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float ordered_to_float(unsigned int e) {
  return __uint_as_float((e & 0x80000000u) ? (e & 0x7FFFFFFFu) : ~e);
}

// Scale and zero point of the range [mn, mx] (arith::qparams_of_range; a NaN range gives a NaN
// scale, which the Python side asserts on).
__device__ __forceinline__ void qparams_of_range(float mn, float mx, int bits, float* scale, int32_t* zp) {
  if (mn != mn || mx != mx) {
    *scale = __int_as_float(0x7FC00000);
    *zp = 0;
    return;
  }
  arith::qparams_of_range(mn, mx, static_cast<float>(arith::max_code(bits)), scale, zp);
}

// Block-wide min and max of v (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ void block_min_max(float& mn, float& mx) {
  __shared__ float smin[32], smax[32];
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xFFFFFFFFu, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  __syncthreads();  // the shared arrays may still be read by a previous call
  if (lane == 0) {
    smin[warp] = mn;
    smax[warp] = mx;
  }
  __syncthreads();
  mn = lane < nwarps ? smin[lane] : FLT_MAX;
  mx = lane < nwarps ? smax[lane] : -FLT_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xFFFFFFFFu, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, o));
  }
}

// Activation quantizer parameters in one launch: grid-wide min/max of x (NaN or inf in a scanned x
// makes the range NaN, and the kernel fails its device assert), then the last block to finish writes
// scale[0], zp[0] of the range arith::act_running_range picks (train mode: the batch's, after the
// EMA update of `slot` and `observed`; eval mode: a running range once initialized). work: uint32 [~ordered min, ordered max, NaN flag,
// block counter], zeroed by the launcher (one memset) before the launch.
// x: the n elements of the tensor's memory in any order (the range does not depend on the layout);
// V elements per 16-byte vector load (V = 1 where x is not 16-byte aligned), the n % V tail singly.
template <typename T, int V>
__global__ void act_qparams_kernel(const T* __restrict__ x, int64_t n, unsigned int* __restrict__ work,
                                   float* __restrict__ running_min,
                                   float* __restrict__ running_max, bool* __restrict__ initialized, int64_t slot,
                                   int64_t observed, float ema_old, float ema_new, bool training, int bits, float* __restrict__ scale,
                                   int32_t* __restrict__ zp) {
  float mn = FLT_MAX, mx = -FLT_MAX;
  bool nan = false;
  // Eval mode with a tracked range never reads the batch's: skip the pass over x.
  const bool scan = training || !(initialized[slot] || initialized[observed]);
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  auto see = [&](T t) {
    const float v = Io<T>::load(t);
    // NaN and +-inf alike: an infinite range has no finite scale (the CPU's fake_quantize raises
    // for it); failing here names the range as the cause, not the scale it would give.
    nan |= v - v != 0.f;
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  };
  if (scan) {
    const int64_t nvec = n / V;
    for (int64_t iv = first; iv < nvec; iv += stride) {
      const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(x + iv * V);
#pragma unroll
      for (int j = 0; j < V; ++j) see(p.v[j]);
    }
    for (int64_t i = nvec * V + first; i < n; i += stride) see(x[i]);
  }
  nan = __syncthreads_or(nan);
  block_min_max(mn, mx);
  if (threadIdx.x == 0) {
    if (nan) {
      atomicExch(&work[2], 1u);
    } else if (mn <= mx) {  // blocks without elements keep the identity
      atomicMax(&work[0], ~float_to_ordered(mn));
      atomicMax(&work[1], float_to_ordered(mx));
    }
    __threadfence();
    const unsigned int done = atomicAdd(&work[3], 1u);
    if (done == gridDim.x - 1) {  // the last block: every other block's atomics are visible
      __threadfence();
      float bmin = ordered_to_float(~atomicAdd(&work[0], 0u));
      float bmax = ordered_to_float(atomicAdd(&work[1], 0u));
      if (n == 0 || atomicAdd(&work[2], 0u) != 0u) bmin = bmax = __int_as_float(0x7FC00000);  // NaN
      float lo, hi;
      arith::act_running_range(running_min, running_max, initialized, slot, observed, bmin, bmax, ema_old, ema_new,
                               training, &lo, &hi);
      qparams_of_range(lo, hi, bits, scale, zp);
      if (lo != lo || hi != hi) DWQ_DEVICE_FAIL("dwq: cannot quantize: the observed range contains NaN or inf");
    }
  }
}

// Per-output-channel weight fake quantization in one launch: block r owns row r of w [rows, inner]
// (contiguous): min/max of the row, its scale and zero point, then the row's fake quantization.
// A row with NaN or +-inf, or whose range overflows float32, comes back all NaN, as from the CPU
// kernel, and fails the device assert (where the CPU op raises).
// O: the output's type, T's or (for a float32 w) __half / __nv_bfloat16: rounded once on store.
template <typename T, typename O = T>
__global__ void weight_fake_quant_kernel(const T* __restrict__ w, O* __restrict__ out, int64_t inner, int bits) {
  using F = typename Io<T>::F;
  const T* row = w + blockIdx.x * inner;
  O* orow = out + blockIdx.x * inner;
  float mn = FLT_MAX, mx = -FLT_MAX;
  bool bad = false;
  for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
    const float v = Io<T>::load(row[i]);
    bad |= v - v != 0.f;  // NaN exactly for NaN and +-inf
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  bad = __syncthreads_or(bad);
  block_min_max(mn, mx);
  if (bad) {
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) orow[i] = Io<O>::nan();
    if (threadIdx.x == 0) DWQ_DEVICE_FAIL("dwq: cannot quantize: a weight channel holds NaN or inf");
    return;
  }
  __shared__ float s_sh;
  __shared__ int32_t z_sh;
  if (threadIdx.x == 0) qparams_of_range(mn, mx, bits, &s_sh, &z_sh);
  __syncthreads();
  if (!(s_sh <= FLT_MAX)) {  // finite, but max - min overflows: no finite scale (the CPU op raises)
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) orow[i] = Io<O>::nan();
    if (threadIdx.x == 0) DWQ_DEVICE_FAIL("dwq: cannot quantize: a weight channel's range overflows float32");
    return;
  }
  const F s = static_cast<F>(s_sh), z = static_cast<F>(z_sh), qmax = static_cast<F>(arith::max_code(bits));
  for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
    const F v = Io<T>::load(row[i]);
    orow[i] = Io<O>::store(arith::dequantize(arith::quantize(v, s, z, qmax), s, z));
  }
}

}  // namespace dwq::cuda

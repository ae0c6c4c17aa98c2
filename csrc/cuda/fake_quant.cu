// CUDA implementation of dwq::fake_quantize (schema in csrc/ops.cpp). Same arithmetic as
// csrc/cpu/fake_quant.cpp: __fdiv_rn and nearbyint keep IEEE division and round-half-even, so
// CPU and GPU agree bit for bit. NaN inputs give NaN outputs and code -1 (raising would need a
// device sync; the Python quantizers assert on NaN ranges asynchronously instead).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/fake_quant_checks.h"

namespace dwq {
namespace {

template <typename T>
__device__ __forceinline__ T div_rn(T a, T b) { return a / b; }
template <>
__device__ __forceinline__ float div_rn<float>(float a, float b) { return __fdiv_rn(a, b); }

template <typename T>
__global__ void fake_quant_kernel(const T* __restrict__ x, T* __restrict__ out, int32_t* __restrict__ codes,
                                  const float* __restrict__ scale, const int32_t* __restrict__ zero_point,
                                  int64_t n, int64_t C, int64_t inner, T qmax) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = C == 1 ? 0 : (i / inner) % C;
    const T s = static_cast<T>(scale[c]);
    const T z = static_cast<T>(zero_point[c]);
    const T v = x[i];
    if (v != v) {
      out[i] = v;
      if (codes) codes[i] = -1;
      continue;
    }
    T q = nearbyint(div_rn(v, s)) + z;
    q = q < T(0) ? T(0) : (q > qmax ? qmax : q);
    out[i] = (q - z) * s;
    if (codes) codes[i] = static_cast<int32_t>(q);
  }
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_cuda(const at::Tensor& x, const at::Tensor& scale,
                                                      const at::Tensor& zero_point, int64_t bits,
                                                      std::optional<int64_t> axis, bool return_codes) {
  const auto shape = check_fake_quantize_args(x, scale, zero_point, bits, axis);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor sc = scale.contiguous();
  const at::Tensor zc = zero_point.contiguous();
  at::Tensor out = at::empty_like(xc);
  at::Tensor codes = at::empty(return_codes ? xc.sizes() : at::IntArrayRef{0}, xc.options().dtype(at::kInt));
  const int64_t n = xc.numel();
  if (n == 0) return {out, codes};
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535 * 8);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "dwq_fake_quantize_cuda", [&] {
    fake_quant_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        xc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), return_codes ? codes.data_ptr<int32_t>() : nullptr,
        sc.data_ptr<float>(), zc.data_ptr<int32_t>(), n, shape.channels, shape.inner,
        static_cast<scalar_t>((int64_t{1} << bits) - 1));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, codes};
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CUDA, m) { m.impl("fake_quantize", &fake_quantize_cuda); }

}  // namespace dwq

// CUDA launchers of the fused quantizer ops (schemas in csrc/ops.cpp; kernels in
// quantizer_fused.cuh): act_qparams (a memset + 1 launch, then dwq::fake_quantize reads the
// scale and zero point from device memory: no host sync) and weight_fake_quantize (1 launch).
// COMPILED, NEVER RUN (no GPU where they were written): see quantizer_fused.cuh.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>
#include <type_traits>

#include "cuda/binding_util.h"
#include "cuda/quantizer_fused.cuh"
#include "ops/quantizer_fused_checks.h"

namespace dwq {
namespace {

using cuda::aligned16;
using cuda::device_t;

std::tuple<at::Tensor, at::Tensor> act_qparams_cuda(const at::Tensor& x, at::Tensor& running_min,
                                                    at::Tensor& running_max, at::Tensor& initialized, int64_t slot,
                                                    int64_t observed, int64_t bits, double ema, bool training) {
  check_act_qparams_args(x, running_min, running_max, initialized, slot, observed, bits, ema, training, at::kCUDA);
  const c10::cuda::CUDAGuard guard(x.device());
  // The range is the same in any element order: a dense tensor (channels-last included) is read in
  // its own memory order, without the copy that contiguous() would make.
  const at::Tensor xc = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  at::Tensor scale = at::empty({1}, x.options().dtype(at::kFloat));
  at::Tensor zp = at::empty({1}, x.options().dtype(at::kInt));
  // [~ordered min, ordered max, NaN flag, block counter]: zero is every slot's identity.
  at::Tensor work = at::empty({4}, x.options().dtype(at::kInt));
  const int64_t n = xc.numel();
  const int threads = 256;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 1024));
  auto stream = c10::cuda::getCurrentCUDAStream();
  // A memset node rather than at::zeros: no trip through the dispatcher for 16 bytes.
  C10_CUDA_CHECK(cudaMemsetAsync(work.data_ptr<int32_t>(), 0, 4 * sizeof(int32_t), stream));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "dwq_act_qparams_cuda", [&] {
    using D = device_t<scalar_t>;
    const D* xp = reinterpret_cast<const D*>(xc.data_ptr<scalar_t>());
    const auto args = std::make_tuple(xp, n, reinterpret_cast<unsigned int*>(work.data_ptr<int32_t>()),
                                      running_min.data_ptr<float>(), running_max.data_ptr<float>(),
                                      initialized.data_ptr<bool>(), slot, observed, static_cast<float>(ema),
                                      static_cast<float>(1.0 - ema), training, static_cast<int>(bits),
                                      scale.data_ptr<float>(), zp.data_ptr<int32_t>());
    auto launch = [&](auto kernel) {
      std::apply([&](auto... a) { kernel<<<blocks, threads, 0, stream>>>(a...); }, args);
    };
    if (aligned16(xp))
      launch(cuda::act_qparams_kernel<D, 16 / sizeof(D)>);
    else
      launch(cuda::act_qparams_kernel<D, 1>);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {scale, zp};
}

at::Tensor weight_fake_quantize_cuda(const at::Tensor& w, int64_t bits, std::optional<at::ScalarType> dtype) {
  check_weight_fake_quantize_args(w, bits, at::kCUDA);
  const at::ScalarType out_type = weight_fake_quantize_out_type(w, dtype);
  const c10::cuda::CUDAGuard guard(w.device());
  const at::Tensor wc = w.contiguous();
  at::Tensor out = at::empty_like(wc, wc.options().dtype(out_type));
  const int64_t rows = wc.size(0), inner = wc.numel() / rows;
  TORCH_CHECK(rows <= 2147483647, "dwq.weight_fake_quantize: too many output channels (", rows, ")");
  if (inner == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  const auto run = [&](const auto* wp, auto* op) {
    cuda::weight_fake_quant_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(wp, op, inner,
                                                                                    static_cast<int>(bits));
  };
  if (out_type == at::kHalf && wc.scalar_type() == at::kFloat) {  // (autocast's float16, rounded once)
    run(wc.data_ptr<float>(), reinterpret_cast<__half*>(out.data_ptr<at::Half>()));
  } else if (out_type == at::kBFloat16 && wc.scalar_type() == at::kFloat) {
    run(wc.data_ptr<float>(), reinterpret_cast<__nv_bfloat16*>(out.data_ptr<at::BFloat16>()));
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, wc.scalar_type(), "dwq_weight_fake_quantize_cuda", [&] {
      using D = device_t<scalar_t>;
      run(reinterpret_cast<const D*>(wc.data_ptr<scalar_t>()), reinterpret_cast<D*>(out.data_ptr<scalar_t>()));
    });
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CUDA, m) {
  m.impl("act_qparams", &act_qparams_cuda);
  m.impl("weight_fake_quantize", &weight_fake_quantize_cuda);
}

}  // namespace dwq

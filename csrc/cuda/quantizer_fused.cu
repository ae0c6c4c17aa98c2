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

#include <type_traits>

#include "cuda/quantizer_fused.cuh"

namespace dwq {
namespace {

template <typename T>
using device_t = std::conditional_t<std::is_same_v<T, at::Half>, __half,
                                    std::conditional_t<std::is_same_v<T, at::BFloat16>, __nv_bfloat16, T>>;

void check_float_input(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), "dwq.", op, ": x must be a CUDA tensor, got device ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "dwq.", op, ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
}

void check_state(const char* name, const at::Tensor& t, at::ScalarType dtype, const at::Tensor& x, int64_t slot) {
  TORCH_CHECK(t.device() == x.device(), "dwq.act_qparams: ", name, " must be on ", x.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype && t.dim() == 1 && t.is_contiguous(), "dwq.act_qparams: ", name,
              " must be a contiguous 1-D ", dtype, " tensor, got ", t.scalar_type(), " ", t.sizes());
  TORCH_CHECK(slot >= 0 && slot < t.numel(), "dwq.act_qparams: slot ", slot, " is outside ", name, " [", t.numel(),
              "]");
}

std::tuple<at::Tensor, at::Tensor> act_qparams_cuda(const at::Tensor& x, at::Tensor& running_min,
                                                    at::Tensor& running_max, at::Tensor& initialized, int64_t slot,
                                                    int64_t observed, int64_t bits, double ema, bool training) {
  check_float_input("act_qparams", x);
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.act_qparams: bits must be in 2..16, got ", bits);
  TORCH_CHECK(ema >= 0.0 && ema < 1.0, "dwq.act_qparams: ema must be in [0, 1), got ", ema);
  check_state("running_min", running_min, at::kFloat, x, slot);
  check_state("running_max", running_max, at::kFloat, x, slot);
  check_state("initialized", initialized, at::kBool, x, slot);
  check_state("running_min", running_min, at::kFloat, x, observed);
  TORCH_CHECK(running_max.numel() == running_min.numel() && initialized.numel() == running_min.numel(),
              "dwq.act_qparams: running_min, running_max and initialized must have one length, got ",
              running_min.numel(), ", ", running_max.numel(), " and ", initialized.numel());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  at::Tensor scale = at::empty({1}, x.options().dtype(at::kFloat));
  at::Tensor zp = at::empty({1}, x.options().dtype(at::kInt));
  // [~ordered min, ordered max, NaN flag, block counter]: zero is every slot's identity.
  at::Tensor work = at::zeros({4}, x.options().dtype(at::kInt));
  const int64_t n = xc.numel();
  const int threads = 256;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 1024));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "dwq_act_qparams_cuda", [&] {
    using D = device_t<scalar_t>;
    cuda::act_qparams_kernel<D><<<blocks, threads, 0, stream>>>(
        reinterpret_cast<const D*>(xc.data_ptr<scalar_t>()), n,
        reinterpret_cast<unsigned int*>(work.data_ptr<int32_t>()), running_min.data_ptr<float>(),
        running_max.data_ptr<float>(), initialized.data_ptr<bool>(), slot, observed, static_cast<float>(ema),
        static_cast<float>(1.0 - ema), training, static_cast<int>(bits), scale.data_ptr<float>(),
        zp.data_ptr<int32_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {scale, zp};
}

at::Tensor weight_fake_quantize_cuda(const at::Tensor& w, int64_t bits) {
  check_float_input("weight_fake_quantize", w);
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.weight_fake_quantize: bits must be in 2..16, got ", bits);
  TORCH_CHECK(w.dim() >= 1 && w.size(0) > 0, "dwq.weight_fake_quantize: w must have output channels in dim 0, got ",
              w.sizes());
  const c10::cuda::CUDAGuard guard(w.device());
  const at::Tensor wc = w.contiguous();
  at::Tensor out = at::empty_like(wc);
  const int64_t rows = wc.size(0), inner = wc.numel() / rows;
  TORCH_CHECK(rows <= 2147483647, "dwq.weight_fake_quantize: too many output channels (", rows, ")");
  if (inner == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, wc.scalar_type(), "dwq_weight_fake_quantize_cuda", [&] {
    using D = device_t<scalar_t>;
    cuda::weight_fake_quant_kernel<D><<<static_cast<unsigned>(rows), 256, 0, stream>>>(
        reinterpret_cast<const D*>(wc.data_ptr<scalar_t>()), reinterpret_cast<D*>(out.data_ptr<scalar_t>()), inner,
        static_cast<int>(bits));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CUDA, m) {
  m.impl("act_qparams", &act_qparams_cuda);
  m.impl("weight_fake_quantize", &weight_fake_quantize_cuda);
}

}  // namespace dwq

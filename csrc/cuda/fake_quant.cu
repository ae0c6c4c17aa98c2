// CUDA launcher of dwq::fake_quantize (schema in csrc/ops.cpp; kernel in fake_quant.cuh). Same
// argument checks and output layout as the CPU binding (csrc/ops/fake_quant_checks.h); the value
// checks of scale / zero_point run in the kernel, as a device-side assert (no host sync).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

#include "cuda/binding_util.h"
#include "cuda/fake_quant.cuh"
#include "cuda/qgemm_launch.h"  // sm_count
#include "ops/fake_quant_checks.h"

namespace dwq {
namespace {

using cuda::aligned16;
using cuda::device_t;

constexpr int kSteps = 4;  // vectors a thread loads before it computes (fake_quant_kernel's U)

// The value checks alone, channel by channel: an empty x launches no fake_quant_kernel to make them, and
// the CPU op refuses bad quantization parameters whatever x holds.
__global__ void fake_quant_check_kernel(const float* __restrict__ scale, const int32_t* __restrict__ zero_point,
                                        int64_t C, int bits) {
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) cuda::check_qparam(scale[c], zero_point[c], bits);
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_cuda(const at::Tensor& x, const at::Tensor& scale,
                                                      const at::Tensor& zero_point, int64_t bits,
                                                      std::optional<int64_t> axis, bool return_codes) {
  check_fake_quantize_args(x, scale, zero_point, bits, axis);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor sc = scale.contiguous();
  const at::Tensor zc = zero_point.contiguous();
  FakeQuantLayout L = fake_quantize_layout(x, axis, return_codes);
  const int64_t n = x.numel();
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (n == 0) {
    if (L.shape.channels > 0) {
      fake_quant_check_kernel<<<1, 128, 0, stream>>>(sc.data_ptr<float>(), zc.data_ptr<int32_t>(),
                                                          L.shape.channels, static_cast<int>(bits));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return {L.out, L.codes};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dwq_fake_quantize_cuda", [&] {
    using D = device_t<scalar_t>;
    const D* xp = reinterpret_cast<const D*>(L.x_mem.data_ptr<scalar_t>());
    D* op = reinterpret_cast<D*>(L.out.data_ptr<scalar_t>());
    int32_t* cp = return_codes ? L.codes.data_ptr<int32_t>() : nullptr;
    constexpr int V = 16 / sizeof(D);
    const bool per_channel = L.shape.channels > 1;
    const bool vec = aligned16(xp) && aligned16(op) && (cp == nullptr || aligned16(cp)) &&
                     (!per_channel || L.shape.inner % V == 0);
    // One resident wave at most (4 blocks a multiprocessor: the kernel's launch bounds), each thread
    // looping over steps of kSteps vectors; fewer blocks where there are not that many steps.
    const int threads = cuda::kFakeQuantThreads;
    const int64_t work = vec ? n / V : n, per_block = int64_t(threads) * kSteps;
    const int64_t wave = int64_t(4) * cuda::sm_count(x.get_device());
    const unsigned blocks = static_cast<unsigned>(std::max<int64_t>(1, std::min((work + per_block - 1) / per_block, wave)));
    const auto args = std::make_tuple(xp, op, cp, sc.data_ptr<float>(), zc.data_ptr<int32_t>(), n,
                                      L.shape.channels, L.shape.inner, static_cast<int>(bits));
    auto launch = [&](auto kernel) {
      std::apply([&](auto... a) { kernel<<<blocks, threads, 0, stream>>>(a...); }, args);
    };
    using cuda::fake_quant_kernel;
    if (vec)
      per_channel ? launch(fake_quant_kernel<D, V, true, kSteps>) : launch(fake_quant_kernel<D, V, false, kSteps>);
    else
      per_channel ? launch(fake_quant_kernel<D, 1, true, kSteps>) : launch(fake_quant_kernel<D, 1, false, kSteps>);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {L.out, L.codes};
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CUDA, m) { m.impl("fake_quantize", &fake_quantize_cuda); }

}  // namespace dwq

// CPU binding of dwq::fake_quantize: checks the caller's arguments, then runs the torch-free
// row kernel (csrc/cpu/fake_quant.cpp) over at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "cpu/fake_quant.h"
#include "ops/fake_quant_checks.h"

namespace dwq {
namespace {

std::tuple<at::Tensor, at::Tensor> fake_quantize_cpu(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, int64_t bits,
                                                     std::optional<int64_t> axis, bool return_codes) {
  const auto shape = check_fake_quantize_args(x, scale, zero_point, bits, axis);
  const at::Tensor xc = x.contiguous();
  const at::Tensor sc = scale.contiguous();
  const at::Tensor zc = zero_point.contiguous();
  at::Tensor out = at::empty_like(xc);
  at::Tensor codes = return_codes ? at::empty(xc.sizes(), xc.options().dtype(at::kInt)) : at::empty({0}, xc.options().dtype(at::kInt));
  check_qparam_values(sc, zc, bits);
  std::atomic<int64_t> nans{0};
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "dwq_fake_quantize_cpu", [&] {
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    int32_t* cp = return_codes ? codes.data_ptr<int32_t>() : nullptr;
    const float* s = sc.data_ptr<float>();
    const int32_t* z = zc.data_ptr<int32_t>();
    const int b = static_cast<int>(bits);
    if (shape.channels == 1) {
      // One scale for everything: split the flat tensor so that every thread gets a share.
      at::parallel_for(0, xc.numel(), 16384, [&](int64_t begin, int64_t end) {
        nans += cpu::fake_quant_rows<scalar_t>(xp + begin, op + begin, cp ? cp + begin : nullptr, s, z, 1,
                                               end - begin, 0, 1, b);
      });
    } else {
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, shape.inner));
      at::parallel_for(0, shape.outer * shape.channels, grain, [&](int64_t begin, int64_t end) {
        nans += cpu::fake_quant_rows<scalar_t>(xp, op, cp, s, z, shape.channels, shape.inner, begin, end, b);
      });
    }
  });
  TORCH_CHECK(nans.load() == 0, "dwq.fake_quantize: x contains ", nans.load(),
              " NaN value(s); NaN has no quantized code");
  return {out, codes};
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) { m.impl("fake_quantize", &fake_quantize_cpu); }

}  // namespace dwq

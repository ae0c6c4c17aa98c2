// CPU binding of dwq::fake_quantize: checks the caller's arguments, lays out the outputs in x's
// memory format (fake_quant_checks.h), then runs the torch-free row kernel (csrc/cpu/fake_quant.cpp)
// over at::parallel_for. float16/bfloat16 are read and written as they are (float32 inside).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <type_traits>

#include "cpu/fake_quant.h"
#include "ops/cpu_isa.h"
#include "ops/fake_quant_checks.h"

namespace dwq {
namespace {

// The torch-free storage type of a torch scalar type (same size and layout).
template <typename T>
using storage_t = std::conditional_t<std::is_same_v<T, at::Half>, cpu::Float16,
                                     std::conditional_t<std::is_same_v<T, at::BFloat16>, cpu::BFloat16, T>>;

std::tuple<at::Tensor, at::Tensor> fake_quantize_cpu(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, int64_t bits,
                                                     std::optional<int64_t> axis, bool return_codes) {
  check_fake_quantize_args(x, scale, zero_point, bits, axis);
  const at::Tensor sc = scale.contiguous();
  const at::Tensor zc = zero_point.contiguous();
  check_qparam_values(sc, zc, bits);
  FakeQuantLayout L = fake_quantize_layout(x, axis, return_codes);
  const FakeQuantShape& shape = L.shape;
  std::atomic<int64_t> nans{0};
  const cpu::Isa isa = current_isa("fake_quantize");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dwq_fake_quantize_cpu", [&] {
    using S = storage_t<scalar_t>;
    static_assert(sizeof(S) == sizeof(scalar_t), "storage type must match the torch type");
    const S* xp = reinterpret_cast<const S*>(L.x_mem.data_ptr<scalar_t>());
    S* op = reinterpret_cast<S*>(L.out.data_ptr<scalar_t>());
    int32_t* cp = return_codes ? L.codes.data_ptr<int32_t>() : nullptr;
    const float* s = sc.data_ptr<float>();
    const int32_t* z = zc.data_ptr<int32_t>();
    const int b = static_cast<int>(bits);
    if (shape.channels == 1) {
      // One scale for everything: split the flat tensor so that every thread gets a share.
      at::parallel_for(0, x.numel(), 16384, [&](int64_t begin, int64_t end) {
        nans += cpu::fake_quant_rows<S>(isa, xp + begin, op + begin, cp ? cp + begin : nullptr, s, z, 1, end - begin, 0, 1, b);
      });
    } else {
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, shape.inner));
      at::parallel_for(0, shape.outer * shape.channels, grain, [&](int64_t begin, int64_t end) {
        nans += cpu::fake_quant_rows<S>(isa, xp, op, cp, s, z, shape.channels, shape.inner, begin, end, b);
      });
    }
  });
  TORCH_CHECK(nans.load() == 0, "dwq.fake_quantize: x contains ", nans.load(),
              " NaN value(s); NaN has no quantized code");
  return {L.out, L.codes};
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) { m.impl("fake_quantize", &fake_quantize_cpu); }

}  // namespace dwq

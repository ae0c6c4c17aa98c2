// Argument checks of dwq::fake_quantize shared by the CPU and CUDA bindings, so both reject bad
// input with the same message.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

namespace dwq {

struct FakeQuantShape {
  int64_t outer, channels, inner;
};

inline FakeQuantShape check_fake_quantize_args(const at::Tensor& x, const at::Tensor& scale,
                                               const at::Tensor& zero_point, int64_t bits,
                                               std::optional<int64_t> axis) {
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.fake_quantize: bits must be in 2..16, got ", bits);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "dwq.fake_quantize: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(scale.scalar_type() == at::kFloat, "dwq.fake_quantize: scale must be float32, got ",
              scale.scalar_type());
  TORCH_CHECK(zero_point.scalar_type() == at::kInt, "dwq.fake_quantize: zero_point must be int32, got ",
              zero_point.scalar_type());
  TORCH_CHECK(scale.dim() == 1 && zero_point.dim() == 1, "dwq.fake_quantize: scale and zero_point must be 1-D");
  TORCH_CHECK(scale.device() == x.device() && zero_point.device() == x.device(),
              "dwq.fake_quantize: x, scale and zero_point must be on one device, got ", x.device(), ", ",
              scale.device(), ", ", zero_point.device());
  FakeQuantShape s{x.numel(), 1, 1};
  if (axis.has_value()) {
    TORCH_CHECK(x.dim() > 0, "dwq.fake_quantize: axis given for a 0-d tensor");
    const int64_t a = at::maybe_wrap_dim(*axis, x.dim());
    s.channels = x.size(a);
    s.outer = 1;
    for (int64_t d = 0; d < a; ++d) s.outer *= x.size(d);
    s.inner = 1;
    for (int64_t d = a + 1; d < x.dim(); ++d) s.inner *= x.size(d);
  } else {
    s.outer = 1;
    s.inner = x.numel();
  }
  TORCH_CHECK(scale.numel() == s.channels && zero_point.numel() == s.channels,
              "dwq.fake_quantize: scale and zero_point need ", s.channels, " entries (",
              axis.has_value() ? "x.size(axis)" : "per tensor", "), got ", scale.numel(), " and ",
              zero_point.numel());
  return s;
}

// Value checks need the numbers on the host: the CPU binding runs them; on CUDA the Python
// quantizers guarantee them by construction (choose_qparams) rather than pay a device sync.
inline void check_qparam_values(const at::Tensor& scale_cpu, const at::Tensor& zero_point_cpu, int64_t bits) {
  const float* s = scale_cpu.data_ptr<float>();
  const int32_t* z = zero_point_cpu.data_ptr<int32_t>();
  const int64_t qmax = (int64_t{1} << bits) - 1;
  for (int64_t i = 0; i < scale_cpu.numel(); ++i) {
    TORCH_CHECK(std::isfinite(s[i]) && s[i] > 0.f, "dwq.fake_quantize: scale[", i,
                "] must be finite and > 0, got ", s[i]);
    TORCH_CHECK(z[i] >= 0 && z[i] <= qmax, "dwq.fake_quantize: zero_point[", i, "] = ", z[i],
                " is not a code of ", bits, " bits (0..", qmax, ")");
  }
}

}  // namespace dwq

// Argument checks and output layout of dwq::fake_quantize, shared by the CPU and CUDA bindings so
// that both reject bad input with the same message and return the same strides.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include <c10/util/SmallVector.h>

namespace dwq {
// Internal linkage: these helpers are compiled by g++ (CPU binding) and by nvcc's host compiler
// (CUDA binding), possibly with different -std; one shared COMDAT copy would break the ODR.
namespace {

struct FakeQuantShape {
  int64_t outer, channels, inner;
};

inline FakeQuantShape check_fake_quantize_args(const at::Tensor& x, const at::Tensor& scale,
                                               const at::Tensor& zero_point, int64_t bits,
                                               std::optional<int64_t> axis) {
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.fake_quantize: bits must be in 2..16, got ", bits);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble || x.scalar_type() == at::kHalf ||
                  x.scalar_type() == at::kBFloat16,
              "dwq.fake_quantize: x must be float32, float64, float16 or bfloat16, got ", x.scalar_type());
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
    // (else maybe_wrap_dim's IndexError, which names neither the op nor the argument)
    TORCH_CHECK(*axis >= -x.dim() && *axis < x.dim(), "dwq.fake_quantize: axis=", *axis,
                " is not a dimension of x, shape ", x.sizes(), " (per channel needs -", x.dim(), " <= axis < ",
                x.dim(), "; per tensor is axis=None)");
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

// Value checks need the numbers on the host: the CPU binding runs them here; the CUDA kernel checks
// the same values itself, as a device-side assert (csrc/cuda/fake_quant.cu), rather than pay a sync.
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

// The outputs follow x's memory format: at::empty_like(x) strides (x's own when x is dense and
// non-overlapping, e.g. channels-last; else its suggested format), the rule the fake impl in
// dwq/ops/fake_quant.py uses too, so eager and torch.compile agree. The kernels walk memory
// linearly: out and codes are dense, so their memory starts at data_ptr() in out's memory order;
// x_mem is x itself when it has out's strides (every dense x), else x copied into that order. The
// channel axis is located in that order. No views are made on the common path: each is a
// TensorImpl allocation, and this runs at every forward of every quantized layer (host time, issue 10).
struct FakeQuantLayout {
  at::Tensor out, codes;  // what the op returns (codes: empty unless asked)
  at::Tensor x_mem;       // x, or a contiguous copy of it in out's memory order
  FakeQuantShape shape;   // [outer, C, inner] in out's memory order
};

inline FakeQuantLayout fake_quantize_layout(const at::Tensor& x, std::optional<int64_t> axis, bool return_codes) {
  FakeQuantLayout L;
  L.out = at::empty_like(x);
  L.codes = return_codes ? at::empty_like(x, x.options().dtype(at::kInt)) : at::empty({0}, x.options().dtype(at::kInt));
  TORCH_INTERNAL_ASSERT(L.out.is_non_overlapping_and_dense() &&
                            (!return_codes || L.codes.strides() == L.out.strides()),
                        "dwq.fake_quantize: outputs not dense in one memory order");
  const int64_t d = x.dim();
  c10::SmallVector<int64_t, 8> perm(static_cast<size_t>(d));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  const auto st = L.out.strides();
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return st[a] > st[b]; });
  L.x_mem = x.strides() == st ? x : x.permute(perm).contiguous();
  L.shape = FakeQuantShape{x.numel(), 1, 1};
  if (axis.has_value()) {
    const int64_t a = at::maybe_wrap_dim(*axis, d);
    const int64_t am = std::find(perm.begin(), perm.end(), a) - perm.begin();
    L.shape.channels = x.size(a);
    L.shape.outer = 1;
    for (int64_t i = 0; i < am; ++i) L.shape.outer *= x.size(perm[i]);
    L.shape.inner = 1;
    for (int64_t i = am + 1; i < d; ++i) L.shape.inner *= x.size(perm[i]);
  } else {
    L.shape.outer = 1;
    L.shape.inner = x.numel();
  }
  return L;
}

}  // namespace
}  // namespace dwq

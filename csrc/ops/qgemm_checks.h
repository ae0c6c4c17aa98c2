// Argument checks of the true-integer ops (quantize_act, pack_weight, qgemm_acc, qlinear,
// qconv2d_acc, qconv2d) for any device: metadata checks (dtype, shape, device) that never touch
// the data, and value checks that read a host copy (scales finite and > 0, zero points codes of
// their width). The CUDA binding (csrc/cuda/qgemm.cu) uses them; the messages are the CPU
// binding's (csrc/ops/qgemm.cpp), which can switch to these helpers as they are.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/safe_numerics.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "cpu/qgemm.h"

namespace dwq {
// Internal linkage: compiled by g++ and by nvcc's host compiler (see fake_quant_checks.h).
namespace {

inline void qg_check_bits(const char* op, const char* name, int64_t bits) {
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.", op, ": ", name, " must be in 2..16, got ", bits);
}

// t must live on `device` (the device of the op's main input).
inline void qg_check_device(const char* op, const char* name, const at::Tensor& t, const at::Device& device) {
  if (device.is_cpu()) {
    TORCH_CHECK(t.device().is_cpu(), "dwq.", op, ": ", name, " must be a CPU tensor, got device ", t.device());
  } else {
    TORCH_CHECK(t.device() == device, "dwq.", op, ": ", name, " must be on ", device,
                " like the op's main input, got device ", t.device());
  }
}

inline void qg_check_codes(const char* op, const char* name, const at::Tensor& t, int64_t dim,
                           const at::Device& device) {
  qg_check_device(op, name, t, device);
  TORCH_CHECK(t.scalar_type() == at::kByte || t.scalar_type() == at::kInt, "dwq.", op, ": ", name,
              " must hold codes as uint8 or int32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, "dwq.", op, ": ", name, " must be ", dim, "-D, got shape ", t.sizes());
}

// Per-tensor scale: float32 [1] on `device`.
inline void qg_check_scale1_meta(const char* op, const char* name, const at::Tensor& s, const at::Device& device) {
  qg_check_device(op, name, s, device);
  TORCH_CHECK(s.scalar_type() == at::kFloat, "dwq.", op, ": ", name, " must be float32, got ", s.scalar_type());
  TORCH_CHECK(s.numel() == 1, "dwq.", op, ": ", name, " must have 1 element (per tensor), got ", s.numel());
}

// Per-tensor zero point: int32 [1] on `device`.
inline void qg_check_zp1_meta(const char* op, const char* name, const at::Tensor& z, const at::Device& device) {
  qg_check_device(op, name, z, device);
  TORCH_CHECK(z.scalar_type() == at::kInt, "dwq.", op, ": ", name, " must be int32, got ", z.scalar_type());
  TORCH_CHECK(z.numel() == 1, "dwq.", op, ": ", name, " must have 1 element (per tensor), got ", z.numel());
}

// A contiguous host tensor with t's values: t itself when it is a contiguous CPU tensor. The CPU ops
// read their scales through this on every call, and t.to(kCPU) went through the dispatcher each time
// (a tenth of a batch-1 conv's time, with the reshapes and the multiplier's tensor ops).
inline at::Tensor qg_host(const at::Tensor& t) {
  return t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
}

// Value checks (read a host copy: a device sync for GPU tensors). A one-element tensor's data is its
// element whatever its shape.
inline float qg_scale1_value(const char* op, const char* name, const at::Tensor& s) {
  const float v = qg_host(s).const_data_ptr<float>()[0];
  TORCH_CHECK(std::isfinite(v) && v > 0.f, "dwq.", op, ": ", name, " must be finite and > 0, got ", v);
  return v;
}

inline int32_t qg_zp1_value(const char* op, const char* name, const at::Tensor& z, int64_t bits) {
  const int32_t v = qg_host(z).const_data_ptr<int32_t>()[0];
  TORCH_CHECK(v >= 0 && v <= (int64_t{1} << bits) - 1, "dwq.", op, ": ", name, " = ", v, " is not a code of ", bits,
              " bits (0..", (int64_t{1} << bits) - 1, ")");
  return v;
}

// Both checks of a per-tensor scale and zero point, and their values (the CPU ops' arguments).
inline float qg_scale1(const char* op, const char* name, const at::Tensor& s, const at::Device& device) {
  qg_check_scale1_meta(op, name, s, device);
  return qg_scale1_value(op, name, s);
}

inline int32_t qg_zp1(const char* op, const char* name, const at::Tensor& z, int64_t bits, const at::Device& device) {
  qg_check_zp1_meta(op, name, z, device);
  return qg_zp1_value(op, name, z, bits);
}

// Per-output-channel float32 vector [N] on `device`.
inline void qg_check_vec_meta(const char* op, const char* name, const at::Tensor& t, int64_t N,
                              const at::Device& device) {
  qg_check_device(op, name, t, device);
  TORCH_CHECK(t.scalar_type() == at::kFloat, "dwq.", op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.numel() == N, "dwq.", op, ": ", name, " must have shape [", N,
              "] (one per output channel), got ", t.sizes());
}

// Scales finite and > 0 (positive), affine terms finite.
inline void qg_vec_values(const char* op, const char* name, const at::Tensor& t, bool positive) {
  const at::Tensor c = qg_host(t);
  const float* p = c.const_data_ptr<float>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    TORCH_CHECK(std::isfinite(p[i]) && (!positive || p[i] > 0.f), "dwq.", op, ": ", name, "[", i, "] must be finite",
                positive ? " and > 0" : "", ", got ", p[i]);
  }
}

// The epilogue's multiplier, (x_scale * w_scale[n]) * affine_scale[n] in float32: each factor can pass
// its own check while the product overflows (inf or NaN outputs) or underflows to 0 (every output the
// bias alone), silently. Call after the factors' own checks. out (w_scale.numel() floats, or null):
// the multipliers themselves, (x_scale * w_scale[n]) * affine_scale[n] as the reference rounds them.
inline void qg_mult_values(const char* op, float sx, const at::Tensor& w_scale, const at::Tensor* affine_scale,
                           float* out = nullptr) {
  const at::Tensor sw = qg_host(w_scale);
  const at::Tensor af = affine_scale != nullptr ? qg_host(*affine_scale) : at::Tensor();
  const float* w = sw.const_data_ptr<float>();
  const float* a = af.defined() ? af.const_data_ptr<float>() : nullptr;
  for (int64_t i = 0; i < sw.numel(); ++i) {
    const float m = w[i] * sx;
    if (out != nullptr) out[i] = a == nullptr ? m : m * a[i];
    TORCH_CHECK(std::isfinite(m) && m > 0.f, "dwq.", op, ": x_scale * w_scale[", i, "] = ", sx, " * ", w[i],
                m > 0.f ? " overflows" : " underflows to 0 in",
                " float32; the output multiplier must be finite and > 0");
    TORCH_CHECK(a == nullptr || std::isfinite(m * a[i]), "dwq.", op, ": x_scale * w_scale[", i, "] * affine_scale[",
                i, "] = ", m, " * ", a == nullptr ? 0.f : a[i],
                " overflows float32; the output multiplier must be finite");
  }
}

// A packed weight's per-channel zero points and column sums (host copies), which come from the blob:
// damaged ones (a bit flip in a saved model) gave wrong accumulators, or overflowed int64 in the
// zero-point terms, without an error. O(N).
inline void qg_packed_channels(const char* op, int bits, int64_t K, int64_t N, const int32_t* zp,
                               const int64_t* colsum) {
  const int64_t qmax = (int64_t{1} << bits) - 1;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t z = zp[n], s = colsum[n];
    TORCH_CHECK(z >= 0 && z <= qmax && s >= 0 && s <= K * qmax, "dwq.", op, ": w_packed is damaged: channel ", n,
                " holds zero point ", z, " and column sum ", s, " (expected 0..", qmax, " and 0..", K * qmax,
                "); make it again with dwq.ops.pack_weight");
  }
}

// Per-output-channel zero points int32 [N] with codes of `bits`.
inline void qg_zp_vec_values(const char* op, const char* name, const at::Tensor& z, int64_t bits) {
  const at::Tensor c = qg_host(z);
  const int32_t* p = c.const_data_ptr<int32_t>();
  const int64_t qmax = (int64_t{1} << bits) - 1;
  for (int64_t i = 0; i < c.numel(); ++i)
    TORCH_CHECK(p[i] >= 0 && p[i] <= qmax, "dwq.", op, ": ", name, "[", i, "] = ", p[i], " is not a code of ", bits,
                " bits (0..", qmax, ")");
}

// What the input needs of a packed weight's K: a GEMM's column count (kernel_size empty) or a
// conv's kernel_size x C. (kernel_size views the op's argument: use it within the op call.)
struct KNeed {
  int64_t K = 0;
  at::IntArrayRef kernel_size;
  int64_t C = 0;
};

// The packed weight w fits the input: its K, and for a conv the kernel its K columns were ordered
// for. A GEMM-packed weight serves a 1 x 1 conv (one kernel tap: nothing to order) and no other, and
// a GEMM takes no conv-packed weight but a 1 x 1 one: the (ky, kx, c) columns of a larger kernel are
// not the (c, ky, kx) of torch's unfold, so an im2col caller got other numbers, silently.
inline void qg_check_k(const char* op, const cpu::PackedWeightView& w, const KNeed& need) {
  if (need.kernel_size.empty()) {
    TORCH_CHECK(w.kh == 0 || (w.kh == 1 && w.kw == 1), "dwq.", op,
                ": w_packed was packed by dwq.ops.pack_conv_weight for a ", w.kh, "x", w.kw,
                " kernel (K columns in (ky, kx, c) order) but a GEMM needs a dwq.ops.pack_weight weight [N, K] or a "
                "1x1 conv's; use dwq.ops.qconv2d for this weight");
    TORCH_CHECK(w.K == need.K, "dwq.", op, ": x_codes has K = ", need.K, " columns but w_packed was packed with K = ",
                w.K);
    return;
  }
  TORCH_CHECK(w.K == need.K, "dwq.", op, ": w_packed was packed with K = ", w.K, " but kernel_size ",
              need.kernel_size, " x C = ", need.C, " input channels needs K = ", need.K,
              " (pack conv weights [O, C, kh, kw] with dwq.ops.pack_conv_weight)");
  const int64_t kh = need.kernel_size[0], kw = need.kernel_size[1];
  if (w.kh == 0) {
    TORCH_CHECK(kh == 1 && kw == 1, "dwq.", op, ": w_packed was packed for a GEMM (dwq.ops.pack_weight) but kernel_size ",
                need.kernel_size, " needs its K columns in (ky, kx, c) order: pack conv weights [O, C, kh, kw] with "
                "dwq.ops.pack_conv_weight");
  } else {
    TORCH_CHECK(kh == w.kh && kw == w.kw, "dwq.", op, ": w_packed was packed for a ", w.kh, "x", w.kw,
                " kernel but kernel_size is ", need.kernel_size);
  }
}

// The blob of pack_weight's [N, K] codes must have a size that int64 holds (an expanded w_codes makes
// any K cheap): else its size wrapped and the packing wrote out of bounds.
inline void qg_pack_size(int64_t N, int64_t K, int64_t bits) {
  TORCH_CHECK(cpu::packed_layout_fits(N, K, static_cast<int>(bits)), "dwq.pack_weight: w_codes [N, K] = [", N, ", ",
              K, "] at ", bits, " bits: N and K must be at most 2^40 and the packed weight below 2^62 bytes");
}

// pack_weight's kernel_size: empty (a GEMM weight) or the conv kernel [kh, kw] whose (ky, kx, c)
// ordered weights the K columns hold. Returns {kh, kw}, {0, 0} for a GEMM.
inline std::pair<int, int> qg_pack_kernel(at::IntArrayRef kernel_size, int64_t K) {
  if (kernel_size.empty()) return {0, 0};
  TORCH_CHECK(kernel_size.size() == 2, "dwq.pack_weight: kernel_size must be empty (a GEMM weight) or [kh, kw], got ",
              kernel_size);
  const int64_t kh = kernel_size[0], kw = kernel_size[1];
  // (bounded by K, and by int32 for the header, before the product)
  const bool fits = kh >= 1 && kw >= 1 && kh <= K && kw <= K && kh <= INT32_MAX && kw <= INT32_MAX;
  TORCH_CHECK(fits && K % (kh * kw) == 0, "dwq.pack_weight: kernel_size ",
              kernel_size, " must be >= 1 and divide K = ", K, " (K = kh * kw * C)");
  return {static_cast<int>(kh), static_cast<int>(kw)};
}

// The implicit GEMM of a conv: {OH, OW} output of the H x W input, M = B * OH * OW rows and
// K = kh * kw * C columns.
struct ConvSize {
  int64_t OH = 0, OW = 0, M = 0, K = 0;
};

// The conv geometry checks of every device (entries, signs, a padded input at least the kernel).
// Every sum and product is checked before use: absurd geometry is an error naming it, never a
// wrapped size (signed overflow) that a later check or allocation misreads.
inline ConvSize qg_conv_size(const char* op, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                             at::IntArrayRef padding, int64_t B, int64_t C, int64_t H, int64_t W) {
  TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2, "dwq.", op,
              ": kernel_size, stride and padding must have 2 entries each");
  const int64_t kh = kernel_size[0], kw = kernel_size[1];
  TORCH_CHECK(kh >= 1 && kw >= 1, "dwq.", op, ": kernel_size must be >= 1, got ", kernel_size);
  TORCH_CHECK(stride[0] >= 1 && stride[1] >= 1, "dwq.", op, ": stride must be >= 1, got ", stride);
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, "dwq.", op, ": padding must be >= 0, got ", padding);
  int64_t ph = 0, pw = 0, kk = 0;
  const bool wraps = c10::mul_overflows(padding[0], int64_t{2}, &ph) || c10::add_overflows(H, ph, &ph) ||
                     c10::mul_overflows(padding[1], int64_t{2}, &pw) || c10::add_overflows(W, pw, &pw);
  TORCH_CHECK(!wraps, "dwq.", op, ": padding ", padding, " of a ", H, "x", W, " input overflows 64-bit sizes");
  TORCH_CHECK(ph >= kh && pw >= kw, "dwq.", op, ": input ", H, "x", W, " with padding ", padding,
              " is smaller than the kernel ", kernel_size);
  ConvSize g;
  g.OH = (ph - kh) / stride[0] + 1;
  g.OW = (pw - kw) / stride[1] + 1;
  TORCH_CHECK(!c10::mul_overflows(B, g.OH, &g.M) && !c10::mul_overflows(g.M, g.OW, &g.M), "dwq.", op,
              ": the output ", B, "x", g.OH, "x", g.OW, " (batch x height x width) overflows 64-bit sizes");
  TORCH_CHECK(!c10::mul_overflows(kh, kw, &kk) && !c10::mul_overflows(kk, C, &g.K), "dwq.", op, ": kernel_size ",
              kernel_size, " x C = ", C, " input channels overflows 64-bit sizes");
  return g;
}

// affine_quantize_act's checks of everything but x's device and the argument values (each device
// reads those its own way); returns C = x.size(1).
inline int64_t qg_check_affine_meta(const char* op, const at::Tensor& x, const at::Tensor& scale, const at::Tensor& bias,
                                    const at::Tensor& out_scale, const at::Tensor& out_zero_point, int64_t bits) {
  qg_check_bits(op, "bits", bits);
  TORCH_CHECK(x.scalar_type() == at::kFloat, "dwq.", op, ": x must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 2, "dwq.", op, ": x must be [B, C, ...] (channels in dim 1), got shape ", x.sizes());
  const int64_t C = x.size(1);
  qg_check_vec_meta(op, "scale", scale, C, x.device());
  qg_check_vec_meta(op, "bias", bias, C, x.device());
  qg_check_scale1_meta(op, "out_scale", out_scale, x.device());
  qg_check_zp1_meta(op, "out_zero_point", out_zero_point, x.device());
  return C;
}

// The checked arguments of an affine + quantize op on the CPU (affine_quantize_act, add_affine_quantize_):
// C, the per-channel vectors contiguous, the output scale and zero point read.
struct AffineQuantArgs {
  int64_t C;
  at::Tensor mul, add;
  float scale;
  int32_t zp;
};
inline AffineQuantArgs qg_affine_quant_args(const char* op, const at::Tensor& x, const at::Tensor& scale,
                                            const at::Tensor& bias, const at::Tensor& out_scale,
                                            const at::Tensor& out_zero_point, int64_t bits) {
  AffineQuantArgs a;
  a.C = qg_check_affine_meta(op, x, scale, bias, out_scale, out_zero_point, bits);
  qg_vec_values(op, "scale", scale, false);
  qg_vec_values(op, "bias", bias, false);
  a.mul = scale.contiguous();
  a.add = bias.contiguous();
  a.scale = qg_scale1_value(op, "out_scale", out_scale);
  a.zp = qg_zp1_value(op, "out_zero_point", out_zero_point, bits);
  return a;
}

// x as the affine kernels read it: channels-last in place (rows of a pixel's C values, inner = C),
// else NCHW (rows of inner = H*W values; x is copied when it is neither).
struct AffineLayout {
  at::Tensor x;
  bool nhwc;
  int64_t inner;
};
inline AffineLayout qg_affine_layout(const at::Tensor& x) {
  const bool nhwc = x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  AffineLayout l{nhwc || x.is_contiguous() ? x : x.contiguous(), nhwc, 0};
  if (x.numel() > 0) l.inner = nhwc ? x.size(1) : x.numel() / (x.size(0) * x.size(1));
  return l;
}

}  // namespace
}  // namespace dwq

// CPU bindings of the true-integer ops (schemas in csrc/ops.cpp): quantize_act, affine_quantize_act, pack_weight,
// qgemm_acc, qlinear, qconv2d_acc, qconv2d, qconv2d_residual. Each checks the caller's arguments (TORCH_CHECK naming
// the argument, the value and the expectation), takes raw pointers and runs the torch-free engine
// of csrc/cpu/qgemm.h over at::parallel_for. Inference only: no autograd.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/qgemm.h"
#include "ops/affine_rows_cpu.h"
#include "ops/cpu_isa.h"
#include "ops/qgemm_checks.h"

namespace dwq {
namespace {

using cpu::Isa;


// The argument checks are csrc/ops/qgemm_checks.h's (shared with the CUDA binding, same messages),
// here for CPU tensors.
const at::Device kCpu(at::kCPU);

void check_bits(const char* op, const char* name, int64_t bits) { qg_check_bits(op, name, bits); }

void check_cpu(const char* op, const char* name, const at::Tensor& t) { qg_check_device(op, name, t, kCpu); }

void check_codes_tensor(const char* op, const char* name, const at::Tensor& t, int64_t dim) {
  qg_check_codes(op, name, t, dim, kCpu);
}

// Float per-channel vector [N]: contiguous float32 copy; scales must be finite and > 0, affine
// terms finite.
at::Tensor check_vec(const char* op, const char* name, const at::Tensor& t, int64_t N, bool positive) {
  qg_check_vec_meta(op, name, t, N, kCpu);
  qg_vec_values(op, name, t, positive);
  return t.contiguous();
}

struct Weight {
  at::Tensor blob;  // keeps the (possibly re-aligned) storage alive
  cpu::PackedWeightView view;
};

Weight check_packed(const char* op, const at::Tensor& w) {
  check_cpu(op, "w_packed", w);
  TORCH_CHECK(w.scalar_type() == at::kChar && w.dim() == 2, "dwq.", op,
              ": w_packed must be the int8 [N, P] tensor made by dwq.ops.pack_weight, got ", w.scalar_type(), " ",
              w.sizes());
  Weight out;
  out.blob = w.contiguous();
  if (reinterpret_cast<uintptr_t>(out.blob.data_ptr()) % 64 != 0) out.blob = out.blob.clone();
  TORCH_CHECK(cpu::parse_packed_weight(out.blob.data_ptr<int8_t>(), out.blob.numel(), &out.view), "dwq.", op,
              ": w_packed is not a dwq packed weight (bad header); make it with dwq.ops.pack_weight");
  TORCH_CHECK(out.view.N == w.size(0), "dwq.", op, ": w_packed header says N = ", out.view.N, " but w_packed.size(0) = ",
              w.size(0));
  qg_packed_channels(op, out.view.bits, out.view.K, out.view.N, out.view.zp, out.view.colsum);
  return out;
}

// Runs the plan on all threads; raises if the activation codes were out of range.
void run_plan(const char* op, Isa isa, int64_t M, const cpu::ActSource& a, const Weight& w, const cpu::Epilogue& ep) {
  if (M == 0) return;
  const int nt = std::max(1, at::get_num_threads());
  const cpu::GemmPlan plan = cpu::plan_qgemm(M, w.view, a.bits, nt, cpu::isa_row_tile(isa));
  std::atomic<int64_t> bad{0};
  // One share per thread, split by work (cpu::plan_split), not by item count.
  at::parallel_for(0, nt, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i0 = cpu::plan_split(plan, static_cast<int>(t), nt);
      const int64_t i1 = cpu::plan_split(plan, static_cast<int>(t + 1), nt);
      if (i0 < i1) bad += cpu::run_qgemm(isa, plan, a, w.view, ep, i0, i1);
    }
  });
  TORCH_CHECK(bad.load() == 0, "dwq.", op, ": x_codes holds value(s) outside 0..",
              (int64_t{1} << a.bits) - 1, " (not codes of x_bits = ", a.bits, ")");
}

struct EpilogueArgs {
  std::vector<float> mult;  // ep.mult points into it (a moved vector keeps its buffer)
  at::Tensor bias;
  cpu::Epilogue ep;
  at::ScalarType out_dtype = at::kFloat;
};

EpilogueArgs make_epilogue(const char* op, float sx, const at::Tensor& w_scale, int64_t N,
                           const std::optional<at::Tensor>& affine_scale, const std::optional<at::Tensor>& affine_bias,
                           bool relu, const std::optional<at::Tensor>& out_scale,
                           const std::optional<at::Tensor>& out_zero_point, int64_t out_bits) {
  EpilogueArgs e;
  // mult[n] = (s_x * s_w[n]) * affine_scale[n] in float32, the order the reference uses.
  at::Tensor sw = check_vec(op, "w_scale", w_scale, N, true);
  const at::Tensor aff =
      affine_scale.has_value() ? check_vec(op, "affine_scale", *affine_scale, N, false) : at::Tensor();
  e.mult.resize(static_cast<size_t>(N));
  qg_mult_values(op, sx, sw, aff.defined() ? &aff : nullptr, e.mult.data());
  if (affine_bias.has_value()) e.bias = check_vec(op, "affine_bias", *affine_bias, N, false);
  e.ep.mult = e.mult.data();
  e.ep.bias = e.bias.defined() ? e.bias.data_ptr<float>() : nullptr;
  e.ep.relu = relu;
  TORCH_CHECK(out_scale.has_value() == out_zero_point.has_value(), "dwq.", op,
              ": give both out_scale and out_zero_point (requantized output) or neither (float32 output)");
  if (out_scale.has_value()) {
    check_bits(op, "out_bits", out_bits);
    e.ep.out_scale = qg_scale1(op, "out_scale", *out_scale, kCpu);
    e.ep.out_zp = qg_zp1(op, "out_zero_point", *out_zero_point, out_bits, kCpu);
    e.ep.out_bits = static_cast<int>(out_bits);
    e.ep.kind = out_bits <= 8 ? cpu::OutKind::codes_u8 : cpu::OutKind::codes_i32;
    e.out_dtype = out_bits <= 8 ? at::kByte : at::kInt;
  } else {
    e.ep.kind = cpu::OutKind::f32;
    e.out_dtype = at::kFloat;
  }
  return e;
}

// ---------------------------------------------------------------- quantize_act / pack_weight

at::Tensor quantize_act_cpu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, int64_t bits) {
  const char* op = "quantize_act";
  check_bits(op, "bits", bits);
  check_cpu(op, "x", x);
  TORCH_CHECK(x.scalar_type() == at::kFloat, "dwq.quantize_act: x must be float32, got ", x.scalar_type());
  const float s = qg_scale1(op, "scale", scale, kCpu);
  const int32_t z = qg_zp1(op, "zero_point", zero_point, bits, kCpu);
  const Isa isa = current_isa(op);
  const bool u8 = bits <= 8;
  at::Tensor out = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  at::Tensor xc = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  at::Tensor dst = out.strides() == xc.strides() ? out : at::empty_like(xc, out.options());
  const float* xp = xc.data_ptr<float>();
  void* op_ = dst.data_ptr();
  const int64_t n = xc.numel(), esz = u8 ? 1 : 4;
  std::atomic<int64_t> nans{0};
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    nans += cpu::quantize_act(isa, xp + b, e - b, s, z, static_cast<int>(bits),
                              static_cast<char*>(op_) + b * esz, u8);
  });
  TORCH_CHECK(nans.load() == 0, "dwq.quantize_act: x contains ", nans.load(), " NaN value(s); NaN has no code");
  if (!dst.is_same(out)) out.copy_(dst);
  return out;
}

// quantize_act of relu?(x * scale[c] + bias[c]), c = dim 1: a folded batch norm (with its ReLU) and
// the next layer's activation quantization in one pass. NCHW rows and channels-last pixels are read
// in place; any other layout is copied to NCHW first.
at::Tensor affine_quantize_act_cpu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& bias, bool relu,
                                   const at::Tensor& out_scale, const at::Tensor& out_zero_point, int64_t bits) {
  const char* op = "affine_quantize_act";
  check_cpu(op, "x", x);
  const AffineQuantArgs q = qg_affine_quant_args(op, x, scale, bias, out_scale, out_zero_point, bits);
  const Isa isa = current_isa(op);
  const bool u8 = bits <= 8;
  at::Tensor out = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  const AffineLayout l = qg_affine_layout(x);
  at::Tensor dst = out.strides() == l.x.strides() ? out : at::empty_like(l.x, out.options());
  const int64_t rows = l.inner == 0 ? 0 : l.x.numel() / l.inner;
  const cpu::AffineRows a{q.mul.data_ptr<float>(), q.add.data_ptr<float>(), q.C, 0, l.nhwc, relu};
  const int64_t nans = affine_quantize_rows_cpu(isa, l.x.data_ptr<float>(), nullptr, rows, l.inner, a, q.scale, q.zp,
                                                static_cast<int>(bits), static_cast<char*>(dst.data_ptr()), u8);
  TORCH_CHECK(nans == 0, "dwq.affine_quantize_act: x * scale + bias has ", nans,
              " NaN value(s) (NaN in x, or inf * 0); NaN has no code");
  if (!dst.is_same(out)) out.copy_(dst);
  return out;
}

at::Tensor pack_weight_cpu(const at::Tensor& w, const at::Tensor& zero_point, int64_t bits,
                           at::IntArrayRef kernel_size) {
  const char* op = "pack_weight";
  check_bits(op, "bits", bits);
  check_codes_tensor(op, "w_codes", w, 2);
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(N > 0 && K > 0, "dwq.pack_weight: w_codes must be non-empty [N, K], got ", w.sizes());
  qg_pack_size(N, K, bits);
  const auto [kh, kw] = qg_pack_kernel(kernel_size, K);
  check_cpu(op, "zero_point", zero_point);
  TORCH_CHECK(zero_point.scalar_type() == at::kInt, "dwq.pack_weight: zero_point must be int32, got ",
              zero_point.scalar_type());
  TORCH_CHECK(zero_point.dim() == 1 && zero_point.numel() == N, "dwq.pack_weight: zero_point must have shape [", N,
              "] (one per output channel), got ", zero_point.sizes());
  qg_zp_vec_values(op, "zero_point", zero_point, bits);
  at::Tensor zc = zero_point.contiguous();
  const int32_t* zp = zc.data_ptr<int32_t>();
  const int64_t qmax = (int64_t{1} << bits) - 1;
  at::Tensor out = at::empty({N, cpu::packed_weight_cols(N, K, static_cast<int>(bits))}, w.options().dtype(at::kChar));
  TORCH_INTERNAL_ASSERT(reinterpret_cast<uintptr_t>(out.data_ptr()) % 64 == 0);
  const int64_t bad = cpu::pack_weight(w.data_ptr(), w.scalar_type() == at::kByte, N, K, w.stride(0), w.stride(1), zp,
                                       static_cast<int>(bits), out.data_ptr<int8_t>(), kh, kw);
  const int64_t used = cpu::packed_weight_bytes(N, K, static_cast<int>(bits));
  std::memset(out.data_ptr<int8_t>() + used, 0, static_cast<size_t>(out.numel() - used));  // deterministic tail
  TORCH_CHECK(bad == 0, "dwq.pack_weight: w_codes has ", bad, " value(s) outside 0..", qmax, " (not codes of bits = ",
              bits, ")");
  return out;
}

// ---------------------------------------------------------------- GEMM

cpu::ActSource gemm_source(const char* op, const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                           const Weight& w) {
  check_bits(op, "x_bits", x_bits);
  check_codes_tensor(op, "x_codes", x, 2);
  qg_check_k(op, w.view, KNeed{x.size(1)});
  cpu::ActSource a;
  a.x = x.data_ptr();
  a.is_u8 = x.scalar_type() == at::kByte;
  a.bits = static_cast<int>(x_bits);
  a.zx = qg_zp1(op, "x_zero_point", x_zero_point, x_bits, kCpu);
  a.sm = x.stride(0);
  a.sk = x.stride(1);
  return a;
}

at::Tensor qgemm_acc_cpu(const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits, const at::Tensor& w_packed) {
  const char* op = "qgemm_acc";
  const Weight w = check_packed(op, w_packed);
  const cpu::ActSource a = gemm_source(op, x, x_zero_point, x_bits, w);
  const Isa isa = current_isa(op);
  at::Tensor out = at::empty({x.size(0), w.view.N}, x.options().dtype(at::kLong));
  cpu::Epilogue ep;
  ep.kind = cpu::OutKind::acc_i64;
  ep.out = out.data_ptr();
  ep.ldo = w.view.N;
  run_plan(op, isa, x.size(0), a, w, ep);
  return out;
}

at::Tensor qlinear_cpu(const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point, int64_t x_bits,
                       const at::Tensor& w_packed, const at::Tensor& w_scale,
                       const std::optional<at::Tensor>& affine_scale, const std::optional<at::Tensor>& affine_bias,
                       bool relu, const std::optional<at::Tensor>& out_scale,
                       const std::optional<at::Tensor>& out_zero_point, int64_t out_bits) {
  const char* op = "qlinear";
  const Weight w = check_packed(op, w_packed);
  const cpu::ActSource a = gemm_source(op, x, x_zero_point, x_bits, w);
  const float sx = qg_scale1(op, "x_scale", x_scale, kCpu);
  EpilogueArgs e = make_epilogue(op, sx, w_scale, w.view.N, affine_scale, affine_bias, relu, out_scale, out_zero_point,
                                 out_bits);
  const Isa isa = current_isa(op);
  at::Tensor out = at::empty({x.size(0), w.view.N}, x.options().dtype(e.out_dtype));
  e.ep.out = out.data_ptr();
  e.ep.ldo = w.view.N;
  run_plan(op, isa, x.size(0), a, w, e.ep);
  return out;
}

// ---------------------------------------------------------------- conv2d

struct ConvGeom {
  cpu::ActSource a;
  int64_t B, OH, OW, M;  // M = B * OH * OW rows of the implicit GEMM
};

ConvGeom conv_source(const char* op, const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                     const Weight& w, at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding) {
  check_bits(op, "x_bits", x_bits);
  check_codes_tensor(op, "x_codes", x, 4);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  ConvGeom g;
  g.B = B;
  const ConvSize cs = qg_conv_size(op, kernel_size, stride, padding, B, C, H, W);
  g.OH = cs.OH;
  g.OW = cs.OW;
  g.M = cs.M;
  const int64_t kh = kernel_size[0], kw = kernel_size[1];
  qg_check_k(op, w.view, KNeed{cs.K, kernel_size, C});
  cpu::ActSource& a = g.a;
  a.x = x.data_ptr();
  a.is_u8 = x.scalar_type() == at::kByte;
  a.bits = static_cast<int>(x_bits);
  a.zx = qg_zp1(op, "x_zero_point", x_zero_point, x_bits, kCpu);
  a.is_conv = true;
  a.batch = B;
  a.H = H;
  a.W = W;
  a.C = C;
  a.sn = x.stride(0);
  a.sc = x.stride(1);
  a.sh = x.stride(2);
  a.sw = x.stride(3);
  a.kh = kh;
  a.kw = kw;
  a.stride_h = stride[0];
  a.stride_w = stride[1];
  a.pad_h = padding[0];
  a.pad_w = padding[1];
  a.OH = g.OH;
  a.OW = g.OW;
  return g;
}

// The output [B, N, OH, OW] in channels-last memory: the implicit GEMM's [M, N] rows, ldo = N. (One
// allocation, where an NHWC tensor and its permuted view were two calls a conv.)
at::Tensor conv_out(const ConvGeom& g, int64_t N, const at::TensorOptions& opt) {
  return at::empty({g.B, N, g.OH, g.OW}, opt.memory_format(at::MemoryFormat::ChannelsLast));
}

at::Tensor qconv2d_acc_cpu(const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                           const at::Tensor& w_packed, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding) {
  const char* op = "qconv2d_acc";
  const Weight w = check_packed(op, w_packed);
  const ConvGeom g = conv_source(op, x, x_zero_point, x_bits, w, kernel_size, stride, padding);
  const Isa isa = current_isa(op);
  const int64_t N = w.view.N;
  at::Tensor out = conv_out(g, N, x.options().dtype(at::kLong));
  cpu::Epilogue ep;
  ep.kind = cpu::OutKind::acc_i64;
  ep.out = out.data_ptr();
  ep.ldo = N;
  run_plan(op, isa, g.M, g.a, w, ep);
  return out;
}

// qconv2d's checked arguments: the packed weight, the conv's geometry and the epilogue.
struct ConvCall {
  Weight w;
  ConvGeom g;
  EpilogueArgs e;
};

ConvCall conv_call(const char* op, const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point,
                   int64_t x_bits, const at::Tensor& w_packed, const at::Tensor& w_scale, at::IntArrayRef kernel_size,
                   at::IntArrayRef stride, at::IntArrayRef padding, const std::optional<at::Tensor>& affine_scale,
                   const std::optional<at::Tensor>& affine_bias, bool relu, const std::optional<at::Tensor>& out_scale,
                   const std::optional<at::Tensor>& out_zero_point, int64_t out_bits) {
  ConvCall c{check_packed(op, w_packed), {}, {}};
  c.g = conv_source(op, x, x_zero_point, x_bits, c.w, kernel_size, stride, padding);
  const float sx = qg_scale1(op, "x_scale", x_scale, kCpu);
  c.e = make_epilogue(op, sx, w_scale, c.w.view.N, affine_scale, affine_bias, relu, out_scale, out_zero_point, out_bits);
  c.e.ep.ldo = c.w.view.N;
  return c;
}

at::Tensor qconv2d_cpu(const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point, int64_t x_bits,
                       const at::Tensor& w_packed, const at::Tensor& w_scale, at::IntArrayRef kernel_size,
                       at::IntArrayRef stride, at::IntArrayRef padding, const std::optional<at::Tensor>& affine_scale,
                       const std::optional<at::Tensor>& affine_bias, bool relu,
                       const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& out_zero_point,
                       int64_t out_bits) {
  const char* op = "qconv2d";
  ConvCall c = conv_call(op, x, x_scale, x_zero_point, x_bits, w_packed, w_scale, kernel_size, stride, padding,
                         affine_scale, affine_bias, relu, out_scale, out_zero_point, out_bits);
  at::Tensor out = conv_out(c.g, c.w.view.N, x.options().dtype(c.e.out_dtype));
  c.e.ep.out = out.data_ptr();
  run_plan(op, current_isa(op), c.g.M, c.g.a, c.w, c.e.ep);
  return out;
}

// qconv2d with the residual output of the engine's epilogue (Residual in csrc/cpu/qgemm.h): y =
// relu?(conv + residual) and y's codes in one pass over the output, where qconv2d then
// add_relu_quantize_ wrote the conv's output and read it back.
std::tuple<at::Tensor, at::Tensor> qconv2d_residual_cpu(
    const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point, int64_t x_bits,
    const at::Tensor& w_packed, const at::Tensor& w_scale, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, const std::optional<at::Tensor>& affine_scale, const std::optional<at::Tensor>& affine_bias,
    const at::Tensor& residual, bool relu, const at::Tensor& out_scale, const at::Tensor& out_zero_point,
    int64_t out_bits) {
  const char* op = "qconv2d_residual";
  ConvCall c = conv_call(op, x, x_scale, x_zero_point, x_bits, w_packed, w_scale, kernel_size, stride, padding,
                         affine_scale, affine_bias, relu, out_scale, out_zero_point, out_bits);
  const int64_t N = c.w.view.N;
  const ConvGeom& g = c.g;
  EpilogueArgs& e = c.e;
  check_cpu(op, "residual", residual);
  // (An argument that requires grad was refused by its Autograd kernel, csrc/ops/straight_through.cpp;
  // dwq.ops.qconv2d_residual composes differentiable ops where autograd records.)
  TORCH_CHECK(residual.scalar_type() == at::kFloat, "dwq.", op, ": residual must be float32, got ",
              residual.scalar_type());
  const std::vector<int64_t> shape{g.B, N, g.OH, g.OW};
  TORCH_CHECK(residual.sizes() == at::IntArrayRef(shape), "dwq.", op, ": residual must have the output's shape ",
              at::IntArrayRef(shape), ", got ", residual.sizes());
  TORCH_CHECK(residual.is_contiguous(at::MemoryFormat::ChannelsLast), "dwq.", op,
              ": residual must be channels-last (the output's layout), got strides ", residual.strides());
  at::Tensor out = conv_out(g, N, x.options().dtype(at::kFloat));
  at::Tensor codes = conv_out(g, N, x.options().dtype(e.out_dtype));
  std::atomic<int64_t> nans{0};
  // (make_epilogue checked the codes' qparams and set a codes kind: the float output is the main one)
  e.ep.kind = cpu::OutKind::f32;
  e.ep.out = out.data_ptr();
  e.ep.res.residual = residual.const_data_ptr<float>();
  e.ep.res.codes = codes.data_ptr();
  e.ep.res.codes_u8 = out_bits <= 8;
  e.ep.res.nans = &nans;
  run_plan(op, current_isa(op), g.M, g.a, c.w, e.ep);
  TORCH_CHECK(nans.load() == 0, "dwq.", op, ": ", relu ? "relu(conv + residual)" : "conv + residual", " has ",
              nans.load(), " NaN value(s); NaN has no code");
  return {out, codes};
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) {
  m.impl("quantize_act", &quantize_act_cpu);
  m.impl("affine_quantize_act", &affine_quantize_act_cpu);
  m.impl("pack_weight", &pack_weight_cpu);
  m.impl("qgemm_acc", &qgemm_acc_cpu);
  m.impl("qlinear", &qlinear_cpu);
  m.impl("qconv2d_acc", &qconv2d_acc_cpu);
  m.impl("qconv2d", &qconv2d_cpu);
  m.impl("qconv2d_residual", &qconv2d_residual_cpu);
}

}  // namespace dwq

// CPU bindings of dwq::add_relu_, add_relu_quantize_ and add_affine_quantize_: check the arguments (residual_checks.h,
// qgemm_checks.h), then run the torch-free kernels (csrc/cpu/residual.cpp, the integer engine's
// quantize_act) over at::parallel_for.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>

#include "cpu/qgemm.h"
#include "cpu/residual.h"
#include "ops/affine_rows_cpu.h"
#include "ops/cpu_isa.h"
#include "ops/qgemm_checks.h"
#include "ops/residual_checks.h"

namespace dwq {
namespace {

void add_relu_cpu(at::Tensor& x, const at::Tensor& other) {
  check_add_relu_args(x, other);
  if (x.numel() == 0) return;
  const cpu::Isa isa = current_isa("add_relu_");
  float* a = x.data_ptr<float>();
  const float* b = other.const_data_ptr<float>();
  at::parallel_for(0, x.numel(), 32768, [&](int64_t begin, int64_t end) {
    cpu::add_relu(isa, a + begin, b + begin, end - begin);
  });
}

// add_relu_ and then quantize_act of the result, chunk by chunk: each chunk of relu(x + other) is
// written to x and quantized while it is in L1, so the next layer's quantization does not read x
// from memory again.
at::Tensor add_relu_quantize_cpu(at::Tensor& x, const at::Tensor& other, const at::Tensor& scale,
                                 const at::Tensor& zero_point, int64_t bits) {
  const char* op = "add_relu_quantize_";
  check_add_relu_args(x, other, op);
  qg_check_bits(op, "bits", bits);
  const float s = qg_scale1(op, "scale", scale, x.device());
  const int32_t z = qg_zp1(op, "zero_point", zero_point, bits, x.device());
  const bool u8 = bits <= 8;
  at::Tensor codes = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));  // (x's strides: x is dense)
  if (x.numel() == 0) return codes;
  const cpu::Isa isa = current_isa(op);
  float* a = x.data_ptr<float>();
  const float* b = other.const_data_ptr<float>();
  char* out = static_cast<char*>(codes.data_ptr());
  const int64_t esz = u8 ? 1 : 4;
  constexpr int64_t kChunk = 2048;
  std::atomic<int64_t> nans{0};
  at::parallel_for(0, x.numel(), 32768, [&](int64_t begin, int64_t end) {
    int64_t n = 0;
    for (int64_t i = begin; i < end; i += kChunk) {
      const int64_t cnt = std::min(kChunk, end - i);
      cpu::add_relu(isa, a + i, b + i, cnt);
      n += cpu::quantize_act(isa, a + i, cnt, s, z, static_cast<int>(bits), out + i * esz, u8);
    }
    nans += n;
  });
  TORCH_CHECK(nans.load() == 0, "dwq.add_relu_quantize_: relu(x + other) has ", nans.load(),
              " NaN value(s); NaN has no code");
  return codes;
}

// add_to, then affine_quantize_act of the new x, block by block of rows (affine_rows_cpu.h): each block's
// sums are written to x and, while in L1, go through the next block's batch norm (+ ReLU) and
// quantization. x is NCHW or channels-last (updated in place, so it is not copied into either).
at::Tensor add_affine_quantize_cpu(at::Tensor& x, const at::Tensor& other, const at::Tensor& scale,
                                   const at::Tensor& bias, bool relu, const at::Tensor& out_scale,
                                   const at::Tensor& out_zero_point, int64_t bits) {
  const char* op = "add_affine_quantize_";
  check_add_relu_args(x, other, op);
  const AffineQuantArgs q = qg_affine_quant_args(op, x, scale, bias, out_scale, out_zero_point, bits);
  const AffineLayout l = qg_affine_layout(x);
  TORCH_CHECK(l.x.is_same(x), "dwq.", op, ": x must be contiguous or channels-last (it is updated in place), got "
              "strides ", x.strides());
  const bool u8 = bits <= 8;
  at::Tensor codes = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));  // (x's strides: x is dense)
  if (x.numel() == 0) return codes;
  const cpu::AffineRows a{q.mul.data_ptr<float>(), q.add.data_ptr<float>(), q.C, 0, l.nhwc, relu};
  const int64_t nans = affine_quantize_rows_cpu(current_isa(op), x.data_ptr<float>(), other.const_data_ptr<float>(),
                                                x.numel() / l.inner, l.inner, a, q.scale, q.zp, static_cast<int>(bits),
                                                static_cast<char*>(codes.data_ptr()), u8);
  TORCH_CHECK(nans == 0, "dwq.add_affine_quantize_: (x + other) * scale + bias has ", nans,
              " NaN value(s); NaN has no code");
  return codes;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) {
  m.impl("add_affine_quantize_", &add_affine_quantize_cpu);
  m.impl("add_relu_", &add_relu_cpu);
  m.impl("add_relu_quantize_", &add_relu_quantize_cpu);
}

}  // namespace dwq

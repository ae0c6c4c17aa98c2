// CPU bindings of the fused quantizer ops (schemas in csrc/ops.cpp; kernels csrc/cpu/quantizer_fused.cpp;
// CUDA twins csrc/cuda/quantizer_fused.cu): what ActQuantizer / WeightQuantizer compute with a dozen
// torch ops, in one pass each, with the same float32 arithmetic (arith.h). The pure-PyTorch path of
// dwq.quant is their reference (tests/test_quantizer_fused.py, bit for bit).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <type_traits>

#include "common/arith.h"
#include "cpu/quantizer_fused.h"
#include "ops/cpu_isa.h"
#include "ops/quantizer_fused_checks.h"

namespace dwq {
namespace {

// float32 / float16 / bfloat16 only (the kernels are instantiated for these three).
#define DWQ_DISPATCH_FLOAT_HALF(TYPE, NAME, ...)                                               \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)                  \
                                     AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__)                 \
                                         AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

template <typename T>
using storage_t = std::conditional_t<std::is_same_v<T, at::Half>, cpu::Float16,
                                     std::conditional_t<std::is_same_v<T, at::BFloat16>, cpu::BFloat16, T>>;

std::tuple<at::Tensor, at::Tensor> act_qparams_cpu(const at::Tensor& x, at::Tensor& running_min,
                                                   at::Tensor& running_max, at::Tensor& initialized, int64_t slot,
                                                   int64_t observed, int64_t bits, double ema, bool training) {
  check_act_qparams_args(x, running_min, running_max, initialized, slot, observed, bits, ema, training, at::kCPU);
  float* rmin = running_min.data_ptr<float>();
  float* rmax = running_max.data_ptr<float>();
  bool* init = initialized.data_ptr<bool>();
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  bool nan = false;
  std::mutex mu;
  // Eval mode with a tracked range never reads the batch's: skip the pass over x (NaN in x is then
  // caught by dwq::fake_quantize, as on the PyTorch path).
  const bool scan = training || !(init[slot] || init[observed]);
  // The range is the same in any element order: a dense tensor (channels-last included) is read in
  // its own memory order, without the copy that contiguous() would make.
  const at::Tensor xc = !scan || x.is_non_overlapping_and_dense() ? x : x.contiguous();
  if (scan) {
    const cpu::Isa isa = current_isa("act_qparams");
    DWQ_DISPATCH_FLOAT_HALF(xc.scalar_type(), "dwq_act_qparams_cpu", [&] {
      using S = storage_t<scalar_t>;
      const S* xp = reinterpret_cast<const S*>(xc.data_ptr<scalar_t>());
      at::parallel_for(0, xc.numel(), 1 << 16, [&](int64_t b, int64_t e) {
        float lo, hi;
        const bool n = cpu::range_of<S>(isa, xp + b, e - b, &lo, &hi);
        const std::lock_guard<std::mutex> g(mu);
        nan = nan || n;
        mn = lo < mn ? lo : mn;
        mx = hi > mx ? hi : mx;
      });
    });
  }
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  if (nan || xc.numel() == 0) mn = mx = qnan;
  float lo, hi;
  arith::act_running_range(rmin, rmax, init, slot, observed, mn, mx, static_cast<float>(ema),
                           static_cast<float>(1.0 - ema), training, &lo, &hi);
  at::Tensor scale = at::empty({1}, x.options().dtype(at::kFloat));
  at::Tensor zp = at::empty({1}, x.options().dtype(at::kInt));
  if (lo != lo || hi != hi) {  // NaN range: a NaN scale, which the Python side raises on
    scale.data_ptr<float>()[0] = qnan;
    zp.data_ptr<int32_t>()[0] = 0;
  } else {
    arith::qparams_of_range(lo, hi, static_cast<float>(arith::max_code(static_cast<int>(bits))),
                            scale.data_ptr<float>(), zp.data_ptr<int32_t>());
  }
  return {scale, zp};
}

at::Tensor weight_fake_quantize_cpu(const at::Tensor& w, int64_t bits, std::optional<at::ScalarType> dtype) {
  check_weight_fake_quantize_args(w, bits, at::kCPU);
  const at::ScalarType out_type = weight_fake_quantize_out_type(w, dtype);
  const at::Tensor wc = w.contiguous();
  at::Tensor out = at::empty_like(wc, wc.options().dtype(out_type));
  const int64_t rows = wc.size(0), inner = wc.numel() / rows;
  if (inner == 0) return out;
  std::atomic<int64_t> infs{0}, nans{0};
  const cpu::Isa isa = current_isa("weight_fake_quantize");
  const auto run = [&](const auto* wp, auto* op) {
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t b, int64_t e) {
      int64_t inf_rows = 0;
      nans += cpu::weight_fake_quant_rows(isa, wp, op, inner, b, e, static_cast<int>(bits), &inf_rows);
      infs += inf_rows;
    });
  };
  if (out_type == at::kHalf && wc.scalar_type() == at::kFloat) {  // (autocast's float16, rounded once)
    run(wc.data_ptr<float>(), reinterpret_cast<cpu::Float16*>(out.data_ptr<at::Half>()));
  } else if (out_type == at::kBFloat16 && wc.scalar_type() == at::kFloat) {
    run(wc.data_ptr<float>(), reinterpret_cast<cpu::BFloat16*>(out.data_ptr<at::BFloat16>()));
  } else {
    DWQ_DISPATCH_FLOAT_HALF(wc.scalar_type(), "dwq_weight_fake_quantize_cpu", [&] {
      using S = storage_t<scalar_t>;
      run(reinterpret_cast<const S*>(wc.data_ptr<scalar_t>()), reinterpret_cast<S*>(out.data_ptr<scalar_t>()));
    });
  }
  // Both are the reference path's errors, ValueErrors there and here, in its order (choose_qparams checks
  // the range for NaN, then the scale for being finite): raised by the kernel's own counts, so that the
  // caller scans nothing (the CUDA kernel asserts on the device instead).
  TORCH_CHECK_VALUE(nans.load() == 0, "cannot quantize: the observed range contains NaN (the tensor has NaN values): "
              "dwq.weight_fake_quantize: ", nans.load(), " output channel(s) hold NaN");
  TORCH_CHECK_VALUE(infs.load() == 0, "dwq.weight_fake_quantize: ", infs.load(),
              " output channel(s) hold inf or a range wider than float32 holds (max - min overflows), so their "
              "scale would not be finite");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) {
  m.impl("act_qparams", &act_qparams_cpu);
  m.impl("weight_fake_quantize", &weight_fake_quantize_cpu);
}

}  // namespace dwq

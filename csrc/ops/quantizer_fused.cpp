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

void check_input(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "dwq.", op, ": x must be a CPU tensor here, got device ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "dwq.", op, ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
}

void check_state(const char* name, const at::Tensor& t, at::ScalarType dtype, int64_t slot) {
  TORCH_CHECK(t.device().is_cpu(), "dwq.act_qparams: ", name, " must be on the CPU like x, got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype && t.dim() == 1 && t.is_contiguous(), "dwq.act_qparams: ", name,
              " must be a contiguous 1-D ", dtype, " tensor, got ", t.scalar_type(), " ", t.sizes());
  TORCH_CHECK(slot >= 0 && slot < t.numel(), "dwq.act_qparams: slot ", slot, " is outside ", name, " [", t.numel(),
              "]");
}

std::tuple<at::Tensor, at::Tensor> act_qparams_cpu(const at::Tensor& x, at::Tensor& running_min,
                                                   at::Tensor& running_max, at::Tensor& initialized, int64_t slot,
                                                   int64_t observed, int64_t bits, double ema, bool training) {
  check_input("act_qparams", x);
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.act_qparams: bits must be in 2..16, got ", bits);
  TORCH_CHECK(ema >= 0.0 && ema < 1.0, "dwq.act_qparams: ema must be in [0, 1), got ", ema);
  check_state("running_min", running_min, at::kFloat, slot);
  check_state("running_max", running_max, at::kFloat, slot);
  check_state("initialized", initialized, at::kBool, slot);
  check_state("running_min", running_min, at::kFloat, observed);
  TORCH_CHECK(running_max.numel() == running_min.numel() && initialized.numel() == running_min.numel(),
              "dwq.act_qparams: running_min, running_max and initialized must have one length, got ",
              running_min.numel(), ", ", running_max.numel(), " and ", initialized.numel());
  const at::Tensor xc = x.contiguous();
  float* rmin = running_min.data_ptr<float>();
  float* rmax = running_max.data_ptr<float>();
  bool* init = initialized.data_ptr<bool>();
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  bool nan = false;
  std::mutex mu;
  // Eval mode with a tracked range never reads the batch's: skip the pass over x (NaN in x is then
  // caught by dwq::fake_quantize, as on the PyTorch path).
  const bool scan = training || !(init[slot] || init[observed]);
  if (scan) {
    DWQ_DISPATCH_FLOAT_HALF(xc.scalar_type(), "dwq_act_qparams_cpu", [&] {
      using S = storage_t<scalar_t>;
      const S* xp = reinterpret_cast<const S*>(xc.data_ptr<scalar_t>());
      at::parallel_for(0, xc.numel(), 1 << 16, [&](int64_t b, int64_t e) {
        float lo, hi;
        const bool n = cpu::range_of<S>(xp + b, e - b, &lo, &hi);
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

at::Tensor weight_fake_quantize_cpu(const at::Tensor& w, int64_t bits) {
  check_input("weight_fake_quantize", w);
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.weight_fake_quantize: bits must be in 2..16, got ", bits);
  TORCH_CHECK(w.dim() >= 1 && w.size(0) > 0, "dwq.weight_fake_quantize: w must have output channels in dim 0, got ",
              w.sizes());
  const at::Tensor wc = w.contiguous();
  at::Tensor out = at::empty_like(wc);
  const int64_t rows = wc.size(0), inner = wc.numel() / rows;
  if (inner == 0) return out;
  std::atomic<int64_t> infs{0};
  DWQ_DISPATCH_FLOAT_HALF(wc.scalar_type(), "dwq_weight_fake_quantize_cpu", [&] {
    using S = storage_t<scalar_t>;
    const S* wp = reinterpret_cast<const S*>(wc.data_ptr<scalar_t>());
    S* op = reinterpret_cast<S*>(out.data_ptr<scalar_t>());
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t b, int64_t e) {
      int64_t inf_rows = 0;
      cpu::weight_fake_quant_rows<S>(wp, op, inner, b, e, static_cast<int>(bits), &inf_rows);
      infs += inf_rows;
    });
  });
  // NaN rows come back as NaN (the caller raises "NaN", as the reference path does); inf is the
  // scale check's error of the reference path (dwq.fake_quantize).
  TORCH_CHECK(infs.load() == 0, "dwq.weight_fake_quantize: ", infs.load(),
              " output channel(s) hold inf, so their scale would not be finite");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) {
  m.impl("act_qparams", &act_qparams_cpu);
  m.impl("weight_fake_quantize", &weight_fake_quantize_cpu);
}

}  // namespace dwq

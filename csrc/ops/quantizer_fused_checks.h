// Argument checks of dwq::act_qparams and dwq::weight_fake_quantize, shared by the CPU and CUDA
// bindings so that both reject bad input with the same message.
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace dwq {
// Internal linkage: compiled by g++ (CPU binding) and by nvcc's host compiler (CUDA binding).
namespace {

// The op's input `name`: a float32/float16/bfloat16 tensor on a device of type `device_type`.
inline void check_fused_input(const char* op, const char* name, const at::Tensor& x, at::DeviceType device_type) {
  TORCH_CHECK(x.device().type() == device_type, "dwq.", op, ": ", name, " must be a ",
              at::DeviceTypeName(device_type), " tensor here, got device ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "dwq.", op, ": ", name, " must be float32, float16 or bfloat16, got ", x.scalar_type());
}

inline void check_act_state(const char* name, const at::Tensor& t, at::ScalarType dtype, const at::Tensor& x,
                            const char* slot_name, int64_t slot) {
  TORCH_CHECK(t.device() == x.device(), "dwq.act_qparams: ", name, " must be on ", x.device(), " like x, got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == dtype && t.dim() == 1 && t.is_contiguous(), "dwq.act_qparams: ", name,
              " must be a contiguous 1-D ", dtype, " tensor, got ", t.scalar_type(), " ", t.sizes());
  TORCH_CHECK(slot >= 0 && slot < t.numel(), "dwq.act_qparams: ", slot_name, " ", slot, " is outside ", name, " [",
              t.numel(), "]");
}

inline void check_act_qparams_args(const at::Tensor& x, const at::Tensor& running_min, const at::Tensor& running_max,
                                   const at::Tensor& initialized, int64_t slot, int64_t observed, int64_t bits,
                                   double ema, bool training, at::DeviceType device_type) {
  check_fused_input("act_qparams", "x", x, device_type);
  TORCH_CHECK(!training || x.numel() > 0, "dwq.act_qparams: x is empty, got shape ", x.sizes(),
              ": train mode needs the range of at least one element");
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.act_qparams: bits must be in 2..16, got ", bits);
  TORCH_CHECK(ema >= 0.0 && ema < 1.0, "dwq.act_qparams: ema must be in [0, 1), got ", ema);
  check_act_state("running_min", running_min, at::kFloat, x, "slot", slot);
  check_act_state("running_max", running_max, at::kFloat, x, "slot", slot);
  check_act_state("initialized", initialized, at::kBool, x, "slot", slot);
  check_act_state("running_min", running_min, at::kFloat, x, "observed", observed);
  TORCH_CHECK(running_max.numel() == running_min.numel() && initialized.numel() == running_min.numel(),
              "dwq.act_qparams: running_min, running_max and initialized must have one length, got ",
              running_min.numel(), ", ", running_max.numel(), " and ", initialized.numel());
}

// The output's dtype: w's, or for a float32 w float16 or bfloat16 (what autocast casts a conv's weight
// to: the float32 result rounded once, as that cast rounds it).
inline at::ScalarType weight_fake_quantize_out_type(const at::Tensor& w, std::optional<at::ScalarType> dtype) {
  if (!dtype || *dtype == w.scalar_type()) return w.scalar_type();
  TORCH_CHECK(w.scalar_type() == at::kFloat && (*dtype == at::kHalf || *dtype == at::kBFloat16),
              "dwq.weight_fake_quantize: dtype must be w's (", w.scalar_type(),
              ") or, for a float32 w, float16 or bfloat16; got ", *dtype);
  return *dtype;
}

inline void check_weight_fake_quantize_args(const at::Tensor& w, int64_t bits, at::DeviceType device_type) {
  check_fused_input("weight_fake_quantize", "w", w, device_type);
  TORCH_CHECK(bits >= 2 && bits <= 16, "dwq.weight_fake_quantize: bits must be in 2..16, got ", bits);
  TORCH_CHECK(w.dim() >= 1 && w.size(0) > 0, "dwq.weight_fake_quantize: w must have output channels in dim 0, got ",
              w.sizes());
}

}  // namespace
}  // namespace dwq

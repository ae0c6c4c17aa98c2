// The ADInplaceOrView kernel of dwq::act_qparams (schema in csrc/ops.cpp; CPU / CUDA kernels in
// csrc/ops/quantizer_fused.cpp, csrc/cuda/quantizer_fused.cu): the backend kernels write the running
// buffers through their data pointers, so, as torch's own in-place ops do (their generated
// ADInplaceOrViewType kernels), this layer runs the op below it and then bumps the version counter of
// each buffer it wrote. Autograd then refuses a buffer value saved before the update ("modified by an
// inplace operation") instead of silently using the new one, whoever calls the op: the dwq.ops wrapper
// or torch.ops.dwq.act_qparams directly. torch's generic ADInplaceOrView fallback bumps only aliases
// that the op returns, and act_qparams returns none.
//
// The layer runs for every call outside inference mode (ADInplaceOrView is in the default included
// key set) and, inside it, for calls on normal (non-inference) tensors. Inference tensors have no
// version counter: outside inference mode a train-mode call on one is refused before any write (torch's
// own in-place ops write first and then fail), inside it their bump is a no-op. Eval mode writes
// nothing, so it bumps nothing.
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/library.h>

#include <tuple>

namespace dwq {
namespace {

using ActQparamsFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&,
                                                        int64_t, int64_t, int64_t, double, bool);

std::tuple<at::Tensor, at::Tensor> act_qparams_ad_inplace_or_view(c10::DispatchKeySet ks, const at::Tensor& x,
                                                                  at::Tensor& running_min, at::Tensor& running_max,
                                                                  at::Tensor& initialized, int64_t slot,
                                                                  int64_t observed, int64_t bits, double ema,
                                                                  bool training) {
  if (training && !c10::InferenceMode::is_enabled()) {
    const std::pair<const char*, const at::Tensor*> written[] = {
        {"running_min", &running_min}, {"running_max", &running_max}, {"initialized", &initialized}};
    for (const auto& [name, t] : written) {
      TORCH_CHECK(!(t->defined() && t->is_inference()), "dwq.act_qparams: ", name,
                  " is an inference tensor (made under torch.inference_mode()); train mode updates the running "
                  "buffers in place, which torch allows only inside inference mode");
    }
  }
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwq::act_qparams", "").typed<ActQparamsFn>();
  std::tuple<at::Tensor, at::Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = op.redispatch(ks & c10::after_ADInplaceOrView_keyset, x, running_min, running_max, initialized, slot,
                        observed, bits, ema, training);
  }
  if (training) {
    torch::autograd::increment_version(running_min);
    torch::autograd::increment_version(running_max);
    torch::autograd::increment_version(initialized);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, ADInplaceOrView, m) {
  m.impl("act_qparams", TORCH_FN(act_qparams_ad_inplace_or_view));
}

}  // namespace dwq

// The ADInplaceOrView kernels of dwq's in-place ops (schemas in csrc/ops.cpp): act_qparams (CPU / CUDA
// kernels in csrc/ops/quantizer_fused.cpp, csrc/cuda/quantizer_fused.cu) and add_relu_, add_relu_quantize_,
// add_affine_quantize_ (csrc/ops/residual.cpp, csrc/cuda/qgemm.cu). The backend kernels write through data
// pointers, so, as torch's own in-place ops do (their generated ADInplaceOrViewType kernels), this layer
// runs the op below it and then bumps the version counter of each tensor it wrote. Autograd then refuses
// a value saved before the update ("modified by an inplace operation") instead of silently using the new
// one, whoever calls the op: the dwq.ops wrapper or torch.ops.dwq.* directly. torch's generic
// ADInplaceOrView fallback bumps only aliases that the op returns, and these ops return none.
//
// The layer runs for every call outside inference mode (ADInplaceOrView is in the default included
// key set) and, inside it, for calls on normal (non-inference) tensors. Inference tensors have no
// version counter: outside inference mode a train-mode call on one is refused before any write (torch's
// own in-place ops write first and then fail), inside it their bump is a no-op. act_qparams in eval mode
// writes nothing, so it bumps nothing.
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/library.h>

#include <tuple>

namespace dwq {
namespace {

void refuse_inference_write(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(!(t.defined() && t.is_inference() && !c10::InferenceMode::is_enabled()), "dwq.", op, ": ", name,
              " is an inference tensor (made under torch.inference_mode()); this op updates it in place, which torch "
              "allows only inside inference mode");
}

using ActQparamsFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&,
                                                        int64_t, int64_t, int64_t, double, bool);

std::tuple<at::Tensor, at::Tensor> act_qparams_ad_inplace_or_view(c10::DispatchKeySet ks, const at::Tensor& x,
                                                                  at::Tensor& running_min, at::Tensor& running_max,
                                                                  at::Tensor& initialized, int64_t slot,
                                                                  int64_t observed, int64_t bits, double ema,
                                                                  bool training) {
  if (training) {
    refuse_inference_write("act_qparams", "running_min", running_min);
    refuse_inference_write("act_qparams", "running_max", running_max);
    refuse_inference_write("act_qparams", "initialized", initialized);
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

// add_relu_, add_relu_quantize_, add_affine_quantize_: x, their first argument, is the one tensor written.
void residual_ad_inplace_or_view(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  const size_t nargs = op.schema().arguments().size();
  const at::Tensor x = (*stack)[stack->size() - nargs].toTensor();
  refuse_inference_write(op.schema().name().c_str() + 5, "x", x);  // (after "dwq::")
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op.redispatchBoxed(ks & c10::after_ADInplaceOrView_keyset, stack);
  }
  torch::autograd::increment_version(x);
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, ADInplaceOrView, m) {
  m.impl("act_qparams", TORCH_FN(act_qparams_ad_inplace_or_view));
  for (const char* name : {"add_relu_", "add_relu_quantize_", "add_affine_quantize_"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&residual_ad_inplace_or_view>());
  }
}

}  // namespace dwq

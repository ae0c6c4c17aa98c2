// The Autograd kernels of dwq's ops (schemas in csrc/ops.cpp). Those of fake_quantize and weight_fake_quantize:
// the straight-through estimator, the gradient of the output handed to x unchanged, none to the
// quantization parameters. In C++ rather than torch.library.register_autograd because every
// quantized layer calls these ops in every forward, and a Python autograd kernel is a trip from the
// dispatcher into Python and back on each call, no-grad eval included: on GPUs, where the host
// issues the launches, that trip was a large part of a quantized layer's host time (issue 10).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <initializer_list>
#include <optional>
#include <tuple>

namespace dwq {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using FakeQuantizeFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                          int64_t, std::optional<int64_t>, bool);
using WeightFakeQuantizeFn = at::Tensor(const at::Tensor&, int64_t, std::optional<at::ScalarType>);

const c10::TypedOperatorHandle<FakeQuantizeFn>& fake_quantize_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwq::fake_quantize", "").typed<FakeQuantizeFn>();
  return op;
}

const c10::TypedOperatorHandle<WeightFakeQuantizeFn>& weight_fake_quantize_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwq::weight_fake_quantize", "").typed<WeightFakeQuantizeFn>();
  return op;
}

// Whether a call records a graph: as Function::apply decides (grad mode on and an input requiring grad).
bool records_grad(std::initializer_list<const at::Tensor*> inputs) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

class FakeQuantizeSte : public torch::autograd::Function<FakeQuantizeSte> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                               const at::Tensor& zero_point, int64_t bits, std::optional<int64_t> axis,
                               bool return_codes) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, codes] = fake_quantize_op().call(x, scale, zero_point, bits, axis, return_codes);
    ctx->mark_non_differentiable({codes});
    return {out, codes};
  }

  static variable_list backward(AutogradContext*, variable_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class WeightFakeQuantizeSte : public torch::autograd::Function<WeightFakeQuantizeSte> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, int64_t bits,
                            std::optional<at::ScalarType> dtype) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["w_dtype"] = w.scalar_type();
    return weight_fake_quantize_op().call(w, bits, dtype);
  }

  // (An output of another dtype than w, autocast's: its gradient in w's, as the cast's backward gives it.)
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {grads[0].to(ctx->saved_data["w_dtype"].toScalarType()), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> fake_quantize_autograd(const at::Tensor& x, const at::Tensor& scale,
                                                          const at::Tensor& zero_point, int64_t bits,
                                                          std::optional<int64_t> axis, bool return_codes) {
  if (!records_grad({&x, &scale, &zero_point})) {
    // Nothing to record (no-grad eval, the attacks' weights-only passes): straight to the kernel, without
    // Function::apply's input and output bookkeeping, which was a good part of the op's host time.
    at::AutoDispatchBelowADInplaceOrView guard;
    return fake_quantize_op().call(x, scale, zero_point, bits, axis, return_codes);
  }
  const variable_list r = FakeQuantizeSte::apply(x, scale, zero_point, bits, axis, return_codes);
  return {r[0], r[1]};
}

at::Tensor weight_fake_quantize_autograd(const at::Tensor& w, int64_t bits, std::optional<at::ScalarType> dtype) {
  if (!records_grad({&w})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return weight_fake_quantize_op().call(w, bits, dtype);
  }
  return WeightFakeQuantizeSte::apply(w, bits, dtype);
}

// The integer GEMM/conv ops have no gradient. Without an Autograd kernel torch's fallback ran them and marked
// a float output as requiring grad whenever a scale, affine or residual argument did (an nn.Parameter), and
// backward() then left that argument's .grad None with only a warning: the call is refused instead, naming
// the argument, for whichever device's kernel would run.
void refuse_gradient(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  if (at::GradMode::is_enabled()) {
    const size_t first = stack->size() - args.size();
    for (size_t i = 0; i < args.size(); ++i) {
      const c10::IValue& v = (*stack)[first + i];
      TORCH_CHECK(!(v.isTensor() && v.toTensor().requires_grad()), "dwq.", op.schema().name().c_str() + 5, ": ",
                  args[i].name(), " requires grad, and this integer op has no gradient (inference only); call it "
                  "under torch.no_grad() or pass ", args[i].name(), ".detach()");
    }
  }
  at::AutoDispatchBelowADInplaceOrView guard;
  op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
}

// act_qparams' x is not differentiated (the range is an observation): its scale and zero point come out
// without a graph, where the fallback gave them a grad_fn whose backward only warned.
void not_differentiated(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  at::AutoDispatchBelowADInplaceOrView guard;
  op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, Autograd, m) {
  m.impl("fake_quantize", TORCH_FN(fake_quantize_autograd));
  m.impl("weight_fake_quantize", TORCH_FN(weight_fake_quantize_autograd));
  for (const char* name : {"qlinear", "qconv2d", "qconv2d_residual"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&refuse_gradient>());
  }
  m.impl("act_qparams", torch::CppFunction::makeFromBoxedFunction<&not_differentiated>());
}

}  // namespace dwq

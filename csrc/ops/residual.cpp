// CPU binding of dwq::add_relu_: checks the arguments (residual_checks.h), then runs the torch-free kernel (csrc/cpu/residual.cpp)
// over at::parallel_for. Light includes: this translation unit needs no more of ATen.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/residual.h"
#include "ops/cpu_isa.h"
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

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CPU, m) { m.impl("add_relu_", &add_relu_cpu); }

}  // namespace dwq

// Argument checks of dwq::add_relu_ (and the residual part of the fused ops), shared by its CPU binding (csrc/ops/residual.cpp) and its CUDA
// one (csrc/cuda/qgemm.cu): both kernels walk x and other as flat arrays of one layout.
#pragma once
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

namespace dwq {

inline void check_add_relu_args(const at::Tensor& x, const at::Tensor& other, const char* op = "add_relu_") {
  // No autograd kernel: without this, a backward through x's in-place update gave wrong gradients, silently.
  TORCH_CHECK(!c10::GradMode::is_enabled() || (!x.requires_grad() && !other.requires_grad()),
              "dwq.", op, ": x or other requires grad, and this op has no gradient; call it under torch.no_grad() "
              "(or use dwq.ops.", op, ", which composes differentiable torch ops then)");
  TORCH_CHECK(x.scalar_type() == at::kFloat && other.scalar_type() == at::kFloat,
              "dwq.", op, ": x and other must be float32, got ", x.scalar_type(), " and ", other.scalar_type());
  TORCH_CHECK(x.device() == other.device(), "dwq.", op, ": other must be on ", x.device(), " like x, got ",
              other.device());
  TORCH_CHECK(x.sizes() == other.sizes(), "dwq.", op, ": other must have x's shape ", x.sizes(), " (no broadcast), got ",
              other.sizes());
  TORCH_CHECK(x.is_non_overlapping_and_dense() && x.strides() == other.strides(),
              "dwq.", op, ": x must be dense without overlap and other laid out like it (strides ", x.strides(),
              " and ", other.strides(), ")");
  at::assert_no_partial_overlap(x, other);
}

}  // namespace dwq

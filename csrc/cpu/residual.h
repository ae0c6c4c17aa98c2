// Torch-free CPU kernels of the residual ops (dwq::add_relu_ and the fused quantizing ones; bindings:
// csrc/ops/residual.cpp): a ResNet block's residual add and its ReLU in one pass over memory, where
// torch's add_ and relu_ made two.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dwq::cpu {

// a[i] = relu(a[i] + b[i]) for i in [0, n), as torch.relu(a + b) computes it (NaN stays NaN).
// a and b are the same array or disjoint; isa picks the build that runs (float_kernels_*.cpp), all
// of which give the same values.
void add_relu(Isa isa, float* a, const float* b, int64_t n);

// a[i] += b[i] for i in [0, n) (a pre-activation block's residual add, before its next batch norm).
void add_to(Isa isa, float* a, const float* b, int64_t n);

}  // namespace dwq::cpu

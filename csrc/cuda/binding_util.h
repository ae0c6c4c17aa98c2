// Host-side helpers the CUDA bindings share (fake_quant.cu, quantizer_fused.cu, qgemm.cu).
#pragma once
#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "cuda/align.h"  // aligned16

namespace dwq::cuda {

// The device type of a torch scalar type (same size and layout): at::Half -> __half,
// at::BFloat16 -> __nv_bfloat16, others unchanged.
template <typename T>
using device_t = std::conditional_t<std::is_same_v<T, at::Half>, __half,
                                    std::conditional_t<std::is_same_v<T, at::BFloat16>, __nv_bfloat16, T>>;

}  // namespace dwq::cuda

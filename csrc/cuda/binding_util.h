// Host-side helpers the CUDA bindings share (fake_quant.cu, quantizer_fused.cu, qgemm.cu).
#pragma once
#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace dwq::cuda {

// Whether p may be read or written as 16-byte vectors (cp.async chunks, uint4 / float4 loads).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The device type of a torch scalar type (same size and layout): at::Half -> __half,
// at::BFloat16 -> __nv_bfloat16, others unchanged.
template <typename T>
using device_t = std::conditional_t<std::is_same_v<T, at::Half>, __half,
                                    std::conditional_t<std::is_same_v<T, at::BFloat16>, __nv_bfloat16, T>>;

}  // namespace dwq::cuda

// Host-side alignment test of the CUDA launchers and bindings (torch-free).
#pragma once
#include <cstdint>

namespace dwq::cuda {

// Whether p may be read or written as 16-byte vectors (cp.async chunks, TMA bases, uint4 / float4).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace dwq::cuda

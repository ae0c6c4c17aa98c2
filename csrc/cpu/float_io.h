// Storage <-> compute type of the float kernels (fake_quant.cpp, quantizer_fused.cpp): float and
// double compute in themselves; the 16-bit formats (fake_quant.h's Float16 / BFloat16 bit patterns)
// widen exactly to float32 and round back to nearest even, as torch's .float() / .to(half) do.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/fake_quant.h"

namespace dwq::cpu {

// Storage <-> compute type. 16-bit formats compute in float32 (exact widening) and round back to
// nearest even, as torch's .float() / .to(half) do.
template <typename T>
struct Io {
  using F = T;
  static F load(T v) { return v; }
  static T store(F v) { return v; }
};
template <>
struct Io<Float16> {
  using F = float;
  static float load(Float16 v) {
    _Float16 h;
    std::memcpy(&h, &v.bits, 2);
    return static_cast<float>(h);
  }
  static Float16 store(float f) {
    const _Float16 h = static_cast<_Float16>(f);  // IEEE conversion, round to nearest even
    Float16 r;
    std::memcpy(&r.bits, &h, 2);
    return r;
  }
};
template <>
struct Io<BFloat16> {
  using F = float;
  static float load(BFloat16 v) {
    const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static BFloat16 store(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    // Round the low 16 bits to nearest even; NaN stays a (quiet) NaN.
    const uint32_t r = f != f ? 0x7FC00000u : u + 0x7FFFu + ((u >> 16) & 1u);
    return BFloat16{static_cast<uint16_t>(r >> 16)};
  }
};


}  // namespace dwq::cpu

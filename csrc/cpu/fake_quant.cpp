// Row kernel of fake_quant.h: one branch-free loop per row that the compiler vectorizes; the
// arithmetic is arith.h's, NaN inputs are counted and blended out (NaN has no code).
#include "cpu/fake_quant.h"

#include <cstring>
#include <limits>

#include "common/arith.h"

namespace dwq::cpu {
namespace {

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

}  // namespace

template <typename T>
int64_t fake_quant_rows(const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point,
                        int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits) {
  using F = typename Io<T>::F;
  const F qmax = static_cast<F>(arith::max_code(bits));
  const F nan = std::numeric_limits<F>::quiet_NaN();
  int64_t nans = 0;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t c = r % C;
    const F s = static_cast<F>(scale[c]);
    const F z = static_cast<F>(zero_point[c]);
    const T* xr = x + r * inner;
    T* outr = out + r * inner;
    int64_t nn = 0;
    if (codes != nullptr) {
      int32_t* cr = codes + r * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const F v = Io<T>::load(xr[i]);
        const bool is_nan = v != v;
        nn += is_nan;
        const F q = arith::quantize(is_nan ? F(0) : v, s, z, qmax);
        outr[i] = Io<T>::store(is_nan ? nan : arith::dequantize(q, s, z));
        cr[i] = is_nan ? -1 : static_cast<int32_t>(q);
      }
    } else {
      for (int64_t i = 0; i < inner; ++i) {
        const F v = Io<T>::load(xr[i]);
        const bool is_nan = v != v;
        nn += is_nan;
        const F q = arith::quantize(is_nan ? F(0) : v, s, z, qmax);
        outr[i] = Io<T>::store(is_nan ? nan : arith::dequantize(q, s, z));
      }
    }
    nans += nn;
  }
  return nans;
}

#define DWQ_INSTANTIATE(T)                                                                                   \
  template int64_t fake_quant_rows<T>(const T*, T*, int32_t*, const float*, const int32_t*, int64_t, int64_t, \
                                      int64_t, int64_t, int);
DWQ_INSTANTIATE(float)
DWQ_INSTANTIATE(double)
DWQ_INSTANTIATE(Float16)
DWQ_INSTANTIATE(BFloat16)
#undef DWQ_INSTANTIATE

}  // namespace dwq::cpu

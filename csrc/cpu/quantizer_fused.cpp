// CPU kernels of quantizer_fused.h: plain loops the compiler vectorizes, arithmetic from arith.h.
#include "cpu/quantizer_fused.h"

#include <limits>

#include "common/arith.h"
#include "cpu/float_io.h"

namespace dwq::cpu {

template <typename T>
bool range_of(const T* x, int64_t n, float* mn, float* mx) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int nan = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(Io<T>::load(x[i]));
    nan |= v != v;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *mn = lo;
  *mx = hi;
  return nan != 0;
}

template <typename T>
int64_t weight_fake_quant_rows(const T* w, T* out, int64_t inner, int64_t row_begin, int64_t row_end, int bits,
                               int64_t* inf_rows) {
  using F = typename Io<T>::F;
  const float qmax = static_cast<float>(arith::max_code(bits));
  int64_t bad = 0;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* wr = w + r * inner;
    T* orow = out + r * inner;
    float mn, mx;
    const bool nan = range_of(wr, inner, &mn, &mx);
    if (nan || mn - mn != 0.f || mx - mx != 0.f) {  // x - x is NaN exactly for NaN and +-inf
      if (nan) ++bad; else ++*inf_rows;
      for (int64_t i = 0; i < inner; ++i) orow[i] = Io<T>::store(std::numeric_limits<F>::quiet_NaN());
      continue;
    }
    float s;
    int32_t z;
    arith::qparams_of_range(mn, mx, qmax, &s, &z);
    const F sf = static_cast<F>(s), zf = static_cast<F>(z), qf = static_cast<F>(qmax);
    for (int64_t i = 0; i < inner; ++i) {
      const F v = Io<T>::load(wr[i]);
      orow[i] = Io<T>::store(arith::dequantize(arith::quantize(v, sf, zf, qf), sf, zf));
    }
  }
  return bad;
}

#define DWQ_INSTANTIATE(T)                                                         \
  template bool range_of<T>(const T*, int64_t, float*, float*);                  \
  template int64_t weight_fake_quant_rows<T>(const T*, T*, int64_t, int64_t, int64_t, int, int64_t*);
DWQ_INSTANTIATE(float)
DWQ_INSTANTIATE(Float16)
DWQ_INSTANTIATE(BFloat16)
#undef DWQ_INSTANTIATE

}  // namespace dwq::cpu

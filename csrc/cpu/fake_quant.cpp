// Row kernel of fake_quant.h: one branch-free loop per row that the compiler vectorizes; the
// arithmetic is arith.h's, NaN inputs are counted and blended out (NaN has no code).
#include "cpu/fake_quant.h"

#include <cstring>
#include <limits>

#include "common/arith.h"
#include "cpu/float_io.h"

namespace dwq::cpu {

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

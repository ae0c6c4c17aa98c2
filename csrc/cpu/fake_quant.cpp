// Row kernel of fake_quant.h. Plain loops the compiler vectorizes; std::nearbyint rounds half to
// even under the default rounding mode, as torch.round does.
#include "cpu/fake_quant.h"

#include <cmath>
#include <limits>

namespace dwq::cpu {

template <typename T>
int64_t fake_quant_rows(const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point,
                        int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits) {
  const T qmax = static_cast<T>((int64_t{1} << bits) - 1);
  int64_t nans = 0;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t c = r % C;
    const T s = static_cast<T>(scale[c]);
    const T z = static_cast<T>(zero_point[c]);
    const T* xr = x + r * inner;
    T* outr = out + r * inner;
    int32_t* cr = codes ? codes + r * inner : nullptr;
    for (int64_t i = 0; i < inner; ++i) {
      const T v = xr[i];
      if (std::isnan(v)) {
        ++nans;
        outr[i] = std::numeric_limits<T>::quiet_NaN();
        if (cr) cr[i] = -1;
        continue;
      }
      T q = std::nearbyint(v / s) + z;
      q = q < T(0) ? T(0) : (q > qmax ? qmax : q);
      outr[i] = (q - z) * s;
      if (cr) cr[i] = static_cast<int32_t>(q);
    }
  }
  return nans;
}

template int64_t fake_quant_rows<float>(const float*, float*, int32_t*, const float*, const int32_t*, int64_t,
                                        int64_t, int64_t, int64_t, int);
template int64_t fake_quant_rows<double>(const double*, double*, int32_t*, const float*, const int32_t*, int64_t,
                                         int64_t, int64_t, int64_t, int);

}  // namespace dwq::cpu

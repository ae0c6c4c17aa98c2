// The emulated-kernel tests' reference for an implicit conv's activation rows.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/qgemm_params.h"

// The logical activation matrix A[M][K] of a conv (im2col with zx padding), as the CPU defines it.
inline std::vector<int64_t> im2col(const std::vector<int32_t>& x, const dwq::cuda::ActParams& p, int32_t zx) {
  std::vector<int64_t> a(p.M * p.K);
  for (int64_t m = 0; m < p.M; ++m) {
    const int64_t ow = m % p.OW, oh = (m / p.OW) % p.OH, n = m / (int64_t(p.OW) * p.OH);
    for (int ky = 0; ky < p.kh; ++ky)
      for (int kx = 0; kx < p.kw; ++kx)
        for (int c = 0; c < p.C; ++c) {
          const int64_t ih = oh * p.sth - p.pdh + ky, iw = ow * p.stw - p.pdw + kx;
          const bool in = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
          a[m * p.K + (ky * p.kw + kx) * p.C + c] = in ? x[n * p.sn + ih * p.sh + iw * p.sw + c * p.sc] : zx;
        }
  }
  return a;
}

// The activation (A) side of the tensor-core kernels' copy loops (qgemm_mma.cuh, qgemm_wgmma.cuh):
// the AR rows of the output tile one thread copies 16-byte chunks of, fixed over the K loop, and,
// in implicit conv mode, where its chunk stands in the (ky, kx, c) walk over the taps.
#pragma once
#include <cstdint>

#include "cuda/cp_async.cuh"
#include "cuda/divmod.cuh"
#include "cuda/qgemm_params.h"

namespace dwq::cuda {

template <int AR, bool CONV>
struct ARows {
  bool ok[AR];
  const uint8_t* row[AR];  // matrix: the row's start; conv: the image's batch entry
  int ih0[AR], iw0[AR];    // conv: the receptive field's corner
  uint32_t zpat[2] = {};   // conv: four copies of each 8-bit limb of the code zx (padding)
  int tc = 0, tkx = 0, tky = 0;

  // Rows first_m + i * rstep (i < AR); k0: the column of this thread's chunk at the first stage.
  __device__ __forceinline__ ARows(const MmaParams& p, int64_t first_m, int rstep, int64_t k0) {
    if (CONV) {
      const uint32_t zx = static_cast<uint32_t>(*p.ep.x_zp);
      zpat[0] = (zx & 255u) * 0x01010101u;
      zpat[1] = ((zx >> 8) & 255u) * 0x01010101u;
    }
#pragma unroll
    for (int i = 0; i < AR; ++i) {
      const int64_t m = first_m + int64_t(i) * rstep;
      ok[i] = m < p.M;
      row[i] = p.a;
      ih0[i] = iw0[i] = 0;
      if (ok[i]) {
        if (CONV) {
          int64_t ow, oh;
          const int64_t nb = divmod(divmod(m, p.OW, &ow), p.OH, &oh);
          row[i] = p.a + nb * p.sn;
          ih0[i] = static_cast<int>(oh) * p.sth - p.pdh;
          iw0[i] = static_cast<int>(ow) * p.stw - p.pdw;
        } else {
          row[i] = p.a + m * p.lda;
        }
      }
    }
    if (CONV) {  // stages load in order, so the tap walk is incremental (no divisions in the K loop)
      int64_t c, kx;
      const int64_t tap = divmod(k0, p.C, &c);
      tky = static_cast<int>(divmod(tap, p.kw, &kx));
      tc = static_cast<int>(c);
      tkx = static_cast<int>(kx);
    }
  }

  // The 16 bytes of row i, limb plane ia, at column k of the current stage into dst: nbytes of them
  // (0: beyond K, all zeros), a tap outside the image is the code zx (its limb ia), so the padded
  // (qx - zx) is 0. Conv limb planes lie p.a_plane bytes apart, as the matrix ones.
  __device__ __forceinline__ void copy(const MmaParams& p, int i, int ia, int64_t k, int nbytes, uint8_t* dst) const {
    if (!ok[i] || nbytes == 0) {
      cp_async16(dst, p.b, 0);  // (reads nothing; p.b is never null, p.a may be for an empty image)
    } else if (!CONV) {
      cp_async16(dst, row[i] + ia * p.a_plane + k, nbytes);
    } else {
      const int ih = ih0[i] + tky, iw = iw0[i] + tkx;
      if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
        cp_async16(dst, row[i] + ia * p.a_plane + ih * p.sh + iw * p.sw + tc, 16);
      else
        *reinterpret_cast<uint4*>(dst) = make_uint4(zpat[ia], zpat[ia], zpat[ia], zpat[ia]);
    }
  }

  // The chunk moves bk columns on (the next stage).
  __device__ __forceinline__ void advance(const MmaParams& p, int bk) {
    if (!CONV) return;
    tc += bk;
    while (tc >= p.C) {
      tc -= p.C;
      if (++tkx == p.kw) {
        tkx = 0;
        ++tky;
      }
    }
  }
};

}  // namespace dwq::cuda

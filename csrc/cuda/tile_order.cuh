// The order in which the GEMM kernels' CTAs (or persistent work items) walk the output tiles, and
// the launch grid of the tiled kernels.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/divmod.cuh"
#include "cuda/qgemm_params.h"

namespace dwq::cuda {

// Output tile (mt, nt) of linear index t: groups of kGroupM row tiles are walked column by column,
// so the CTAs that run at once share a few A row blocks and B column blocks that fit in L2 together
// (row-major order would stream all of A once per column of tiles).
constexpr int64_t kGroupM = 8;
__host__ __device__ __forceinline__ void tile_of(int64_t t, int64_t num_m, int64_t num_n, int64_t* mt, int64_t* nt) {
  int64_t r, in_rows;
  const int64_t first = divmod(t, kGroupM * num_n, &r) * kGroupM;
  const int64_t rows = num_m - first < kGroupM ? num_m - first : kGroupM;
  *nt = divmod(r, rows, &in_rows);
  *mt = first + in_rows;
}

// Output tiles of p on Cfg's BM x BN tiles (walked by tile_of), and its K slices of p.k_chunk.
template <class Cfg>
__host__ __device__ __forceinline__ void tile_work(const MmaParams& p, int64_t* tiles, int64_t* slices) {
  *tiles = ((p.M + Cfg::BM - 1) / Cfg::BM) * ((p.N + Cfg::BN - 1) / Cfg::BN);
  *slices = (p.K + p.k_chunk - 1) / p.k_chunk;
}

// Launch grid of a tiled kernel (one CTA per tile and slice): x walks the output tiles (tile_of),
// z the K slices; false where it exceeds the launch limits.
template <class Cfg>
inline bool tile_grid(const MmaParams& p, dim3* grid) {
  int64_t tiles, slices;
  tile_work<Cfg>(p, &tiles, &slices);
  if (tiles > 0x7FFFFFFF || slices > 65535) return false;
  *grid = dim3(static_cast<unsigned>(tiles), 1, static_cast<unsigned>(slices));
  return true;
}

}  // namespace dwq::cuda

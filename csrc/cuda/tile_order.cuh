// The order in which the GEMM kernels' CTAs (or persistent work items) walk the output tiles.
#pragma once
#include <cstdint>

namespace dwq::cuda {

// Output tile (mt, nt) of linear index t: groups of kGroupM row tiles are walked column by column,
// so the CTAs that run at once share a few A row blocks and B column blocks that fit in L2 together
// (row-major order would stream all of A once per column of tiles).
constexpr int64_t kGroupM = 8;
__host__ __device__ __forceinline__ void tile_of(int64_t t, int64_t num_m, int64_t num_n, int64_t* mt, int64_t* nt) {
  const int64_t per_group = kGroupM * num_n, first = (t / per_group) * kGroupM;
  const int64_t rows = num_m - first < kGroupM ? num_m - first : kGroupM, r = t % per_group;
  *mt = first + r % rows;
  *nt = r / rows;
}

}  // namespace dwq::cuda

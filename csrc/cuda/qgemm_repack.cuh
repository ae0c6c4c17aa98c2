// The K-major copy of the packed blob's weight planes that the wgmma kernels read
// (qgemm_wgmma.cuh: 8-bit wgmma wants K-major rows of 16 k-bytes; the blob, shared with the CPU,
// holds 4 columns x 4 k per 16 bytes). Included by its launcher (qgemm_wgmma.cu) only.
#pragma once
#include <cstdint>

namespace dwq::cuda {

// Tiles of 64 columns x 128 k of one limb, grid-stride: a tile's 32 4-k groups are 8 KB in a row
// of the blob, read by 16-byte loads into shared memory, and written as 64 rows of 128 k-bytes of
// the copy, 8 threads per row. (The first version, a thread per 16-byte output chunk reading the
// blob in place, wrote 32 rows per warp store: 27 us for a 4096 x 4096 weight on an H200, 1.2 TB/s.)
__global__ void __launch_bounds__(256) repack_kmajor_kernel(const int8_t* __restrict__ planes, int64_t N, int64_t Npad,
                                                            int64_t Kp, int lw, int8_t* __restrict__ out, int64_t ldb) {
  __shared__ uint32_t tile[32][65];  // [4-k group][column] words; the pad word spreads a row chunk's banks
  const int64_t nb = (N + 63) / 64, kb = (ldb + 127) / 128, tiles = int64_t(lw) * nb * kb;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t k_blk = t % kb, n_blk = (t / kb) % nb, ib = t / kb / nb;
    const int8_t* src = planes + ib * Npad * Kp + n_blk * 64 * Kp + k_blk * 32 * 256;
    for (int i = threadIdx.x; i < 512; i += blockDim.x) {  // 32 groups x 16 vectors of 4 columns
      const int kg = i / 16, w = (i % 16) * 4;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if ((k_blk * 32 + kg) * 4 < Kp) v = *reinterpret_cast<const uint4*>(src + kg * 256 + (i % 16) * 16);
      tile[kg][w] = v.x, tile[kg][w + 1] = v.y, tile[kg][w + 2] = v.z, tile[kg][w + 3] = v.w;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 512; i += blockDim.x) {  // 64 rows x 8 chunks of 16 k-bytes
      const int n = i / 8, c = i % 8;
      const int64_t col = n_blk * 64 + n, kbyte = k_blk * 128 + c * 16;
      if (col < N && kbyte < ldb)
        *reinterpret_cast<uint4*>(out + (ib * N + col) * ldb + kbyte) =
            make_uint4(tile[4 * c][n], tile[4 * c + 1][n], tile[4 * c + 2][n], tile[4 * c + 3][n]);
    }
    __syncthreads();  // the tile is read before the next one overwrites it
  }
}

}  // namespace dwq::cuda

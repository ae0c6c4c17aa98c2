// The K-major copy of the packed blob's weight planes that the wgmma kernels read
// (qgemm_wgmma.cuh: 8-bit wgmma wants K-major rows of 16 k-bytes; the blob, shared with the CPU,
// holds 4 columns x 4 k per 16 bytes). Included by its launcher (qgemm_wgmma.cu) only.
#pragma once
#include <cstdint>

namespace dwq::cuda {

// One thread per (limb, 16-k chunk, column n), n fastest: the blob reads of a warp are 32
// consecutive 4-byte words, each write is one 16-byte row chunk.
__global__ void repack_kmajor_kernel(const int8_t* __restrict__ planes, int64_t N, int64_t Npad, int64_t Kp, int lw,
                                     int8_t* __restrict__ out, int64_t ldb) {
  const int64_t chunks = ldb / 16, total = int64_t(lw) * chunks * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i % N, rest = i / N, c = rest % chunks, ib = rest / chunks;
    const int8_t* src = planes + ib * Npad * Kp + (n / 64) * 64 * Kp + (n % 64) * 4;
    uint32_t w[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t kg = c * 4 + q;  // 4-k group: 4 bytes of column n at kg * 256 in its block
      w[q] = kg * 4 < Kp ? *reinterpret_cast<const uint32_t*>(src + kg * 256) : 0u;
    }
    *reinterpret_cast<uint4*>(out + (ib * N + n) * ldb + c * 16) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

}  // namespace dwq::cuda

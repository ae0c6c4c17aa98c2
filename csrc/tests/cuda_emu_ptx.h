// The PTX of the tensor-core kernels, emulated for cuda_emu.h (the kernel headers leave these
// wrappers out under DWQ_CUDA_EMU): cp.async (copies land at the wait that covers them),
// ldmatrix.x4 and mma.sync.m16n8k32 (warp-collective, fragment layouts of the PTX ISA), and
// wgmma.mma_async m64nNk32 u8 x s8 from 128-byte-swizzled K-major shared memory through matrix
// descriptors (computed at issue, checked again and written back at the wait: shared memory that
// changes while an MMA is in flight counts as a violation).
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_emu.h"

namespace dwq::cuda {

// ---------------------------------------------------------------- cp.async
inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
  uint8_t* d = static_cast<uint8_t*>(smem);
  const uint8_t* s = static_cast<const uint8_t*>(gmem);
  cuda_emu::tl_cp_async.open.push_back([d, s, src_bytes] {
    std::memcpy(d, s, static_cast<size_t>(src_bytes));
    std::memset(d + src_bytes, 0, static_cast<size_t>(16 - src_bytes));
  });
}
inline void cp_async_commit() { cuda_emu::tl_cp_async.commit(); }
template <int N>
void cp_async_wait() {
  cuda_emu::tl_cp_async.wait(N);
}

// ---------------------------------------------------------------- mma.sync (sm_80)
// Lane l gets, of matrix j (rows given by lanes 8j .. 8j + 7), bytes 4 (l % 4) .. +3 of row l / 4.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const uint64_t mine[1] = {reinterpret_cast<uint64_t>(smem)};
  const unsigned lane = threadIdx.x % 32;
  cuda_emu::warp_exchange<1>(mine, [&](auto of) {
    for (int j = 0; j < 4; ++j) {
      const uint8_t* row = reinterpret_cast<const uint8_t*>(of(8 * j + lane / 4)[0]);
      std::memcpy(&r[j], row + 4 * (lane % 4), 4);
    }
  });
}

// d += A (u8 16x32) * B (s8 32x8). Fragments (gid = lane / 4, tig = lane % 4): a[i] holds row
// gid + 8 (i % 2), k 16 (i / 2) + 4 tig .. +3; b[i] column gid, k 16 i + 4 tig .. +3; d[i] row
// gid + 8 (i / 2), column 2 tig + i % 2.
inline void mma_u8s8(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const uint64_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const unsigned lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  cuda_emu::warp_exchange<6>(mine, [&](auto of) {
    for (int i = 0; i < 4; ++i) {
      const unsigned row = gid + 8 * (i / 2), col = 2 * tig + i % 2;
      int32_t acc = d[i];
      for (unsigned k = 0; k < 32; ++k) {
        const auto& al = of((row % 8) * 4 + (k % 16) / 4);
        const auto& bl = of(col * 4 + (k % 16) / 4);
        const uint32_t aw = static_cast<uint32_t>(al[(row / 8) + 2 * (k / 16)]);
        const uint32_t bw = static_cast<uint32_t>(bl[4 + k / 16]);
        acc += static_cast<int32_t>((aw >> (8 * (k % 4))) & 255u) * static_cast<int8_t>((bw >> (8 * (k % 4))) & 255u);
      }
      d[i] = acc;
    }
  });
}

// ---------------------------------------------------------------- wgmma (sm_90a)
inline void wgmma_fence() {}
inline void fence_proxy_async() {}
inline void wgmma_commit() { cuda_emu::tl_wgmma.commit(); }
template <int N>
void wgmma_wait() {
  cuda_emu::tl_wgmma.wait(N);
}

// Byte (row r, k byte kb) of a K-major operand with 128-byte swizzle, from its descriptor.
inline const uint8_t* desc_byte(uint64_t desc, unsigned r, unsigned kb) {
  if ((desc >> 62) != 1) cuda_emu::violations.fetch_add(1);  // only the 128-byte swizzle is modelled
  const uint64_t start = (desc & 0x3FFF) << 4, sbo = ((desc >> 32) & 0x3FFF) << 4;
  const uint64_t addr = start + (r / 8) * sbo + (r % 8) * 128 + kb;
  return cuda_emu::tl_block->dsmem + (addr ^ (((addr >> 7) & 7) << 4));
}

// This thread's N / 2 accumulators of D (64 x N) += A (64 x 32 u8) * B (N x 32 s8)^T: warp w of the
// warpgroup owns rows 16 w .. +15; register 4 j + 2 h + c is row gid + 8 h, column 8 j + 2 tig + c.
template <int N>
void wgmma_product(const int32_t* d_in, int32_t* d_out, uint64_t a, uint64_t b) {
  const unsigned t = threadIdx.x % 128, w = t / 32, lane = t % 32, gid = lane / 4, tig = lane % 4;
  for (int r = 0; r < N / 2; ++r) {
    const unsigned row = 16 * w + gid + 8 * ((r / 2) % 2), col = 8 * (r / 4) + 2 * tig + r % 2;
    int32_t acc = d_in[r];
    for (unsigned kb = 0; kb < 32; ++kb)
      acc += static_cast<int32_t>(*desc_byte(a, row, kb)) * static_cast<int8_t>(*desc_byte(b, col, kb));
    d_out[r] = acc;
  }
}

// Issue: the result from the shared memory of now (and from the MMAs already in flight on d);
// wait: the same product again (the shared memory must not have changed), then d is written.
template <int N>
void wgmma_issue(int32_t (&d)[N / 2], uint64_t a, uint64_t b) {
  auto& in_flight = cuda_emu::tl_wgmma_in_flight;
  auto op = std::make_shared<cuda_emu::WgmmaOp>();
  op->d = d;
  op->in.assign(d, d + N / 2);
  for (auto& prev : in_flight)  // an op on the same registers not yet waited for: its result is our input
    if (prev->d == d) op->in = prev->out;
  op->out.resize(N / 2);
  wgmma_product<N>(op->in.data(), op->out.data(), a, b);
  in_flight.push_back(op);
  cuda_emu::tl_wgmma.open.push_back([op, a, b] {
    std::vector<int32_t> again(N / 2);
    wgmma_product<N>(op->in.data(), again.data(), a, b);
    if (again != op->out) cuda_emu::violations.fetch_add(1);
    std::memcpy(op->d, op->out.data(), sizeof(int32_t) * (N / 2));
    auto& v = cuda_emu::tl_wgmma_in_flight;
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] == op) {
        v.erase(v.begin() + static_cast<long>(i));
        break;
      }
  });
}
inline void wgmma_u8s8(int32_t (&d)[32], uint64_t a, uint64_t b) { wgmma_issue<64>(d, a, b); }
inline void wgmma_u8s8(int32_t (&d)[64], uint64_t a, uint64_t b) { wgmma_issue<128>(d, a, b); }

}  // namespace dwq::cuda

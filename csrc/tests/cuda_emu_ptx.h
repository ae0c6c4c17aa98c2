// The PTX of the tensor-core kernels, emulated for cuda_emu.h (the kernel headers leave these
// wrappers out under DWQ_CUDA_EMU): cp.async (copies land at issue or at the wait that covers them),
// ldmatrix.x4 and mma.sync.m16n8k32 (warp-collective, fragment layouts of the PTX ISA),
// wgmma.mma_async m64nNk32 u8 x s8 (N = 8, 64, 128) from 128-byte-swizzled K-major shared memory through matrix
// descriptors (computed at issue, checked again and written back at the wait: shared memory that
// changes while an MMA is in flight counts as a violation), and mbarriers (arrival counts,
// transaction bytes, phases) with TMA tiled 3-D loads (landing early or late, see tma_land_late).
#pragma once
#include <cuda.h>  // CUtensorMap

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cuda_emu.h"

namespace dwq::cuda {

// ---------------------------------------------------------------- cp.async
// When a copy lands: at the wait that covers it (the latest the hardware may: a read before that
// wait sees stale data), or at issue (the earliest: a stage refilled while another warp still reads
// it shows up). The tests run each kernel both ways.
inline bool cp_async_land_early = false;

// The alignment the PTX ISA requires of a shared-memory or global address (a misaligned address
// faults on the GPU, and a host memcpy would not notice).
inline void require_aligned(uint64_t addr, uint64_t align) {
  if (addr % align != 0) cuda_emu::violations.fetch_add(1);
}

inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
  // cp-size 16: both addresses 16-byte aligned, 0 <= src-size <= cp-size
  require_aligned(__cvta_generic_to_shared(smem), 16);
  require_aligned(reinterpret_cast<uintptr_t>(gmem), 16);
  if (src_bytes < 0 || src_bytes > 16) cuda_emu::violations.fetch_add(1);
  uint8_t* d = static_cast<uint8_t*>(smem);
  const uint8_t* s = static_cast<const uint8_t*>(gmem);
  auto land = [d, s, src_bytes] {
    cuda_emu::smem_access(d, 16, true);
    std::memcpy(d, s, static_cast<size_t>(src_bytes));
    std::memset(d + src_bytes, 0, static_cast<size_t>(16 - src_bytes));
  };
  if (cp_async_land_early)
    land();
  else
    cuda_emu::tl_cp_async.open.push_back(land);
}
inline void cp_async_commit() { cuda_emu::tl_cp_async.commit(); }
template <int N>
void cp_async_wait() {
  cuda_emu::tl_cp_async.wait(N);
}

// ---------------------------------------------------------------- mma.sync (sm_80)
// Lane l gets, of matrix j (rows given by lanes 8j .. 8j + 7), bytes 4 (l % 4) .. +3 of row l / 4.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  require_aligned(__cvta_generic_to_shared(smem), 16);  // each row address: 16-byte aligned
  cuda_emu::smem_access(smem, 16, false);  // this lane's row of 16 bytes
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
// bar.sync id, count: the first `count` threads of the block meet (a barrier of its own per id).
inline void named_sync(int id, int count) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  std::unique_lock<std::mutex> lock(b.mu);
  cuda_emu::Block::Named& n = b.named[static_cast<size_t>(id)];
  const uint32_t gen = n.gen;
  if (++n.arrived == static_cast<uint32_t>(count)) {
    n.arrived = 0;
    ++n.gen;
    b.cv.notify_all();
  } else {
    b.cv.wait(lock, [&] { return n.gen != gen; });
  }
}
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
  return cuda_emu::tl_block->window + (addr ^ (((addr >> 7) & 7) << 4));
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
inline void wgmma_u8s8(int32_t (&d)[4], uint64_t a, uint64_t b) { wgmma_issue<8>(d, a, b); }
inline void wgmma_u8s8(int32_t (&d)[32], uint64_t a, uint64_t b) { wgmma_issue<64>(d, a, b); }
inline void wgmma_u8s8(int32_t (&d)[64], uint64_t a, uint64_t b) { wgmma_issue<128>(d, a, b); }

}  // namespace dwq::cuda

// ---------------------------------------------------------------- mbarrier + TMA (sm_90a)
namespace cuda_emu {
// When bulk tensor copies land: at issue (the earliest the hardware may: a stage refilled while an
// MMA still reads it shows up), or at the first wait on their barrier (the latest: a consumer that
// reads before waiting sees stale data). Tests run the TMA kernel in both modes.
inline bool tma_land_late = false;

// The tensor map of the emulation: what cuTensorMapEncodeTiled is given (3-D, bytes, 128-byte
// swizzle, zero fill), stored in the CUtensorMap's opaque bytes.
struct EmuMap {
  const uint8_t* base;
  uint64_t dim[3], stride[2];
  uint32_t box[3];
};
static_assert(sizeof(EmuMap) <= sizeof(CUtensorMap), "fits the opaque map");
// What cuTensorMapEncodeTiled rejects (cuda.h) for a 3-D byte map with the 128-byte swizzle: the
// launcher's byte_map would fail there, so a geometry that breaks these counts as a violation.
template <class Box>  // dwq::cuda::TmaBox (qgemm_wgmma_tma.cuh, included after this header)
CUtensorMap encode_map(const void* base, const Box& g) {
  bool ok = reinterpret_cast<uintptr_t>(base) % 16 == 0;
  for (int i = 0; i < 3; ++i) ok = ok && g.dim[i] >= 1 && g.dim[i] <= (uint64_t{1} << 32);
  for (int i = 0; i < 3; ++i) ok = ok && g.box[i] >= 1 && g.box[i] <= 256;
  for (int i = 0; i < 2; ++i) ok = ok && g.stride[i] % 16 == 0 && g.stride[i] < (uint64_t{1} << 40);
  ok = ok && g.box[0] % 16 == 0 && g.box[0] <= 128;  // inner box: 16-byte multiple, within the swizzle span
  if (!ok) violations.fetch_add(1);
  CUtensorMap m{};
  const EmuMap e{static_cast<const uint8_t*>(base), {g.dim[0], g.dim[1], g.dim[2]}, {g.stride[0], g.stride[1]},
                 {g.box[0], g.box[1], g.box[2]}};
  std::memcpy(&m, &e, sizeof e);
  return m;
}

// Completes the phase if nothing is outstanding (mu held).
inline void mbar_settle(Block& b, Block::Mbar& m) {
  if (m.pending == 0 && m.tx == 0) {
    ++m.phase;
    m.pending = m.expected;
    b.cv.notify_all();
  }
}
inline Block::Mbar& mbar_of(Block& b, const void* bar) {
  Block::Mbar& m = b.mbars[bar];
  if (!m.init) violations.fetch_add(1);  // used before mbarrier.init
  return m;
}
}  // namespace cuda_emu

namespace dwq::cuda {
inline uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
inline void mbar_init(uint64_t* bar, uint32_t count) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  std::lock_guard<std::mutex> lk(b.mu);
  cuda_emu::Block::Mbar& m = b.mbars[bar];
  m = cuda_emu::Block::Mbar{};
  m.expected = m.pending = count;
  m.init = true;
}
inline void mbar_init_fence() {}
inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  std::unique_lock<std::mutex> lk(b.mu);
  cuda_emu::Block::Mbar& m = cuda_emu::mbar_of(b, bar);
  for (;;) {
    for (auto& land : m.copies) m.tx -= land();  // late mode: the copies land now
    if (!m.copies.empty()) {
      m.copies.clear();
      cuda_emu::mbar_settle(b, m);
    }
    if ((m.phase & 1u) != parity) return;  // the phase of this parity has completed
    if (b.cv.wait_for(lk, std::chrono::seconds(30)) == std::cv_status::timeout) {
      std::fprintf(stderr, "emulation: an mbarrier wait made no progress for 30 s (a deadlock)\n");
      std::abort();
    }
  }
}
inline void mbar_arrive(uint64_t* bar) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  {
    std::lock_guard<std::mutex> lk(b.mu);
    cuda_emu::Block::Mbar& m = cuda_emu::mbar_of(b, bar);
    if (m.pending == 0) cuda_emu::violations.fetch_add(1);  // more arrivals than the count
    --m.pending;
    cuda_emu::mbar_settle(b, m);
  }
  // An arrival that releases a buffer while this thread's wgmma ops are in flight: give the threads
  // it wakes time to refill it before those ops are waited for, so that an op still reading the
  // buffer sees the refill (a violation) instead of the race being won by this thread every time.
  if (!cuda_emu::tl_wgmma_in_flight.empty()) std::this_thread::sleep_for(std::chrono::microseconds(500));
}
inline void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  std::lock_guard<std::mutex> lk(b.mu);
  cuda_emu::mbar_of(b, bar).tx += bytes;
}
inline void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  mbar_expect_tx(bar, bytes);
  mbar_arrive(bar);
}
// The box of map at (k, row, limb) into dst with the 128-byte swizzle (on shared-memory address
// bits, as the hardware applies it); elements outside the tensor are zero.
inline void tma_load_3d(void* dst, const CUtensorMap* map, int k, int row, int limb, uint64_t* bar) {
  // the destination 128-byte aligned (1024 for the swizzle atoms that the descriptors assume), the
  // mbarrier 8; the map itself (a __grid_constant__ parameter) 64
  require_aligned(__cvta_generic_to_shared(dst), 1024);
  require_aligned(reinterpret_cast<uintptr_t>(bar), 8);
  require_aligned(reinterpret_cast<uintptr_t>(map), 64);
  cuda_emu::EmuMap e;
  std::memcpy(&e, map, sizeof e);
  uint8_t* base = cuda_emu::tl_block->window;
  const uint64_t d0 = static_cast<uint64_t>(static_cast<uint8_t*>(dst) - base);
  auto land = [=]() -> int64_t {
    for (uint32_t r = 0; r < e.box[1]; ++r)
      for (uint32_t i = 0; i < e.box[0]; ++i) {
        const uint64_t kk = uint64_t(k) + i, rr = uint64_t(row) + r;
        const bool in = kk < e.dim[0] && rr < e.dim[1] && uint64_t(limb) < e.dim[2];
        const uint64_t addr = d0 + uint64_t(r) * e.box[0] + i;
        base[addr ^ (((addr >> 7) & 7) << 4)] = in ? e.base[uint64_t(limb) * e.stride[1] + rr * e.stride[0] + kk] : 0;
      }
    return int64_t(e.box[0]) * e.box[1];
  };
  cuda_emu::Block& b = *cuda_emu::tl_block;
  std::lock_guard<std::mutex> lk(b.mu);
  cuda_emu::Block::Mbar& m = cuda_emu::mbar_of(b, bar);
  if (e.box[0] > 128 || e.box[2] != 1) cuda_emu::violations.fetch_add(1);  // outside the model (and the kernel)
  if (cuda_emu::tma_land_late) {
    m.copies.push_back(land);
    b.cv.notify_all();
  } else {
    m.tx -= land();
    cuda_emu::mbar_settle(b, m);
  }
}
inline void tma_prefetch_map(const CUtensorMap*) {}
template <int R>
void regs_inc() {}
template <int R>
void regs_dec() {}
}  // namespace dwq::cuda

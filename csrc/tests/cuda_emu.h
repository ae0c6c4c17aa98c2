// Runs the CUDA C++ of csrc/cuda on the CPU, for the C++ tests: each CUDA thread of a block is a
// host thread, blocks run one after another, and __syncthreads, warp shuffles, atomics, __shared__
// variables (function statics: one block at a time owns them) and the block's dynamic shared
// memory keep CUDA's meaning; cuda_emu_ptx.h adds the PTX the tensor-core kernels use. It checks a
// kernel's indexing, bounds, reductions, pipeline order and arithmetic against the CPU kernels
// without a GPU; it is a model of the execution, not a GPU run (no memory-model, timing or
// occupancy effects), with a race check of the shared-memory accesses it sees (smem_access).
// Include it before any kernel header; it defines DWQ_CUDA_EMU.
#pragma once
#define DWQ_CUDA_EMU 1
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <array>
#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
using std::isfinite;  // CUDA's device math names it in the global namespace

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline dim3 blockDim, gridDim;

namespace cuda_emu {

// Launches so far: picks each block's dynamic shared-memory offset.
inline std::atomic<unsigned> launches{0};

// Counts the block's completed __syncthreads: the barrier epoch of the shared-memory race check.
struct NextEpoch {
  std::atomic<uint32_t>* epoch;
  void operator()() noexcept { epoch->fetch_add(1); }
};

// The last write and read of one byte of dynamic shared memory, as the race check sees them.
struct Access {
  uint32_t w_epoch = ~0u, r_epoch = ~0u;
  int32_t w_tid = -1, r_tid = -1;  // r_tid -2: several threads read it in r_epoch
};

struct Block {
  // As on the GPU, the dynamic shared memory is not zeroed and does not start at the swizzle atom:
  // it follows the static __shared__ variables, here at 128 * (1..7) bytes past a 1024-byte aligned
  // window (the shared address space), and holds garbage. So a read of shared memory before its
  // write, or a kernel that assumes a 1024-aligned base instead of rounding up, fails the tests.
  Block(unsigned n, size_t smem_bytes, unsigned offset)
      : bar(n, NextEpoch{&epoch}), slots(n), warps((n + 31) / 32), smem(smem_bytes + 2048),
        shadow(smem_bytes > 0 ? smem.size() : 0) {
    for (unsigned w = 0; w < warps.size(); ++w) {
      const unsigned size = n - 32 * w < 32 ? n - 32 * w : 32;
      warps[w] = std::make_unique<std::barrier<>>(size);
    }
    for (size_t i = 0; i < smem.size(); ++i) smem[i] = static_cast<uint8_t>(0xA7u ^ (i * 131u) ^ (i >> 7));
    window = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem.data()) + 1023) / 1024 * 1024);
    dsmem = window + offset;
  }
  std::atomic<uint32_t> epoch{0};  // (before bar, whose completion counts it)
  std::barrier<NextEpoch> bar;
  std::vector<std::array<uint64_t, 8>> slots;  // the words each thread offers its warp (shuffles, fragments)
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::atomic<int> any{0};
  std::vector<uint8_t> smem;
  uint8_t* window = nullptr;  // shared address 0 (1024-aligned)
  uint8_t* dsmem = nullptr;   // the dynamic shared memory: window + 128 * (1..7)
  std::vector<Access> shadow;  // per byte of smem (race check)
  std::mutex shadow_mu;
  // mbarriers (by address) and the bulk copies still to land on them (cuda_emu_ptx.h)
  struct Mbar {
    uint32_t expected = 0, pending = 0, phase = 0;
    int64_t tx = 0;
    bool init = false;
    std::vector<std::function<int64_t()>> copies;  // each lands and returns its byte count
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<const void*, Mbar> mbars;
  // named barriers (bar.sync id, count), under mu
  struct Named {
    uint32_t arrived = 0, gen = 0;
  };
  std::array<Named, 16> named;
};

inline thread_local Block* tl_block = nullptr;

// Operations a thread has issued and not yet waited for (cp.async, wgmma): each runs when the
// kernel's wait says it has completed, so a kernel that reads too early sees stale data.
struct Pending {
  std::vector<std::function<void()>> open;  // issued since the last commit
  std::deque<std::vector<std::function<void()>>> groups;  // committed, oldest first
  void commit() {
    groups.push_back(std::move(open));
    open.clear();
  }
  void wait(size_t keep) {  // completes all but the newest `keep` committed groups
    while (groups.size() > keep) {
      for (auto& op : groups.front()) op();
      groups.pop_front();
    }
  }
  void clear() {
    open.clear();
    groups.clear();
  }
};
inline thread_local Pending tl_cp_async, tl_wgmma;

// An issued wgmma: its accumulator registers d, their values before it and its result.
struct WgmmaOp {
  int32_t* d;
  std::vector<int32_t> in, out;
};
inline thread_local std::vector<std::shared_ptr<WgmmaOp>> tl_wgmma_in_flight;  // oldest first

// Breaches of an operation's contract that the emulation can see (e.g. shared memory that an
// in-flight wgmma reads changed before its wait); a test fails if any were counted.
inline std::atomic<int64_t> violations{0};
// Device-side asserts the kernels failed (DWQ_DEVICE_FAIL): counted, the thread goes on.
inline std::atomic<int64_t> device_asserts{0};
#define DWQ_DEVICE_FAIL(msg) ((void)(msg), cuda_emu::device_asserts.fetch_add(1))

inline uint8_t* dynamic_smem() { return tl_block->dsmem; }

// Shared-memory race check (what compute-sanitizer's racecheck does on the GPU, for the accesses
// the emulation sees: cp.async writes as they land, ldmatrix reads). Two accesses of one byte by
// different threads, at least one a write, with no __syncthreads between them are a race: a read
// of data another thread's copy may not have landed, or a refill of a stage another warp may
// still be reading. Each race counts as a violation; the first few are printed.
inline std::atomic<int64_t> races{0};

inline void race(const char* what, const void* p, uint32_t epoch, int other, int self) {
  if (races.fetch_add(1) < 5)
    std::fprintf(stderr, "emulated racecheck: %s of shared byte %lld in barrier epoch %u: threads %d and %d\n", what,
                 static_cast<long long>(static_cast<const uint8_t*>(p) - tl_block->window), epoch, other, self);
  violations.fetch_add(1);
}

inline void smem_access(const void* p, size_t n, bool write) {
  Block& b = *tl_block;
  if (b.shadow.empty()) return;
  const uint8_t* q = static_cast<const uint8_t*>(p);
  if (q < b.smem.data() || q + n > b.smem.data() + b.smem.size()) return;  // (not dynamic shared memory)
  const uint32_t e = b.epoch.load();
  const int t = static_cast<int>(threadIdx.x);
  std::lock_guard<std::mutex> lock(b.shadow_mu);
  for (size_t i = 0; i < n; ++i) {
    Access& a = b.shadow[static_cast<size_t>(q + i - b.smem.data())];
    if (write) {
      if (a.w_epoch == e && a.w_tid != t) race("write after write", q + i, e, a.w_tid, t);
      else if (a.r_epoch == e && a.r_tid != t) race("write after read", q + i, e, a.r_tid, t);
      a.w_epoch = e, a.w_tid = t;
    } else {
      if (a.w_epoch == e && a.w_tid != t) race("read after write", q + i, e, a.w_tid, t);
      a.r_tid = a.r_epoch == e && a.r_tid != t ? -2 : t;
      a.r_epoch = e;
    }
  }
}

// Every lane of this thread's warp offers W words; f(words of lane l) is called for the lanes it
// reads, between the two warp barriers that keep the offers stable.
template <int W, typename F>
void warp_exchange(const uint64_t (&mine)[W], F&& read) {
  Block& b = *tl_block;
  const unsigned t = threadIdx.x, w = t / 32;
  for (int i = 0; i < W; ++i) b.slots[t][i] = mine[i];
  b.warps[w]->arrive_and_wait();
  read([&](unsigned lane) -> const std::array<uint64_t, 8>& { return b.slots[w * 32 + lane]; });
  b.warps[w]->arrive_and_wait();
}

}  // namespace cuda_emu


inline void __syncthreads() { cuda_emu::tl_block->bar.arrive_and_wait(); }
inline int __syncthreads_or(int v) {
  cuda_emu::Block& b = *cuda_emu::tl_block;
  if (v) b.any.store(1);
  b.bar.arrive_and_wait();
  const int r = b.any.load();
  b.bar.arrive_and_wait();  // everyone read it
  if (threadIdx.x == 0) b.any.store(0);
  b.bar.arrive_and_wait();
  return r;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

namespace cuda_emu {
// Lane src of this thread's warp sees v (every lane of the warp takes part, as with a full mask).
template <typename T>
T shuffle(T v, int src_lane) {
  static_assert(sizeof(T) <= 8, "shuffle words are 8 bytes");
  uint64_t word[1] = {0};
  std::memcpy(word, &v, sizeof(T));
  T r;
  warp_exchange<1>(word, [&](auto lane) { std::memcpy(&r, &lane(src_lane)[0], sizeof(T)); });
  return r;
}
}  // namespace cuda_emu

template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  return cuda_emu::shuffle(v, static_cast<int>((threadIdx.x % 32) ^ mask));
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta) {
  const unsigned src = threadIdx.x % 32 + delta;
  return cuda_emu::shuffle(v, static_cast<int>(src < 32 ? src : threadIdx.x % 32));
}

template <typename T>
T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // (the old value either way)
}
template <typename T>
T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
T atomicMax(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}

// The shared-memory address of p: its offset in the block's dynamic shared memory.
inline uint64_t __cvta_generic_to_shared(const void* p) {
  return static_cast<uint64_t>(static_cast<const uint8_t*>(p) - cuda_emu::tl_block->window);
}

inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline float __int_as_float(int i) { return __uint_as_float(static_cast<unsigned>(i)); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline unsigned __vcmpgtu4(unsigned a, unsigned b) {
  unsigned r = 0;
  for (int i = 0; i < 4; ++i)
    if (((a >> (8 * i)) & 255u) > ((b >> (8 * i)) & 255u)) r |= 255u << (8 * i);
  return r;
}
inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  for (int i = 0; i < 4; ++i) c += ((a >> (8 * i)) & 255u) * ((b >> (8 * i)) & 255u);
  return c;
}

namespace cuda_emu {

// kernel<<<grid, block, smem_bytes>>>(args...), synchronously: one host thread per CUDA thread of a
// block (at most 1024), kept for every block; a gate between blocks gives each block fresh
// barriers and fresh (garbage-filled, offset: see Block) dynamic shared memory.
template <typename Kernel, typename... Args>
void launch_smem(dim3 grid, dim3 block, size_t smem_bytes, Kernel kernel, Args... args) {
  gridDim = grid;
  blockDim = block;
  const unsigned n = block.x * block.y * block.z;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  // What the GPU refuses to launch (an empty grid included): block and grid limits, and dynamic
  // shared memory beyond the 227 KiB opt-in of sm_90 (cudaFuncSetAttribute raises the 48 KiB default).
  if (n == 0 || n > 1024 || blocks == 0 || grid.x > 0x7FFFFFFFu || grid.y > 65535 || grid.z > 65535 ||
      smem_bytes > 227 * 1024)
    violations.fetch_add(1);
  if (n == 0 || blocks == 0) return;
  uint64_t current = 0;
  const unsigned offset = 128 * (1 + launches.fetch_add(1) % 7);
  std::unique_ptr<Block> b = std::make_unique<Block>(n, smem_bytes, offset);
  auto next = [&]() noexcept {
    if (++current < blocks) b = std::make_unique<Block>(n, smem_bytes, offset);
  };
  std::barrier<decltype(next)> gate(n, next);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      threadIdx = make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      while (current < blocks) {
        tl_block = b.get();
        blockIdx = make_uint3(static_cast<unsigned>(current % grid.x), static_cast<unsigned>(current / grid.x % grid.y),
                              static_cast<unsigned>(current / (uint64_t(grid.x) * grid.y)));
        tl_cp_async.clear();
        tl_wgmma.clear();
        tl_wgmma_in_flight.clear();
        kernel(args...);
        // An exited thread no longer holds up the barriers of the others (as on the GPU).
        b->warps[t / 32]->arrive_and_drop();
        b->bar.arrive_and_drop();
        gate.arrive_and_wait();  // the last one in starts the next block
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  launch_smem(grid, block, 0, kernel, args...);
}

}  // namespace cuda_emu

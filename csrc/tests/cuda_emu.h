// Runs the CUDA C++ of csrc/cuda (kernels without inline PTX) on the CPU, for the C++ tests: each
// CUDA thread of a block is a host thread, blocks run one after another, and __syncthreads,
// warp shuffles, atomics and __shared__ variables (function statics: one block at a time owns
// them) keep CUDA's meaning. It checks a kernel's indexing, bounds, reductions and arithmetic
// against the CPU kernels without a GPU; it is a model of the execution, not a GPU run (no
// memory-model, timing or occupancy effects).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
using std::isfinite;  // CUDA's device math names it in the global namespace

namespace cuda_emu {

struct Block {
  explicit Block(unsigned n) : bar(n), slots(n), warps((n + 31) / 32) {
    for (unsigned w = 0; w < warps.size(); ++w) {
      const unsigned size = n - 32 * w < 32 ? n - 32 * w : 32;
      warps[w] = std::make_unique<std::barrier<>>(size);
    }
  }
  std::barrier<> bar;
  std::vector<uint64_t> slots;  // one shuffle word per thread
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::atomic<int> any{0};
};

inline thread_local Block* tl_block = nullptr;

}  // namespace cuda_emu

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline dim3 blockDim, gridDim;

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
  Block& b = *tl_block;
  const unsigned t = threadIdx.x, w = t / 32;
  uint64_t word = 0;
  std::memcpy(&word, &v, sizeof(T));
  b.slots[t] = word;
  b.warps[w]->arrive_and_wait();
  T r;
  std::memcpy(&r, &b.slots[w * 32 + src_lane], sizeof(T));
  b.warps[w]->arrive_and_wait();  // nobody overwrites a slot before every lane read
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

inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
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

// kernel<<<grid, block>>>(args...), synchronously: one host thread per CUDA thread of a block
// (at most 1024), kept for every block; a gate between blocks gives each block fresh barriers.
template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  gridDim = grid;
  blockDim = block;
  const unsigned n = block.x * block.y * block.z;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  if (n == 0 || blocks == 0) return;
  uint64_t current = 0;
  std::unique_ptr<Block> b = std::make_unique<Block>(n);
  auto next = [&]() noexcept {
    if (++current < blocks) b = std::make_unique<Block>(n);
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

}  // namespace cuda_emu

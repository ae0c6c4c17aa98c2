// The per-ISA region of isa_region.h against the GCC 13 failure of issue 9: libstdc++ 13 marks
// std::allocator's constructors and destructor always_inline, and a target pragma in force where
// such members are declared made GCC 13 reject the build ("inlining failed in call to
// 'always_inline' ... target specific option mismatch"). probe_alloc has the same members as
// libstdc++ 13's allocator, declared before the region as every header is, and is used inside it
// by std::vector (which GCC synthesizes special members for). This file failing to compile is the
// regression; the run checks that the region's code works and that the ISA dispatch still sees
// AVX2 only where the CPU has it.
#include <immintrin.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "cpu/isa_region.h"
#include "cpu/qgemm.h"

template <typename T>
struct probe_alloc {
  using value_type = T;
  __attribute__((always_inline)) probe_alloc() noexcept {}
  __attribute__((always_inline)) probe_alloc(const probe_alloc&) noexcept {}
  template <typename U>
  __attribute__((always_inline)) probe_alloc(const probe_alloc<U>&) noexcept {}
  __attribute__((always_inline)) ~probe_alloc() {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  bool operator==(const probe_alloc&) const noexcept { return true; }
  bool operator!=(const probe_alloc&) const noexcept { return false; }
};

struct Buffers {  // like the driver's ThreadBuffers: implicit special members over vectors
  std::vector<int, probe_alloc<int>> a;
  std::vector<float, probe_alloc<float>> b;
};

DWQ_ISA_REGION_BEGIN("avx2,fma")
static int sum_avx2(int n) {
  Buffers bufs;
  bufs.a.resize(static_cast<size_t>(n), 1);
  __m256i acc = _mm256_setzero_si256();
  int i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bufs.a.data() + i)));
  alignas(32) int lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  int s = 0;
  for (int l = 0; l < 8; ++l) s += lanes[l];
  for (; i < n; ++i) s += bufs.a[static_cast<size_t>(i)];
  return s;
}
DWQ_ISA_REGION_END

int main() {
  const bool has_avx2 = dwq::cpu::isa_supported(dwq::cpu::Isa::avx2);
  if (has_avx2 != (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    std::printf("FAIL: isa_supported(avx2) disagrees with CPUID\n");
    return 1;
  }
  if (!has_avx2) {
    std::printf("compiled; this CPU has no AVX2, so the region's code was not run\n");
    return 0;
  }
  const int s = sum_avx2(1003);
  if (s != 1003) {
    std::printf("FAIL: sum_avx2(1003) = %d\n", s);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

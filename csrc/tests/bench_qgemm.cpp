// Micro-benchmark of the torch-free integer GEMM engine (not a test): GOPS per ISA and bit width
// on the issue-3 shapes, OpenMP threads over plan items. Usage: bench_qgemm [isa [shape index]];
// BENCH_CONV=B,C,HW times one b B C->C 3x3 conv over HW x HW (stride 1, padding 1) instead.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <omp.h>

#include "cpu/qgemm.h"

using namespace dwq::cpu;

static double bench(Isa isa, int64_t M, int64_t N, int64_t K, int bits, bool conv, int64_t hw = 0) {
  std::mt19937 rng(1);
  const int32_t qm = (1 << bits) - 1;
  std::vector<int32_t> w(N * K), zw(N, qm / 2);
  for (auto& v : w) v = rng() % (qm + 1);
  std::vector<int64_t> st(packed_weight_bytes(N, K, bits) / 8 + 16);
  int8_t* blob = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(st.data()) + 63) / 64 * 64);
  pack_weight(w.data(), false, N, K, K, 1, zw.data(), bits, blob);
  PackedWeightView v;
  parse_packed_weight(blob, packed_weight_bytes(N, K, bits), &v);
  ActSource a;
  std::vector<uint8_t> x8;
  std::vector<int32_t> x32;
  int64_t C = K / 9, HW = conv ? (hw > 0 ? hw : 2048 / C) : 32;
  int64_t nx = conv ? (M / (HW * HW)) * HW * HW * C : M * K;
  if (bits <= 8) { x8.resize(nx); for (auto& q : x8) q = rng() % (qm + 1); a.x = x8.data(); a.is_u8 = true; }
  else { x32.resize(nx); for (auto& q : x32) q = rng() % (qm + 1); a.x = x32.data(); a.is_u8 = false; }
  a.bits = bits; a.zx = qm / 3; a.sm = K; a.sk = 1;
  if (conv) {
    a.is_conv = true; a.batch = M / (HW * HW); a.H = a.W = HW; a.C = C;
    a.sn = HW * HW * C; a.sh = HW * C; a.sw = C; a.sc = 1; a.kh = a.kw = 3; a.pad_h = a.pad_w = 1; a.OH = a.OW = HW;
  }
  std::vector<float> out(M * N), mult(N, 0.01f);
  Epilogue ep; ep.kind = OutKind::f32; ep.out = out.data(); ep.ldo = N; ep.mult = mult.data();
  if (std::getenv("BENCH_CODES") && std::atoi(std::getenv("BENCH_CODES")) == 1) {  // requantized uint8 output
    // (a scale that is not a power of two, as a model's activation scales are: the epilogue divides)
    ep.kind = OutKind::codes_u8; ep.out_scale = 0.37f; ep.out_zp = 3; ep.out_bits = bits <= 8 ? bits : 8;
  }
  const int nt = omp_get_max_threads();
  GemmPlan p = plan_qgemm(M, v, bits, nt, isa_row_tile(isa));
  auto once = [&] {
    #pragma omp parallel
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t b = plan_split(p, t, T), e = plan_split(p, t + 1, T);
      run_qgemm(isa, p, a, v, ep, b, e);
    }
  };
  once();
  std::vector<double> ts;
  for (int r = 0; r < 15; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    once();
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[0];  // best of 7: the machine is shared
}

int main(int argc, char** argv) {
  Isa isa = Isa::avx512_vnni;
  for (Isa c : kAllIsas)
    if (argc > 1 && std::string(argv[1]) == isa_name(c)) isa = c;
  if (!isa_supported(isa)) {
    std::printf("%s: not supported by this CPU\n", isa_name(isa));
    return 1;
  }
  struct S { int64_t M, N, K; bool conv; const char* name; } shapes[] = {
      {1024, 1024, 1024, false, "gemm 1024^3"}, {4096, 512, 1152, false, "gemm 4096x512x1152"},
      {32, 4096, 4096, false, "gemm 32x4096x4096"}, {32 * 1024, 64, 576, true, "conv b32 64->64 3x3 32x32"},
      {32 * 256, 128, 1152, true, "conv b32 128->128 16x16"}, {32 * 64, 256, 2304, true, "conv b32 256->256 8x8"},
      {32 * 16, 512, 4608, true, "conv b32 512->512 4x4"}};
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;  // shape index, -1 = all
  const int only_bits = std::getenv("BENCH_BITS") ? std::atoi(std::getenv("BENCH_BITS")) : 0;
  if (const char* e = std::getenv("BENCH_CONV")) {
    long b = 0, c = 0, hw = 0;
    if (std::sscanf(e, "%ld,%ld,%ld", &b, &c, &hw) != 3 || b < 1 || c < 4 || c % 4 != 0 || hw < 1) {
      std::fprintf(stderr, "BENCH_CONV=%s: expected B,C,HW (positive, C a multiple of 4)\n", e);
      return 2;
    }
    for (int bits : {4, 8, 16})
      if (only_bits == 0 || only_bits == bits) {
        const double t = bench(isa, b * hw * hw, c, 9 * c, bits, true, hw);
        std::printf("conv b%ld %ld->%ld %ldx%ld bits=%2d  %8.3f ms\n", b, c, c, hw, hw, bits, t * 1e3);
      }
    return 0;
  }
  int idx = -1;
  for (auto& s : shapes)
    for (int bits : {4, 8, 16}) {
      if (only >= 0 && (++idx) / 3 != only) continue;
      if (only_bits != 0 && only_bits != bits) continue;
      const double t = bench(isa, s.M, s.N, s.K, bits, s.conv);
      std::printf("%-28s bits=%2d  %8.3f ms  %7.1f Gop/s\n", s.name, bits, t * 1e3, 2.0 * s.M * s.N * s.K / t * 1e-9);
    }
}

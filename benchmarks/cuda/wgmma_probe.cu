// Places the time of the warp-specialized TMA GEMM kernel (csrc/cuda/qgemm_wgmma_tma.cuh) without
// hardware counters: times it whole and with stages left out (its PROBE flags: no loads, no MMAs,
// no epilogue), with the int32 epilogue and the int64 one, on 8-bit matrix products, and checks
// that both epilogues write the same outputs; then the ping-pong tiles (wgmma_pp) whole and without
// their epilogue, their outputs checked against the int64 epilogue's; then the same for the 3x3 conv of
// PreActResNet18 at batch 256 (conv3x3 below). A standalone CUDA program (no torch): build it here,
// carry the binary to the GPU machine, run it there.
//
//   nvcc -std=c++17 -O3 --expt-relaxed-constexpr --fmad=false -gencode=arch=compute_90a,code=sm_90a \
//        -Icsrc -o wgmma_probe benchmarks/cuda/wgmma_probe.cu
//   ./wgmma_probe [M N K ...]          (default: 4096 4096 4096  8192 8192 8192)
//
// Prints one line per (shape, variant, probe): median milliseconds of 20 launches and TOPS.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/qgemm_wgmma_tma.cu"

namespace dwq::cuda {
// (qgemm_mma.cu defines it for the extension)
int sm_count(int device) {
  int n = 1;
  cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device);
  return n;
}
}  // namespace dwq::cuda

namespace probe {  // (named: nvcc's stubs confuse two anonymous namespaces of one file)
using namespace dwq::cuda;

#define CHECK(x)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

__global__ void fill_bytes(uint8_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = static_cast<uint8_t>(h >> 7);
  }
}

// CONV: p is an implicit conv (its activations copied by the producer warpgroup).
template <class Cfg, int PROBE, bool CONV = false>
cudaError_t launch(const MmaParams& p, cudaStream_t s) {
  return launch_tma<Cfg, CONV, PROBE>(p, s);  // (the engine's launcher: qgemm_wgmma_tma.cu)
}

template <class Cfg, int PROBE, bool CONV = false>
double time_ms(const MmaParams& p) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) CHECK((launch<Cfg, PROBE, CONV>(p, 0)));
  std::vector<float> t;
  for (int i = 0; i < 20; ++i) {
    CHECK(cudaEventRecord(a));
    CHECK((launch<Cfg, PROBE, CONV>(p, 0)));
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <class Cfg, int PROBE, bool CONV = false>
void row(const char* variant, const char* probe, const MmaParams& p) {
  const double ms = time_ms<Cfg, PROBE, CONV>(p);
  std::printf("%lldx%lldx%lld  %-10s %-16s %8.4f ms  %7.1f TOPS\n", (long long)p.M, (long long)p.N,
              (long long)p.K, variant, probe, ms, 2.0 * p.M * p.N * p.K / (ms * 1e9));
}

template <class Cfg, bool CONV = false>
void variant(const char* name, MmaParams p) {
  row<Cfg, 0, CONV>(name, "whole", p);
  row<Cfg, kProbeNoLoad | kProbeNoMma, CONV>(name, "epilogue-only", p);
  if (!CONV) {  // (the conv's outputs are codes: the int32 epilogue alone)
    MmaParams q = p;
    q.ep.acc32 = false;
    row<Cfg, 0>(name, "whole, int64 epi", q);
    row<Cfg, kProbeNoLoad | kProbeNoMma>(name, "int64 epi only", q);
  }
  row<Cfg, kProbeNoEpilogue, CONV>(name, "no-epilogue", p);
  row<Cfg, kProbeNoLoad | kProbeNoEpilogue, CONV>(name, "mma-only", p);
  row<Cfg, kProbeNoMma | kProbeNoEpilogue, CONV>(name, "loads-only", p);
}

template <class Cfg, class T = float, bool CONV = false>
std::vector<T> output(const MmaParams& p) {
  CHECK(cudaMemset(p.ep.out, 0xFF, sizeof(T) * p.M * p.N));  // NaN poison (float outputs)
  CHECK((launch<Cfg, 0, CONV>(p, 0)));
  CHECK(cudaDeviceSynchronize());
  std::vector<T> h(p.M * p.N);
  CHECK(cudaMemcpy(h.data(), p.ep.out, sizeof(T) * h.size(), cudaMemcpyDeviceToHost));
  return h;
}

// The device operands of one probed product (M x N x K, A of a_bytes), its outputs (out_bytes) and
// epilogue terms, freed with it. Zero points 0 and zero sums: acc = T + 128 * rowsum = T, which fits
// int32 as the int32 epilogue assumes (random sums would not be those of the codes, and its wrapping
// arithmetic would differ). Every scale is `scale`; the output zero point is 0 too.
struct Operands {
  uint8_t *a = nullptr, *b = nullptr, *out = nullptr;
  int64_t *rowsum = nullptr, *colsum = nullptr;
  int32_t *wzp = nullptr, *zp = nullptr;
  float *xs = nullptr, *ws = nullptr;
  MmaParams p;

  Operands(int64_t M, int64_t N, int64_t K, int64_t a_bytes, int64_t out_bytes, float scale, uint32_t seed) {
    CHECK(cudaMalloc(&a, a_bytes));
    CHECK(cudaMalloc(&b, N * K));
    CHECK(cudaMalloc(&out, out_bytes));
    CHECK(cudaMalloc(&rowsum, 8 * M));
    CHECK(cudaMalloc(&colsum, 8 * N));
    CHECK(cudaMalloc(&wzp, 4 * N));
    CHECK(cudaMalloc(&zp, 4));
    CHECK(cudaMalloc(&xs, 4));
    CHECK(cudaMalloc(&ws, 4 * N));
    fill_bytes<<<1024, 256>>>(a, a_bytes, seed);
    fill_bytes<<<1024, 256>>>(b, N * K, seed + 1);
    CHECK(cudaMemset(rowsum, 0, 8 * M));
    CHECK(cudaMemset(colsum, 0, 8 * N));
    CHECK(cudaMemset(wzp, 0, 4 * N));
    CHECK(cudaMemset(zp, 0, 4));
    const std::vector<float> s(N, scale);
    CHECK(cudaMemcpy(xs, s.data(), 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(ws, s.data(), 4 * N, cudaMemcpyHostToDevice));
    p.M = M, p.N = N, p.K = K;
    p.a = a, p.lx = 1;
    p.b = reinterpret_cast<const int8_t*>(b), p.ldb = K, p.b_plane = N * K, p.lw = 1;
    p.k_chunk = K;
    p.ep.out = out, p.ep.ldo = N, p.ep.rowsum = rowsum, p.ep.colsum = colsum, p.ep.wzp = wzp;
    p.ep.x_zp = zp, p.ep.K = K, p.ep.shift = 128, p.ep.x_scale = xs, p.ep.w_scale = ws;
    p.ep.out_scale = xs, p.ep.out_zp = zp, p.ep.out_bits = 8;
    p.ep.acc32 = epilogue_acc32(K, 8, 1, 1, false);
    CHECK(cudaDeviceSynchronize());
  }
  ~Operands() {
    for (void* q : {(void*)a, (void*)b, (void*)out, (void*)rowsum, (void*)colsum, (void*)wzp, (void*)zp, (void*)xs,
                    (void*)ws})
      cudaFree(q);
  }
};

void shape(int64_t M, int64_t N, int64_t K) {
  Operands o(M, N, K, M * K, 4 * M * N, 0.001f, 1);
  MmaParams p = o.p;
  p.lda = K, p.a_plane = M * K;
  p.ep.kind = kOutF32;

  MmaParams p64 = p;
  p64.ep.acc32 = false;
  const std::vector<float> want = output<WgCfg<1, 1>>(p64), got32 = output<WgCfg<1, 1>>(p);
  const bool same = std::memcmp(want.data(), got32.data(), sizeof(float) * want.size()) == 0;
  int64_t nan = 0;
  for (float v : want) nan += v != v;
  std::printf("%lldx%lldx%lld  the int32 epilogue's outputs (acc32 %d) %s the int64 one's; unwritten (NaN) "
              "outputs: %lld\n", (long long)M, (long long)N, (long long)K, int(p.ep.acc32),
              same ? "equal" : "DIFFER from", (long long)nan);
  variant<WgCfg<1, 1>>("2xn128", p);
  // Ping-pong consumers (DWQ_CUDA_GEMM=wgmma_pp): each warpgroup a 128 x 128 tile of its own, one's
  // epilogue beside the other's MMAs; its outputs against the int64 epilogue's, then its time whole
  // and without the epilogue (what overlapping the epilogue can reach).
  using Pp = WgCfg<1, 1, 128, true>;
  const std::vector<float> pp = output<Pp>(p);
  std::printf("%lldx%lldx%lld  the ping-pong kernel's outputs %s the int64 epilogue's\n", (long long)M,
              (long long)N, (long long)K,
              std::memcmp(want.data(), pp.data(), sizeof(float) * want.size()) == 0 ? "equal" : "DIFFER from");
  row<Pp, 0>("pp128", "whole", p);
  row<Pp, kProbeNoEpilogue>("pp128", "no-epilogue", p);
}

// The 3x3 conv of PreActResNet18 at batch 256 (64 -> 64 channels, 32x32, stride 1, pad 1) as the
// benchmark runs it: uint8 codes in (channels-last, read in place by the conv producer), requantized
// uint8 codes out. The cooperative tiles by stage, then the ping-pong ones whole and without the
// epilogue, their outputs against the cooperative ones'.
void conv3x3(int batch, int C, int N, int HW) {
  const int64_t M = int64_t(batch) * HW * HW, K = 9 * int64_t(C);
  Operands o(M, N, K, M * C, M * N, 1e-4f, 3);
  MmaParams p = o.p;
  p.C = C, p.H = p.W = p.OH = p.OW = HW, p.kh = p.kw = 3, p.pdh = p.pdw = 1;
  p.sw = C, p.sh = int64_t(HW) * C, p.sn = int64_t(HW) * HW * C;
  p.ep.kind = kOutU8;
  using Co = WgCfg<1, 1, 64>;
  using Pp = WgCfg<1, 1, 64, true>;
  const std::vector<uint8_t> want = output<Co, uint8_t, true>(p), got = output<Pp, uint8_t, true>(p);
  std::printf("conv3x3 b%d %d->%d %dx%d (%lldx%lldx%lld)  the ping-pong kernel's outputs %s the cooperative one's\n",
              batch, C, N, HW, HW, (long long)M, (long long)N, (long long)K,
              std::memcmp(want.data(), got.data(), want.size()) == 0 ? "equal" : "DIFFER from");
  variant<Co, true>("conv 2xn64", p);
  row<Pp, 0, true>("conv pp64", "whole", p);
  row<Pp, kProbeNoEpilogue, true>("conv pp64", "no-epilogue", p);
}
}  // namespace probe

int main(int argc, char** argv) {
  std::vector<int64_t> dims;
  for (int i = 1; i < argc; ++i) dims.push_back(std::atoll(argv[i]));
  if (dims.empty()) dims = {4096, 4096, 4096, 8192, 8192, 8192};
  if (dims.size() % 3 != 0) {
    std::fprintf(stderr, "usage: %s [M N K ...]\n", argv[0]);
    return 2;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
  for (size_t i = 0; i < dims.size(); i += 3) probe::shape(dims[i], dims[i + 1], dims[i + 2]);
  probe::conv3x3(256, 64, 64, 32);
  return 0;
}

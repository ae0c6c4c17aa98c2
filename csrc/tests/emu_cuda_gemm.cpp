// The tensor-core GEMM kernels of csrc/cuda run on the CPU (cuda_emu.h + the PTX of cuda_emu_ptx.h)
// and compared bit for bit with cpu::run_qgemm, the operands prepared as the binding prepares them:
//   qgemm_mma_kernel (mma.sync, the engine off Hopper): 8-bit matrix, 8-bit implicit conv, limbs;
//   qgemm_dp4a_kernel (a few rows, CUDA cores): every limb combination, K tails;
//   qgemm_wgmma_kernel (Hopper): tile widths 64 / 128 / 256, implicit conv (on the uint8 input in
//     place, and on its limb planes: 9..16-bit codes, the three limb kernels), the three limb
//     kernels in matrix mode, weights through repack_kmajor_kernel;
// over odd sizes, extreme zero points, split-K through the int64 workspace and the fused epilogue
// (affine, ReLU; float and requantized outputs);
// DWQ_EMU_SWEEP=n adds n random matrix and conv shapes for every kernel (150 ran clean when written).
// cp.async copies land at the wait that covers them or at issue (each kernel runs both ways), the
// shared-memory race check sees them and the ldmatrix reads, and an in-flight wgmma must find its
// shared memory unchanged at its wait, so a pipeline that reads or overwrites a stage too early
// fails here; qgemm_wgmma_tma_kernel (warp-specialized: mbarriers, TMA), cooperative and ping-pong,
// runs with its copies landing as early and as late as the hardware may. What it cannot show: that
// the hardware's fragment, descriptor and tensor-map layouts are the ones modelled (those follow the
// PTX ISA and the CUDA driver API), and anything about speed.
#include "cuda_emu.h"
#include "cuda_emu_ptx.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common/arith.h"
#include "check.h"
#include "emu_im2col.h"
#include "cpu/qgemm.h"
#include "cuda/qgemm_dp4a.cuh"
#include "cuda/qgemm_mma.cuh"
#include "cuda/qgemm_repack.cuh"
#include "cuda/qgemm_splitk.cuh"
#include "cuda/qgemm_wgmma.cuh"
#include "cuda/qgemm_wgmma_tma.cuh"

using namespace dwq;


static std::mt19937 rng(99);
static int rint(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

template <typename T>
static T* aligned(std::vector<uint8_t>& store, size_t n) {
  store.assign(n * sizeof(T) + 128, 0);
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(store.data()) + 127) / 128 * 128);
}

// One product: x codes (matrix [M][K], or a channels-last conv input), w codes [N][K], their zero
// points; outputs of the CUDA kernel and of the CPU engine.
struct Case {
  int64_t M = 0, N = 0, K = 0;
  int xb = 8, wb = 8;
  bool conv = false;
  bool conv_planes = false;  // conv: the input's limb planes (conv_planes_kernel), not the input in place
  // conv geometry
  int batch = 1, C = 16, H = 1, W = 1, kh = 1, kw = 1, st = 1, pd = 0, OH = 1, OW = 1;
  std::vector<int32_t> x, w, zw;
  int32_t zx = 0;
};

static Case make_case(int64_t M, int64_t N, int64_t K, int xb, int wb, bool extreme_zp) {
  Case c;
  c.M = M, c.N = N, c.K = K, c.xb = xb, c.wb = wb;
  auto codes = [&](int64_t n, int bits) {
    std::vector<int32_t> v(n);
    for (auto& q : v) q = rint(0, static_cast<int>(arith::max_code(bits)));
    return v;
  };
  c.x = codes(M * K, xb);
  c.w = codes(N * K, wb);
  c.zw = codes(N, wb);
  c.zx = extreme_zp ? static_cast<int32_t>(arith::max_code(xb)) : rint(0, static_cast<int>(arith::max_code(xb)));
  if (extreme_zp)
    for (auto& z : c.zw) z = 0;
  return c;
}

// 8-bit codes at their extremes (x all 255 but row 1; w 0 or 255 by column, zero points 0, 255 and
// 127): |acc| reaches 255 * 255 * K, the bound of the int32 epilogue (arith::acc_fits_int32).
static Case make_extreme(int64_t M, int64_t N, int64_t K) {
  Case c;
  c.M = M, c.N = N, c.K = K;
  c.x.assign(M * K, 255);
  std::fill(c.x.begin() + K, c.x.begin() + 2 * K, 0);
  c.w.resize(N * K);
  c.zw.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    c.zw[n] = n % 3 == 0 ? 0 : n % 3 == 1 ? 255 : 127;
    std::fill(c.w.begin() + n * K, c.w.begin() + (n + 1) * K, n % 2 ? 255 : 0);
  }
  return c;
}

static Case make_conv(int batch, int C, int H, int W, int k, int st, int N, int xb = 8, int wb = 8) {
  Case c;
  c.conv = true;
  c.conv_planes = xb > 8;
  c.batch = batch, c.C = C, c.H = H, c.W = W, c.kh = c.kw = k, c.st = st, c.pd = k / 2;
  c.OH = (H + 2 * c.pd - k) / st + 1;
  c.OW = (W + 2 * c.pd - k) / st + 1;
  c.M = int64_t(batch) * c.OH * c.OW;
  c.N = N;
  c.K = int64_t(k) * k * C;
  c.xb = xb, c.wb = wb;
  const int qx = static_cast<int>(arith::max_code(xb)), qw = static_cast<int>(arith::max_code(wb));
  c.x.resize(size_t(batch) * H * W * C);
  for (auto& q : c.x) q = rint(0, qx);
  c.w.resize(size_t(N * c.K));
  for (auto& q : c.w) q = rint(0, qw);
  c.zw.resize(N);
  for (auto& q : c.zw) q = rint(0, qw);
  c.zx = rint(0, qx);
  return c;
}

// The logical activation rows (im2col with zx padding for a conv).
static std::vector<int64_t> rows_of(const Case& c) {
  if (!c.conv) return std::vector<int64_t>(c.x.begin(), c.x.end());
  cuda::ActParams p;
  p.M = c.M, p.K = c.K, p.C = c.C, p.H = c.H, p.W = c.W, p.OH = c.OH, p.OW = c.OW, p.kh = c.kh, p.kw = c.kw;
  p.sth = p.stw = c.st, p.pdh = p.pdw = c.pd;
  p.sc = 1, p.sw = c.C, p.sh = int64_t(c.W) * c.C, p.sn = int64_t(c.H) * c.W * c.C;
  return im2col(c.x, p, c.zx);
}

// The int32 epilogue where the launcher would run it, unless this is set (then the int64 one).
static bool general_epilogue = false;

// Runs the chosen kernel as run_engine (qgemm.cu) would, and compares with cpu::run_qgemm.
template <class Launch>
static void run_case(const Case& c, int kind, int64_t k_chunk, const char* what, Launch&& launch_kernel,
                     bool hopper_rows = false) {
  const int lx = cpu::limbs_for_bits(c.xb), lw = cpu::limbs_for_bits(c.wb);
  const cpu::PackedLayout L = cpu::packed_layout(c.N, c.K, c.wb);
  std::vector<uint8_t> blob_store;
  int8_t* blob = aligned<int8_t>(blob_store, static_cast<size_t>(L.bytes));
  CHECK(cpu::pack_weight(c.w.data(), false, c.N, c.K, c.K, 1, c.zw.data(), c.wb, blob) == 0, "pack");

  const std::vector<int64_t> a = rows_of(c);
  std::vector<int64_t> rowsum(c.M, 0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t k = 0; k < c.K; ++k) rowsum[m] += a[m * c.K + k];
  // The Hopper kernels of one limb each sum their rows by MMA (WgRows); unsplit, they must not read
  // these (the binding may leave them unwritten), so they are garbage here.
  if (hopper_rows && lx == 1 && lw == 1 && c.K <= k_chunk) rowsum.assign(c.M, 0x5A5A5A5A5A5ALL);

  cuda::MmaParams p;
  p.M = c.M, p.N = c.N, p.K = c.K, p.lx = lx;
  std::vector<uint8_t> a_store;
  if (c.conv) {  // implicit conv: the channels-last uint8 input itself, or its lx limb planes
    const size_t n = c.x.size(), planes = c.conv_planes ? static_cast<size_t>(lx) : 1;
    uint8_t* xin = aligned<uint8_t>(a_store, n * planes);
    for (size_t ia = 0; ia < planes; ++ia)
      for (size_t i = 0; i < n; ++i) xin[ia * n + i] = static_cast<uint8_t>(c.x[i] >> (8 * ia));
    p.a = xin;
    p.a_plane = c.conv_planes ? static_cast<int64_t>(n) : 0;
    p.C = c.C, p.H = c.H, p.W = c.W, p.OH = c.OH, p.OW = c.OW, p.kh = c.kh, p.kw = c.kw;
    p.sth = p.stw = c.st, p.pdh = p.pdw = c.pd;
    p.sw = c.C, p.sh = int64_t(c.W) * c.C, p.sn = int64_t(c.H) * c.W * c.C;
  } else {
    // limb planes [lx][M][lda] (act_rows_kernel's output), or, for one limb, the caller's uint8 rows
    // read in place (qgemm.cu's direct_matrix: any 16-byte multiple lda >= K, other data after K).
    // So lda is wider than K needs and the bytes past K are not zeros here: a kernel that addressed
    // rows by K instead of lda would fail (a read past K adds nothing: the weights there are zeros).
    p.lda = (c.K + 15) / 16 * 16 + (lx == 1 ? 32 : 0);
    p.a_plane = c.M * p.lda;
    uint8_t* planes = aligned<uint8_t>(a_store, static_cast<size_t>(lx * p.a_plane));
    for (int64_t i = 0; i < lx * p.a_plane; ++i) planes[i] = static_cast<uint8_t>(0xC5u ^ static_cast<unsigned>(i));
    for (int ia = 0; ia < lx; ++ia)
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t k = 0; k < c.K; ++k) planes[ia * p.a_plane + m * p.lda + k] = (a[m * c.K + k] >> (8 * ia)) & 255;
    p.a = planes;
  }
  p.b = blob + L.data_off, p.Kp = L.Kp, p.Npad = L.Npad, p.lw = lw;
  p.k_chunk = k_chunk;

  std::vector<float> w_scale(c.N), aff(c.N), bias(c.N), mult(c.N);
  for (int64_t n = 0; n < c.N; ++n) {
    w_scale[n] = 1e-3f * static_cast<float>(rint(1, 50));
    aff[n] = 0.5f + 0.01f * static_cast<float>(rint(0, 100));
    bias[n] = 0.01f * static_cast<float>(rint(-100, 100));
  }
  const float sx = 0.03f, out_scale = 0.7f;
  const int32_t out_zp = 5;
  // the CPU binding's multiplier: (s_x * s_w[n]) * affine_scale[n] in float32
  for (int64_t n = 0; n < c.N; ++n) mult[n] = arith::mul_rn(arith::mul_rn(w_scale[n], sx), aff[n]);
  const int32_t zx = c.zx;
  std::vector<int64_t> o64(c.M * c.N, -3), ws(c.M * c.N, 0);
  std::vector<float> of(c.M * c.N, -3.f);
  std::vector<uint8_t> o8(c.M * c.N, 3);
  std::vector<int32_t> o32(c.M * c.N, -3);
  auto out_of = [&](auto& i64, auto& f32, auto& u8, auto& i32) -> void* {
    return kind == cuda::kOutAccI64 ? static_cast<void*>(i64.data())
           : kind == cuda::kOutF32  ? static_cast<void*>(f32.data())
           : kind == cuda::kOutU8   ? static_cast<void*>(u8.data())
                                    : static_cast<void*>(i32.data());
  };
  const int out_bits = kind == cuda::kOutI32 ? 12 : 8;  // (codes of more than 8 bits come out as int32)
  cuda::EpiParams& e = p.ep;
  e.kind = kind;
  e.out = out_of(o64, of, o8, o32);
  e.ldo = c.N;
  e.rowsum = rowsum.data();
  e.colsum = reinterpret_cast<const int64_t*>(blob + L.colsum_off);
  e.wzp = reinterpret_cast<const int32_t*>(blob + L.zp_off);
  e.x_zp = &zx;
  e.K = c.K;
  e.shift = 128 * (lw == 2 ? 257 : 1);
  e.w_zp_shifted = reinterpret_cast<const int32_t*>(blob + cpu::kHeaderZpShiftedOff);
  e.x_scale = &sx;
  e.w_scale = w_scale.data();
  e.aff_scale = aff.data();
  e.aff_bias = bias.data();
  e.relu = true;
  e.out_scale = &out_scale;
  e.out_zp = &out_zp;
  e.out_bits = out_bits;
  const bool split = c.K > k_chunk;
  if (split) {
    e.ws = ws.data();
    e.kind = cuda::kOutPartialT;
  }
  e.acc32 = cuda::epilogue_acc32(c.K, c.xb, lx, lw, split) && !general_epilogue;
  launch_kernel(p);
  if (split) {  // the split-K epilogue, as the binding launches it
    cuda::EpiParams fin = e;
    fin.kind = kind;
    cuda_emu::launch(dim3(3), dim3(128), cuda::splitk_epilogue_kernel, fin, c.M, c.N);
  }

  cpu::PackedWeightView v;
  CHECK(cpu::parse_packed_weight(blob, L.bytes, &v), "parse");
  cpu::ActSource as;
  as.x = c.x.data();
  as.is_u8 = false;
  as.zx = c.zx;
  as.bits = c.xb;
  if (c.conv) {
    as.is_conv = true;
    as.batch = c.batch, as.H = c.H, as.W = c.W, as.C = c.C;
    as.sc = 1, as.sw = c.C, as.sh = int64_t(c.W) * c.C, as.sn = int64_t(c.H) * c.W * c.C;
    as.kh = c.kh, as.kw = c.kw, as.stride_h = as.stride_w = c.st, as.pad_h = as.pad_w = c.pd;
    as.OH = c.OH, as.OW = c.OW;
  } else {
    as.sm = c.K;
    as.sk = 1;
  }
  cpu::Epilogue ce;
  ce.kind = static_cast<cpu::OutKind>(kind);
  std::vector<int64_t> c64(c.M * c.N);
  std::vector<float> cf(c.M * c.N);
  std::vector<uint8_t> c8(c.M * c.N);
  std::vector<int32_t> c32(c.M * c.N);
  ce.out = out_of(c64, cf, c8, c32);
  ce.ldo = c.N;
  ce.mult = mult.data();
  ce.bias = bias.data();
  ce.relu = true;
  ce.out_scale = out_scale;
  ce.out_zp = out_zp;
  ce.out_bits = out_bits;
  const cpu::GemmPlan plan = cpu::plan_qgemm(c.M, v, c.xb, 1);
  cpu::run_qgemm(cpu::Isa::scalar, plan, as, v, ce, 0, plan.items());
  const bool same = kind == cuda::kOutAccI64 ? o64 == c64
                    : kind == cuda::kOutF32  ? std::memcmp(of.data(), cf.data(), of.size() * 4) == 0
                    : kind == cuda::kOutU8   ? o8 == c8
                                             : o32 == c32;
  CHECK(same, "%s: M %lld N %lld K %lld bits %d x %d conv %d (planes %d) kind %d k_chunk %lld differs from "
        "cpu::run_qgemm", what, (long long)c.M, (long long)c.N, (long long)c.K, c.xb, c.wb, c.conv, c.conv_planes, kind,
        (long long)k_chunk);
}

// ---------------------------------------------------------------- mma.sync
// The launcher's choice (mma_dispatch) without its CUDA launch.
template <class Cfg, bool CONV>
struct EmuLaunchMma {
  static cudaError_t run(const cuda::MmaParams& p, cudaStream_t) {
    dim3 grid;
    CHECK(cuda::tile_grid<Cfg>(p, &grid), "grid");
    cuda_emu::launch_smem(grid, dim3(cuda::kThreads), Cfg::SMEM, cuda::qgemm_mma_kernel<Cfg, CONV>, p);
    return cudaSuccess;
  }
};

// Runs a cp.async-fed kernel with its copies landing late (at the covering wait), then early (at issue).
template <class Run>
static void both_landings(Run&& run) {
  for (bool early : {false, true}) {
    cuda::cp_async_land_early = early;
    run(early ? " (copies land early)" : "");
  }
  cuda::cp_async_land_early = false;
}

static void run_mma(const Case& c, int kind, int64_t k_chunk) {
  const bool limb = c.xb > 8 || c.wb > 8;
  if (limb && c.conv) {  // the launcher never asks: limbs run in matrix mode here (im2col planes)
    CHECK(cuda::mma_dispatch<EmuLaunchMma>(cuda::MmaParams{}, true, true, nullptr) == cudaErrorInvalidValue,
          "mma_dispatch ran a limb conv");
    return;
  }
  both_landings([&](const char* when) {
    const std::string what = std::string(limb ? "mma limb" : (c.conv ? "mma conv" : "mma 8-bit")) + when;
    run_case(c, kind, k_chunk, what.c_str(), [&](const cuda::MmaParams& p) {
      cuda::mma_dispatch<EmuLaunchMma>(p, limb, c.conv, nullptr);
    });
  });
}

// ---------------------------------------------------------------- dp4a (a few rows, matrix mode)
static void run_dp4a(const Case& c, int kind, int64_t k_chunk) {
  const bool limb = c.xb > 8 || c.wb > 8;
  run_case(c, kind, k_chunk, "dp4a", [&](const cuda::MmaParams& p) {
    const dim3 grid(static_cast<unsigned>(p.Npad / 64), static_cast<unsigned>((p.M + cuda::kDpRows - 1) / cuda::kDpRows),
                    static_cast<unsigned>((p.K + p.k_chunk - 1) / p.k_chunk));
    const dim3 block(cuda::kDpThreads);
    if (!limb)
      cuda_emu::launch(grid, block, cuda::qgemm_dp4a_kernel<1, 1>, p);
    else if (p.lx == 2)
      cuda_emu::launch(grid, block, p.lw == 2 ? cuda::qgemm_dp4a_kernel<2, 2> : cuda::qgemm_dp4a_kernel<2, 1>, p);
    else
      cuda_emu::launch(grid, block, cuda::qgemm_dp4a_kernel<1, 2>, p);
  });
}

// ---------------------------------------------------------------- wgmma
// The K-major weight copy the wgmma kernels read, made by repack_kmajor_kernel as the binding runs
// it (in store), and p pointed at it.
static void kmajor_weights(cuda::MmaParams& p, std::vector<uint8_t>& store) {
  const int64_t ldb = (p.K + 15) / 16 * 16;
  int8_t* bk = aligned<int8_t>(store, static_cast<size_t>(p.lw * p.N * ldb));
  cuda_emu::launch(dim3(4), dim3(256), cuda::repack_kmajor_kernel, p.b, p.N, p.Npad, p.Kp, p.lw, bk, ldb);
  p.b = bk, p.ldb = ldb, p.b_plane = p.N * ldb;
}

// The launcher's choice (wg_dispatch) without its CUDA launch: the same Cfg for p.
template <class Cfg, bool CONV>
struct EmuLaunch {
  static cudaError_t run(cuda::MmaParams p, cudaStream_t) {
    std::vector<uint8_t> store;
    kmajor_weights(p, store);
    dim3 grid;
    CHECK(cuda::tile_grid<Cfg>(p, &grid), "grid");
    cuda_emu::launch_smem(grid, dim3(Cfg::THREADS), Cfg::SMEM, cuda::qgemm_wgmma_kernel<Cfg, CONV>, p);
    return cudaSuccess;
  }
};

static void run_wgmma(const Case& c, int kind, int64_t k_chunk) {
  const bool limb = c.xb > 8 || c.wb > 8;
  both_landings([&](const char* when) {
    run_case(c, kind, k_chunk, (std::string("wgmma") + when).c_str(), [&](const cuda::MmaParams& p) {
      CHECK((cuda::wg_dispatch<EmuLaunch, true>(p, limb, c.conv, nullptr) == cudaSuccess), "wg_dispatch");
    }, true);
  });
}

// ---------------------------------------------------------------- wgmma_tma
template <class Cfg, bool CONV>
struct EmuLaunchTma {
  static cudaError_t run(cuda::MmaParams p, cudaStream_t) {
    std::vector<uint8_t> store;
    kmajor_weights(p, store);
    // the launcher's tensor-map geometry (a_box / b_box), encoded for the emulation
    const CUtensorMap ma = CONV ? CUtensorMap{} : cuda_emu::encode_map(p.a, cuda::a_box<Cfg>(p));
    const CUtensorMap mb = cuda_emu::encode_map(p.b, cuda::b_box<Cfg>(p));
    // a persistent grid of 2 CTAs, so that a CTA runs several work items through one stage ring
    const dim3 grid = cuda::wg_persistent_grid<Cfg>(p, 2);
    cuda_emu::launch_smem(grid, dim3(Cfg::THREADS + 128), Cfg::SMEM, cuda::qgemm_wgmma_tma_kernel<Cfg, CONV>, p, ma, mb);
    return cudaSuccess;
  }
};

static void run_wgmma_tma(const Case& c, int kind, int64_t k_chunk) {
  const bool limb = c.xb > 8 || c.wb > 8;
  if (limb && c.conv) {  // (the launcher takes the cp.async wgmma kernel for those)
    CHECK(cuda::wg_dispatch<EmuLaunchTma>(cuda::MmaParams{}, true, true, nullptr) == cudaErrorInvalidValue,
          "the TMA kernel's dispatch ran a limb conv");
    return;
  }
  for (bool late : {false, true}) {
    cuda_emu::tma_land_late = late;
    cuda::cp_async_land_early = !late;  // (the conv producer's A tiles)
    run_case(c, kind, k_chunk, late ? "wgmma_tma (copies land late)" : "wgmma_tma (copies land early)",
             [&](const cuda::MmaParams& p) { cuda::wg_dispatch<EmuLaunchTma>(p, limb, c.conv, nullptr); }, true);
    // ping-pong consumers (one limb each): the two warpgroups take the CTA's items in turn
    if (!limb)
      run_case(c, kind, k_chunk, late ? "wgmma_pp (copies land late)" : "wgmma_pp (copies land early)",
               [&](const cuda::MmaParams& p) { cuda::wg_dispatch_pp<EmuLaunchTma>(p, c.conv, nullptr); }, true);
  }
  cuda::cp_async_land_early = false;
}

int main() {
  const int64_t big = int64_t{1} << 20;
  // mma.sync: tile edges (128 x 128 / 256 x 64 / 64 x 128, 64-deep stages), limbs, split-K (conv too),
  // the three output kinds
  run_mma(make_case(130, 70, 200, 8, 8, false), cuda::kOutAccI64, big);
  run_mma(make_case(300, 64, 200, 8, 8, true), cuda::kOutF32, big);
  run_mma(make_case(257, 40, 130, 4, 8, false), cuda::kOutAccI64, 64);
  run_mma(make_conv(2, 64, 9, 9, 3, 1, 64), cuda::kOutAccI64, big);
  run_mma(make_conv(1, 32, 6, 6, 1, 2, 33), cuda::kOutF32, big);
  run_mma(make_case(129, 129, 65, 4, 2, true), cuda::kOutF32, big);
  run_mma(make_case(40, 20, 300, 8, 8, false), cuda::kOutAccI64, 64);  // 5 z-slices
  run_mma(make_case(65, 130, 100, 16, 8, false), cuda::kOutAccI64, big);
  run_mma(make_case(33, 70, 150, 12, 16, true), cuda::kOutF32, 64);
  run_mma(make_conv(2, 32, 5, 5, 3, 1, 40), cuda::kOutAccI64, big);
  run_mma(make_conv(1, 16, 7, 7, 7, 2, 70), cuda::kOutF32, big);
  run_mma(make_conv(1, 48, 6, 6, 1, 2, 20), cuda::kOutAccI64, big);
  run_mma(make_conv(1, 64, 5, 5, 3, 1, 70), cuda::kOutF32, 128);  // conv split-K: 576 = 4.5 slices
  run_mma(make_conv(2, 32, 6, 6, 3, 2, 40), cuda::kOutU8, 64);    // from a tap's middle, requantized
  run_mma(make_case(300, 40, 100, 8, 8, false), cuda::kOutU8, big);
  run_mma(make_case(100, 70, 700, 8, 8, false), cuda::kOutF32, big);  // 11 k-tiles: stages refilled in the loop
  run_mma(make_case(70, 40, 900, 12, 8, false), cuda::kOutAccI64, big);
  // dp4a: up to 8 rows, every limb combination, K tails, the three output kinds, split-K
  const int dp4a_cases[][5] = {  // M, N, K, x bits, w bits
      {1, 70, 1, 8, 8},     {3, 64, 3, 2, 2},     {8, 130, 67, 8, 16}, {5, 5, 130, 16, 8},
      {7, 65, 129, 16, 16}, {4, 200, 250, 12, 5}, {2, 100, 700, 8, 8}};
  for (const auto& d : dp4a_cases)
    for (int kind : {cuda::kOutAccI64, cuda::kOutF32, cuda::kOutU8})
      for (int64_t k_chunk : {big, int64_t{64}}) run_dp4a(make_case(d[0], d[1], d[2], d[3], d[4], false), kind, k_chunk);
  // wgmma: tile widths 64 / 128 / 256, limbs, split-K, conv
  run_wgmma(make_case(150, 64, 200, 8, 8, false), cuda::kOutAccI64, big);
  run_wgmma(make_case(129, 100, 130, 8, 8, true), cuda::kOutF32, big);
  run_wgmma(make_case(70, 300, 200, 8, 8, false), cuda::kOutAccI64, big);
  run_wgmma(make_case(129, 130, 520, 8, 8, false), cuda::kOutAccI64, 256);  // 3 z-slices
  run_wgmma(make_case(65, 129, 300, 16, 16, false), cuda::kOutAccI64, big);
  run_wgmma(make_case(33, 70, 100, 8, 16, true), cuda::kOutF32, big);
  run_wgmma(make_case(40, 20, 150, 12, 8, false), cuda::kOutAccI64, 128);
  run_wgmma(make_conv(2, 32, 5, 5, 3, 1, 40), cuda::kOutAccI64, big);
  run_wgmma(make_conv(1, 16, 6, 6, 7, 2, 200), cuda::kOutF32, 256);
  run_wgmma(make_conv(2, 16, 5, 5, 3, 2, 96), cuda::kOutAccI64, big);
  run_wgmma(make_case(130, 70, 200, 12, 8, false), cuda::kOutU8, 128);
  // wgmma, implicit conv on limb planes (x of 9..16 bits) or in place with limb weights; 8-bit
  // codes from planes (int32 codes); padding reads each limb of zx; split-K from a tap's middle
  run_wgmma(make_conv(2, 32, 5, 5, 3, 1, 40, 16, 16), cuda::kOutAccI64, big);
  run_wgmma(make_conv(1, 16, 7, 7, 7, 2, 70, 12, 8), cuda::kOutF32, big);
  run_wgmma(make_conv(2, 48, 6, 6, 1, 2, 33, 8, 16), cuda::kOutAccI64, big);
  run_wgmma(make_conv(1, 64, 5, 5, 3, 1, 130, 16, 9), cuda::kOutU8, 256);
  run_wgmma(make_conv(2, 16, 6, 6, 3, 2, 20, 10, 16), cuda::kOutI32, 128);
  {
    Case cv = make_conv(2, 32, 5, 5, 3, 1, 70, 6, 8);
    cv.conv_planes = true;
    run_wgmma(cv, cuda::kOutF32, big);
  }
  run_mma(make_conv(1, 16, 5, 5, 3, 1, 20, 16, 16), cuda::kOutAccI64, big);
  run_wgmma_tma(make_conv(1, 16, 5, 5, 3, 1, 20, 16, 16), cuda::kOutAccI64, big);
  // wgmma_tma: the same shapes (matrix by TMA, conv by cp.async producers + TMA weights)
  run_wgmma_tma(make_case(150, 64, 200, 8, 8, false), cuda::kOutAccI64, big);
  run_wgmma_tma(make_case(129, 100, 130, 8, 8, true), cuda::kOutF32, big);
  run_wgmma_tma(make_case(70, 300, 700, 8, 8, false), cuda::kOutAccI64, big);  // 6 stages: every buffer reused
  run_wgmma_tma(make_case(129, 130, 520, 8, 8, false), cuda::kOutAccI64, 256);
  run_wgmma_tma(make_case(65, 129, 600, 16, 16, false), cuda::kOutAccI64, big);
  run_wgmma_tma(make_case(33, 70, 100, 8, 16, true), cuda::kOutF32, big);
  run_wgmma_tma(make_case(40, 20, 150, 12, 8, false), cuda::kOutAccI64, 128);
  run_wgmma_tma(make_conv(2, 32, 5, 5, 3, 1, 40), cuda::kOutAccI64, big);
  run_wgmma_tma(make_conv(1, 16, 6, 6, 7, 2, 200), cuda::kOutF32, 256);
  run_wgmma_tma(make_conv(2, 64, 5, 5, 3, 1, 96), cuda::kOutAccI64, big);  // 576 = 4.5 stages
  run_wgmma_tma(make_case(130, 70, 200, 8, 8, true), cuda::kOutU8, big);
  run_wgmma_tma(make_conv(1, 32, 6, 6, 3, 1, 40), cuda::kOutU8, 128);
  // several work items per CTA (persistent): 1, 2 and 3-5 stages per item, tiles and K slices
  run_wgmma_tma(make_case(520, 200, 300, 8, 8, true), cuda::kOutAccI64, big);
  run_wgmma_tma(make_conv(2, 16, 13, 13, 3, 1, 72), cuda::kOutF32, big);
  run_wgmma_tma(make_conv(3, 16, 9, 9, 1, 1, 20), cuda::kOutAccI64, big);
  run_wgmma_tma(make_conv(1, 64, 12, 12, 3, 1, 64), cuda::kOutAccI64, 256);
  // the int32 epilogue with an odd row length (scalar stores), and the int64 one for one limb each
  run_wgmma_tma(make_case(67, 131, 200, 8, 8, false), cuda::kOutF32, big);
  run_wgmma(make_case(67, 131, 200, 4, 8, true), cuda::kOutU8, big);
  run_wgmma_tma(make_case(150, 70, 300, 8, 8, false), cuda::kOutI32, big);  // codes of 12 bits out
  run_wgmma_tma(make_case(65, 129, 200, 16, 8, false), cuda::kOutI32, big);
  run_mma(make_case(130, 70, 200, 8, 8, false), cuda::kOutI32, big);
  // the largest K of the int32 epilogue and the first beyond it, at the extremes: a bound of the
  // arithmetic, which the plain build checks bit for bit; under ASan + UBSan these two took 100 s of the
  // test's 196 (over 500 pipeline stages each), a third of the sanitized ctest in CI
#ifndef __SANITIZE_ADDRESS__
  run_wgmma_tma(make_extreme(3, 70, 33025), cuda::kOutAccI64, big);
  run_wgmma_tma(make_extreme(3, 70, 33026), cuda::kOutAccI64, big);
#endif
  general_epilogue = true;
  run_wgmma(make_case(129, 100, 130, 8, 8, true), cuda::kOutF32, big);
  run_wgmma(make_case(150, 70, 300, 8, 8, false), cuda::kOutI32, big);
  run_wgmma_tma(make_case(520, 200, 300, 8, 8, true), cuda::kOutAccI64, big);
  run_wgmma_tma(make_conv(1, 32, 6, 6, 3, 1, 40), cuda::kOutU8, big);
  general_epilogue = false;
  // DWQ_EMU_SWEEP=n: n more random shapes per kernel (matrix: any widths; conv: C % 16 == 0, 8-bit, and
  // any widths on the wgmma kernel)
  const char* sweep = std::getenv("DWQ_EMU_SWEEP");
  for (int i = 0, n = sweep ? std::atoi(sweep) : 0; i < n; ++i) {
    const int bits[] = {2, 4, 8, 9, 12, 16};
    const int xb = bits[rint(0, 5)], wb = bits[rint(0, 5)];
    const int64_t M = rint(1, 300), N = rint(1, 300), K = rint(1, 1200), chunk = rint(0, 3) == 0 ? 128 * rint(1, 4) : big;
    const int kinds[] = {cuda::kOutAccI64, cuda::kOutF32, cuda::kOutU8}, kind = kinds[rint(0, 2)];
    const bool zp = rint(0, 4) == 0;
    run_mma(make_case(M, N, K, xb, wb, zp), kind, chunk);
    run_wgmma(make_case(M, N, K, xb, wb, zp), kind, chunk);
    run_wgmma_tma(make_case(M, N, K, xb, wb, zp), kind, chunk);
    const int k = rint(0, 2) == 0 ? 1 : (rint(0, 1) ? 3 : 7);
    const Case cv = make_conv(rint(1, 2), 16 * rint(1, 4), rint(k > 3 ? 4 : 2, 9), rint(k > 3 ? 4 : 2, 9), k, rint(1, 2),
                              static_cast<int>(rint(1, 300)));
    run_mma(cv, kind, chunk);
    run_wgmma(cv, kind, chunk);
    run_wgmma_tma(cv, kind, chunk);
    // the same geometry at other widths: the wgmma kernel's conv on limb planes
    Case lc = make_conv(cv.batch, cv.C, cv.H, cv.W, k, cv.st, static_cast<int>(cv.N), xb, wb);
    lc.conv_planes = lc.conv_planes || rint(0, 3) == 0;
    run_wgmma(lc, kind, chunk);
  }
  CHECK(cuda_emu::violations.load() == 0, "%lld emulated-PTX contract violations (e.g. a stage overwritten while "
        "a wgmma read it, or a shared-memory race)", (long long)cuda_emu::violations.load());
  return checks_done("emulated CUDA GEMM kernels: all checks passed");
}

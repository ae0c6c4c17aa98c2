// The CUDA kernels of csrc/cuda outside the GEMMs (those: emu_cuda_gemm.cpp), run on the CPU through
// cuda_emu.h (every CUDA thread a host thread, CUDA's barriers, shuffles, atomics and __shared__),
// compared bit for bit with the torch-free CPU kernels over random cases:
//   fake_quant_kernel (float, double, half, bfloat16; per tensor and per channel; vector and
//     scalar paths, tails, NaN)            vs cpu::fake_quant_rows
//   act_qparams_kernel (train / eval, EMA, several blocks) and weight_fake_quant_kernel
//                                          vs cpu::range_of + arith, cpu::weight_fake_quant_rows
//   quantize_act_kernel                    vs cpu::quantize_act
//   affine_quantize_act_kernel (NCHW, channels-last, ReLU, NaN)
//                                          vs cpu::affine_quantize_act
//   add_relu_kernel (tails, NaN, inf, -0, b aliasing a)
//                                          vs cpu::add_relu
//   quantize_act_kernel, affine_quantize_act_kernel given a residual (NCHW, channels-last, ReLU,
//     NaN, aliasing)                       vs cpu::add_relu + quantize_act, add_to + affine_quantize_act
//   pack_words_kernel + pack_colsum_kernel vs the bytes of cpu::pack_weight
//   act_rows_kernel (with planes, and sums only over uint8 rows read in place), pixel_sums_kernel,
//     conv_planes_kernel, conv_rowsum_kernel (row sums, planes, range counts)
//                                          vs the definitions
//   check_params_kernel                    vs the flags each bad argument must raise
// What this proves: the kernels' indexing, bounds, reductions and arithmetic. What it cannot:
// anything about the hardware (memory model, speed); that needs a GPU run (benchmarks/gpu_check.py). Built only where the CUDA headers are (CMakeLists.txt).
#include "cuda_emu.h"  // first: it defines the CUDA built-ins the kernels use

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/arith.h"
#include "cpu/fake_quant.h"
#include "check.h"
#include "emu_im2col.h"
#include "cpu/qgemm.h"
#include "cpu/quantizer_fused.h"
#include "cpu/residual.h"
#include "cuda/fake_quant.cuh"
#include "cuda/qgemm_prep.cuh"
#include "cuda/quantizer_fused.cuh"
#include "cuda/tile_order.cuh"

using namespace dwq;
using cuda_emu::launch;


static std::mt19937 rng(1234);
static int rint(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
static float rnorm() { return std::normal_distribution<float>(0.f, 2.f)(rng); }

template <typename A, typename B>
static bool same_bits(const A* a, const B* b, size_t n) {
  static_assert(sizeof(A) == sizeof(B), "same storage size");
  return std::memcmp(a, b, n * sizeof(A)) == 0;
}

// 16-byte aligned storage for n elements of T starting at element offset `shift` (0: aligned).
template <typename T>
struct Buf {
  std::vector<uint8_t> raw;
  T* p = nullptr;
  Buf(size_t n, size_t shift = 0) : raw((n + shift) * sizeof(T) + 64, 0) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(raw.data()) + 63) / 64 * 64;
    p = reinterpret_cast<T*>(a) + shift;
  }
};

// ---------------------------------------------------------------- fake quantization
template <typename T, typename C>
static void fake_quant_case(int64_t outer, int64_t C_, int64_t inner, bool per_channel, size_t shift, int bits) {
  const int64_t n = outer * C_ * inner, nch = per_channel ? C_ : 1;
  Buf<T> x(n, shift), out(n, shift);
  Buf<C> xc(n), outc(n);
  for (int64_t i = 0; i < n; ++i) {
    float v = rnorm();
    if (i % 97 == 5) v = std::nanf("");
    if constexpr (std::is_same_v<T, __half>) {
      x.p[i] = __float2half_rn(v);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      x.p[i] = __float2bfloat16_rn(v);
    } else {
      x.p[i] = static_cast<T>(v);
    }
  }
  std::memcpy(xc.p, x.p, n * sizeof(T));
  std::vector<float> scale(nch);
  std::vector<int32_t> zp(nch);
  for (int64_t c = 0; c < nch; ++c) {
    scale[c] = 0.01f + 0.05f * static_cast<float>(rint(0, 100)) / 100.f;
    zp[c] = rint(0, static_cast<int>(arith::max_code(bits)));
  }
  std::vector<int32_t> codes(n), codes_cpu(n);
  constexpr int V = 16 / sizeof(T) > 0 ? static_cast<int>(16 / sizeof(T)) : 1;
  const bool vec = shift == 0 && (!per_channel || inner % V == 0);
  const int64_t Cv = per_channel ? C_ : 1, innerv = per_channel ? inner : n;
  auto run = [&](auto kernel) {
    launch(dim3(3), dim3(64), kernel, const_cast<const T*>(x.p), out.p, codes.data(),
           const_cast<const float*>(scale.data()), const_cast<const int32_t*>(zp.data()), n, Cv, innerv, bits);
  };
  if (vec) {
    if (per_channel)
      run(cuda::fake_quant_kernel<T, V, true>);
    else
      run(cuda::fake_quant_kernel<T, V, false>);
  } else {
    if (per_channel)
      run(cuda::fake_quant_kernel<T, 1, true>);
    else
      run(cuda::fake_quant_kernel<T, 1, false>);
  }
  cpu::fake_quant_rows<C>(cpu::Isa::scalar, xc.p, outc.p, codes_cpu.data(), scale.data(), zp.data(), Cv,
                          innerv, 0, n / innerv, bits);
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(out.p + i, outc.p + i, sizeof(T)) != 0) {
      uint64_t a = 0, b = 0, xi = 0;
      std::memcpy(&a, out.p + i, sizeof(T));
      std::memcpy(&b, outc.p + i, sizeof(T));
      std::memcpy(&xi, x.p + i, sizeof(T));
      std::fprintf(stderr, "  first difference at %lld: x %llx, cuda %llx, cpu %llx\n", (long long)i, (unsigned long long)xi,
                   (unsigned long long)a, (unsigned long long)b);
      break;
    }
  CHECK(same_bits(out.p, outc.p, n), "fake_quant %s outputs differ (outer %lld C %lld inner %lld pc %d shift %zu bits %d)",
        typeid(T).name(), (long long)outer, (long long)C_, (long long)inner, per_channel, shift, bits);
  CHECK(codes == codes_cpu, "fake_quant codes differ");
}

static void test_fake_quant() {
  for (int bits : {2, 4, 8, 13, 16}) {
    fake_quant_case<float, float>(3, 5, 24, true, 0, bits);
    fake_quant_case<float, float>(2, 3, 7, true, 0, bits);    // inner % V != 0: scalar path
    fake_quant_case<float, float>(1, 1, 1001, false, 0, bits);  // tail
    fake_quant_case<float, float>(1, 1, 333, false, 1, bits);   // misaligned: V = 1
    fake_quant_case<double, double>(2, 4, 10, true, 0, bits);
    fake_quant_case<__half, cpu::Float16>(2, 3, 16, true, 0, bits);
    fake_quant_case<__nv_bfloat16, cpu::BFloat16>(1, 1, 517, false, 0, bits);
    fake_quant_case<__nv_bfloat16, cpu::BFloat16>(4, 2, 8, true, 3, bits);
    // Over 4 vectors per thread of the 3 x 64 emulated threads: steps of 4 vectors, then single
    // vectors, then the tail elements.
    fake_quant_case<float, float>(1, 1, 2 * 4 * 192 * 4 + 5 * 4 + 3, false, 0, bits);
    fake_quant_case<float, float>(4, 3, 520, true, 0, bits);
    fake_quant_case<__half, cpu::Float16>(1, 1, 4 * 192 * 8 + 77, false, 0, bits);
  }
}

// ---------------------------------------------------------------- fused quantizers
static void test_act_qparams() {
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t n = trial == 2 ? 0 : rint(1, 3000);  // 2: eval mode with a tracked range
    const int bits = rint(2, 16);
    const bool training = trial % 3 != 2;
    const size_t shift = trial % 4 == 3 ? 1 : 0;
    Buf<float> x(n, shift);
    for (int64_t i = 0; i < n; ++i) x.p[i] = rnorm() + 0.5f;
    // running state: 3 slots, the current one and the observed (float) one
    float rmin[3] = {-1.f, -2.f, 0.5f}, rmax[3] = {1.f, 3.f, 2.f};
    bool init[3] = {trial % 2 == 0, false, true};
    float rmin_c[3], rmax_c[3];
    bool init_c[3];
    std::memcpy(rmin_c, rmin, sizeof rmin);
    std::memcpy(rmax_c, rmax, sizeof rmax);
    std::memcpy(init_c, init, sizeof init);
    const int64_t slot = trial % 2, observed = 2;
    unsigned work[4] = {0, 0, 0, 0};
    float scale = -1.f;
    int32_t zp = -1;
    const float ema_old = 0.9f, ema_new = 0.1f;
    if (shift == 0)
      launch(dim3(4), dim3(128), cuda::act_qparams_kernel<float, 4>, const_cast<const float*>(x.p), n, work, rmin, rmax,
             init, slot, observed, ema_old, ema_new, training, bits, &scale, &zp);
    else
      launch(dim3(4), dim3(128), cuda::act_qparams_kernel<float, 1>, const_cast<const float*>(x.p), n, work, rmin, rmax,
             init, slot, observed, ema_old, ema_new, training, bits, &scale, &zp);
    float mn, mx;
    const bool nan = cpu::range_of<float>(cpu::Isa::scalar, x.p, n, &mn, &mx);
    CHECK(!nan, "no NaN in the input");
    if (n == 0) mn = mx = std::nanf("");
    float lo, hi, s_want;
    int32_t z_want;
    arith::act_running_range(rmin_c, rmax_c, init_c, slot, observed, mn, mx, ema_old, ema_new, training, &lo, &hi);
    if (lo != lo || hi != hi) continue;  // (the kernel's device assert; not run here)
    arith::qparams_of_range(lo, hi, static_cast<float>(arith::max_code(bits)), &s_want, &z_want);
    CHECK(same_bits(&scale, &s_want, 1) && zp == z_want, "act_qparams trial %d: scale %g zp %d, want %g %d", trial,
          scale, zp, s_want, z_want);
    CHECK(same_bits(rmin, rmin_c, 3) && same_bits(rmax, rmax_c, 3) && std::memcmp(init, init_c, 3) == 0,
          "act_qparams trial %d: running state differs", trial);
  }
}

static void test_weight_fake_quant() {
  for (int bits : {2, 5, 8, 11, 16}) {
    const int64_t rows = rint(1, 6), inner = rint(1, 700);
    std::vector<float> w(rows * inner), out(rows * inner), want(rows * inner);
    for (float& v : w) v = rnorm();
    launch(dim3(static_cast<unsigned>(rows)), dim3(128), cuda::weight_fake_quant_kernel<float>,
           const_cast<const float*>(w.data()), out.data(), inner, bits);
    int64_t inf_rows = 0;
    cpu::weight_fake_quant_rows<float>(cpu::Isa::scalar, w.data(), want.data(), inner, 0, rows, bits, &inf_rows);
    CHECK(same_bits(out.data(), want.data(), out.size()), "weight_fake_quant bits %d rows %lld inner %lld", bits,
          (long long)rows, (long long)inner);
  }
}

// The fused quantizers' device asserts: NaN or inf in a scanned activation (train mode, or eval with
// no tracked range) and a weight row holding either fail one assert; eval with a tracked range
// never reads x; finite input fails none.
static void test_quantizer_asserts() {
  const float inf = INFINITY, nan = std::nanf("");
  struct Case {
    float bad;
    bool training, tracked;
    int64_t want;
  };
  for (const Case& c : {Case{1.f, true, false, 0}, Case{inf, true, false, 1}, Case{-inf, true, true, 1},
                        Case{nan, true, false, 1}, Case{inf, false, false, 1}, Case{inf, false, true, 0}}) {
    std::vector<float> x(300, 0.5f);
    x[123] = c.bad;
    float rmin[2] = {0.f, 0.f}, rmax[2] = {1.f, 1.f}, scale = -1.f;
    bool init[2] = {c.tracked, false};
    unsigned work[4] = {0, 0, 0, 0};
    int32_t zp = -1;
    cuda_emu::device_asserts = 0;
    launch(dim3(3), dim3(128), cuda::act_qparams_kernel<float, 1>, const_cast<const float*>(x.data()), int64_t{300},
           work, rmin, rmax, init, int64_t{0}, int64_t{1}, 0.9f, 0.1f, c.training, 4, &scale, &zp);
    CHECK(cuda_emu::device_asserts == c.want, "act_qparams with %g (train %d, tracked %d): %lld device asserts, want %lld",
          c.bad, c.training, c.tracked, (long long)cuda_emu::device_asserts.load(), (long long)c.want);
  }
  std::vector<float> w(4 * 50, 0.25f), out(w.size());
  w[60] = inf;   // row 1
  w[149] = nan;  // row 2
  w[150] = -3e38f, w[199] = 3e38f;  // row 3: finite, but max - min overflows
  cuda_emu::device_asserts = 0;
  launch(dim3(4), dim3(64), cuda::weight_fake_quant_kernel<float>, const_cast<const float*>(w.data()), out.data(),
         int64_t{50}, 4);
  CHECK(cuda_emu::device_asserts == 3 && out[0] == 0.25f && out[50] != out[50] && out[100] != out[100] &&
            out[175] != out[175],
        "weight_fake_quant: %lld device asserts (want 3), rows with NaN, inf or an overflowing range all NaN, the "
        "others kept", (long long)cuda_emu::device_asserts.load());
  std::vector<float> want(w.size());
  int64_t inf_rows = 0;
  cpu::weight_fake_quant_rows<float>(cpu::Isa::scalar, w.data(), want.data(), 50, 0, 4, 4, &inf_rows);
  CHECK(inf_rows == 2 && same_bits(out.data(), want.data(), out.size()),
        "weight_fake_quant_rows: %lld rows without a finite scale (want 2: inf, overflowing range), NaN as on CUDA",
        (long long)inf_rows);
  // fake_quantize: the CPU op's value checks of scale and zero point, per tensor and per channel
  struct Qp {
    float s;
    int32_t z;
    bool bad;
  };
  const Qp qps[] = {{0.1f, 3, false}, {0.f, 3, true}, {-0.1f, 3, true}, {inf, 3, true},
                    {nan, 3, true},   {0.1f, -1, true}, {0.1f, 16, true}, {1e-40f, 15, false}};
  std::vector<float> x(64, 0.3f), y(64);
  for (const Qp& c : qps)
    for (bool per_channel : {false, true}) {
      float s[4] = {0.1f, 0.1f, 0.1f, 0.1f};
      int32_t z[4] = {3, 3, 3, 3};
      s[per_channel ? 2 : 0] = c.s, z[per_channel ? 2 : 0] = c.z;
      cuda_emu::device_asserts = 0;
      if (per_channel)
        launch(dim3(2), dim3(32), cuda::fake_quant_kernel<float, 1, true>, const_cast<const float*>(x.data()),
               y.data(), static_cast<int32_t*>(nullptr), const_cast<const float*>(s), const_cast<const int32_t*>(z),
               int64_t{64}, int64_t{4}, int64_t{16}, 4);
      else
        launch(dim3(2), dim3(32), cuda::fake_quant_kernel<float, 1, false>, const_cast<const float*>(x.data()),
               y.data(), static_cast<int32_t*>(nullptr), const_cast<const float*>(s), const_cast<const int32_t*>(z),
               int64_t{64}, int64_t{1}, int64_t{64}, 4);
      CHECK((cuda_emu::device_asserts > 0) == c.bad, "fake_quantize (per channel %d) scale %g zero point %d: %lld "
            "device asserts", per_channel, c.s, c.z, (long long)cuda_emu::device_asserts.load());
    }
  // NaN in x: the CPU op raises; here one assert per thread that met NaN (elements 17 and 40 are two
  // threads'), which still comes out NaN, code -1
  x[17] = nan, x[40] = nan;
  std::vector<int32_t> codes(64);
  const float s1[1] = {0.1f};
  const int32_t z1[1] = {3};
  cuda_emu::device_asserts = 0;
  launch(dim3(2), dim3(32), cuda::fake_quant_kernel<float, 1, false>, const_cast<const float*>(x.data()), y.data(),
         codes.data(), s1, z1, int64_t{64}, int64_t{1}, int64_t{64}, 4);
  CHECK(cuda_emu::device_asserts == 2 && y[17] != y[17] && codes[40] == -1 && codes[0] == 6 && y[0] == 0.1f * 3.f,
        "fake_quantize of NaN: %lld device asserts (want 2)", (long long)cuda_emu::device_asserts.load());
  cuda_emu::device_asserts = 0;
}

// ---------------------------------------------------------------- integer engine: prep kernels
static void test_quantize_act() {
  for (int bits : {2, 8, 9, 16}) {
    const int64_t n = rint(1, 2000);
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = i % 41 == 7 ? std::nanf("") : rnorm();
    const float s = 0.05f;
    const int32_t z = static_cast<int32_t>(arith::max_code(bits) / 3);
    const bool u8 = bits <= 8;
    std::vector<int32_t> got(n), want(n);
    std::vector<uint8_t> got8(n), want8(n);
    int32_t status[cuda::kStatusWords] = {};
    launch(dim3(2), dim3(256), cuda::quantize_act_kernel, const_cast<const float*>(x.data()),
           static_cast<const float*>(nullptr), static_cast<float*>(nullptr), n,
           const_cast<const float*>(&s), const_cast<const int32_t*>(&z), bits,
           u8 ? static_cast<void*>(got8.data()) : static_cast<void*>(got.data()), u8, status, false);
    const int64_t nans = cpu::quantize_act(cpu::Isa::scalar, x.data(), n, s, z, bits,
                                           u8 ? static_cast<void*>(want8.data()) : static_cast<void*>(want.data()), u8);
    CHECK(got == want && got8 == want8, "quantize_act codes differ (bits %d)", bits);
    CHECK(status[cuda::kStNaN] == nans, "quantize_act NaN count %d, want %lld", status[cuda::kStNaN], (long long)nans);
  }
}

// affine_quantize_act_kernel (NCHW: channel (i / inner) % C; channels-last: inner 1) against the CPU
// engine's affine_quantize_act over the same rows, ReLU on and off, with NaN and inf * 0.
static void test_affine_quantize_act() {
  for (int bits : {2, 8, 9, 16}) {
    for (bool nhwc : {false, true}) {
      for (bool relu : {false, true}) {
        const int64_t B = rint(1, 3), C = rint(1, 70), HW = rint(1, 40), n = B * C * HW;
        std::vector<float> x(n), mul(C), add(C);
        for (int64_t i = 0; i < n; ++i) x[i] = i % 53 == 9 ? std::nanf("") : rnorm();
        for (int64_t c = 0; c < C; ++c) {
          mul[c] = c == 1 ? 0.f : rnorm();
          add[c] = rnorm();
        }
        x[n / 2] = std::nanf("");
        if (C > 1) x[nhwc ? n - C + 1 : ((B - 1) * C + 1) * HW] = INFINITY;  // inf * 0: channel 1's mul is 0
        const float s = 0.07f;
        const int32_t z = static_cast<int32_t>(arith::max_code(bits) / 3);
        const bool u8 = bits <= 8;
        std::vector<int32_t> got(n), want(n);
        std::vector<uint8_t> got8(n), want8(n);
        int32_t status[cuda::kStatusWords] = {};
        void* g = u8 ? static_cast<void*>(got8.data()) : static_cast<void*>(got.data());
        void* w = u8 ? static_cast<void*>(want8.data()) : static_cast<void*>(want.data());
        launch(dim3(3), dim3(128), cuda::affine_quantize_act_kernel, const_cast<const float*>(x.data()),
               static_cast<const float*>(nullptr), static_cast<float*>(nullptr), n,
               nhwc ? int64_t{1} : HW, C, const_cast<const float*>(mul.data()), const_cast<const float*>(add.data()),
               relu, const_cast<const float*>(&s), const_cast<const int32_t*>(&z), bits, g, u8, status, false);
        cpu::AffineRows a{mul.data(), add.data(), C, 0, nhwc, relu};
        const int64_t nans = cpu::affine_quantize_act(cpu::Isa::scalar, x.data(), nhwc ? B * HW : B * C,
                                                      nhwc ? C : HW, a, s, z, bits, w, u8);
        CHECK(got == want && got8 == want8, "affine_quantize_act codes differ (bits %d, nhwc %d, relu %d)", bits,
              int(nhwc), int(relu));
        CHECK(status[cuda::kStNaN] == nans && nans > 0, "affine_quantize_act NaN count %d, want %lld",
              status[cuda::kStNaN], (long long)nans);
      }
    }
  }
}

// add_relu_kernel against the CPU engine's add_relu: lengths that leave partial blocks and grid
// strides, NaN (kept), +-inf, -0 + -0 (stays -0) and b the same array as a.
static void test_add_relu() {
  for (int rep = 0; rep < 6; ++rep) {
    const int64_t n = rep == 0 ? 1 : rint(2, 3000);
    std::vector<float> a(n), b(n);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = i % 37 == 5 ? std::nanf("") : i % 41 == 7 ? -INFINITY : i % 43 == 11 ? -0.f : rnorm();
      b[i] = i % 31 == 3 ? INFINITY : i % 43 == 11 ? -0.f : rnorm();
    }
    const bool alias = rep == 5;
    std::vector<float> got = a, want = a;
    launch(dim3(2), dim3(128), cuda::add_relu_kernel, got.data(), const_cast<const float*>(alias ? got.data() : b.data()), n);
    cpu::add_relu(cpu::Isa::scalar, want.data(), alias ? want.data() : b.data(), n);
    CHECK(std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0, "add_relu differs (n %lld, alias %d)",
          (long long)n, int(alias));
  }
}

// quantize_act_kernel given b against the CPU engine's add_relu then quantize_act (the CPU op's
// chunks), and affine_quantize_act_kernel given b against add_to then affine_quantize_act: the
// updated a and the codes bit for bit, NaN counted (kept by the ReLU), NCHW and channels-last, b
// aliasing a.
static void test_add_quantize() {
  for (int bits : {2, 8, 9, 16}) {
    for (int rep = 0; rep < 4; ++rep) {
      const bool nhwc = rep % 2 == 1, relu = rep != 2, alias = rep == 3, u8 = bits <= 8;
      const int64_t B = rint(1, 3), C = rint(1, 40), HW = rint(1, 30), n = B * C * HW;
      std::vector<float> a(n), b(n), mul(C), add(C);
      for (int64_t i = 0; i < n; ++i) {
        a[i] = i % 53 == 9 ? std::nanf("") : i % 43 == 11 ? -0.f : rnorm();
        b[i] = i % 31 == 3 ? -INFINITY : i % 43 == 11 ? -0.f : rnorm();
      }
      for (int64_t c = 0; c < C; ++c) {
        mul[c] = rnorm();
        add[c] = rnorm();
      }
      const float s = 0.06f;
      const int32_t z = static_cast<int32_t>(arith::max_code(bits) / 3);
      std::vector<int32_t> got(n), want(n);
      std::vector<uint8_t> got8(n), want8(n);
      void* g = u8 ? static_cast<void*>(got8.data()) : static_cast<void*>(got.data());
      void* w = u8 ? static_cast<void*>(want8.data()) : static_cast<void*>(want.data());
      for (bool affine : {false, true}) {
        std::vector<float> ga = a, wa = a;
        const float* gb = alias ? ga.data() : b.data();
        const float* wb = alias ? wa.data() : b.data();
        int32_t status[cuda::kStatusWords] = {};
        int64_t nans;
        if (affine) {
          launch(dim3(3), dim3(128), cuda::affine_quantize_act_kernel, const_cast<const float*>(ga.data()), gb,
                 ga.data(), n, nhwc ? int64_t{1} : HW, C,
                 const_cast<const float*>(mul.data()), const_cast<const float*>(add.data()), relu,
                 const_cast<const float*>(&s), const_cast<const int32_t*>(&z), bits, g, u8, status, true);
          cpu::add_to(cpu::Isa::scalar, wa.data(), wb, n);
          cpu::AffineRows r{mul.data(), add.data(), C, 0, nhwc, relu};
          nans = cpu::affine_quantize_act(cpu::Isa::scalar, wa.data(), nhwc ? B * HW : B * C, nhwc ? C : HW, r, s, z,
                                          bits, w, u8);
        } else {
          launch(dim3(2), dim3(128), cuda::quantize_act_kernel, const_cast<const float*>(ga.data()), gb, ga.data(), n,
                 const_cast<const float*>(&s),
                 const_cast<const int32_t*>(&z), bits, g, u8, status, true);
          cpu::add_relu(cpu::Isa::scalar, wa.data(), wb, n);
          nans = cpu::quantize_act(cpu::Isa::scalar, wa.data(), n, s, z, bits, w, u8);
        }
        CHECK(std::memcmp(ga.data(), wa.data(), n * sizeof(float)) == 0 && got == want && got8 == want8,
              "add_%s_quantize differs (bits %d, nhwc %d, relu %d, alias %d)", affine ? "affine" : "relu", bits,
              int(nhwc), int(relu), int(alias));
        CHECK(status[cuda::kStNaN] == nans && nans > 0, "add_%s_quantize NaN count %d, want %lld",
              affine ? "affine" : "relu", status[cuda::kStNaN], (long long)nans);
      }
    }
  }
}

struct Blob {
  std::vector<int64_t> storage;
  int8_t* p = nullptr;
  cpu::PackedLayout L;
};

static Blob cpu_blob(const std::vector<int32_t>& w, const std::vector<int32_t>& zw, int64_t N, int64_t K, int bits) {
  Blob b;
  b.L = cpu::packed_layout(N, K, bits);
  b.storage.assign(static_cast<size_t>(b.L.bytes / 8 + 16), 0);
  b.p = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(b.storage.data()) + 63) / 64 * 64);
  const int64_t bad = cpu::pack_weight(w.data(), false, N, K, K, 1, zw.data(), bits, b.p);
  CHECK(bad == 0, "cpu pack_weight: %lld bad codes", (long long)bad);
  return b;
}

static std::vector<int32_t> rand_codes(int64_t n, int bits) {
  std::vector<int32_t> v(n);
  for (int32_t& c : v) c = rint(0, static_cast<int>(arith::max_code(bits)));
  return v;
}

// Given a residual, with a parameter flagged by check_params_kernel (launched before on the stream),
// both kernels write nothing: x stays as it was (the CPU op checks every argument before it writes);
// without halt_on_flags (value checks off) the flag is not read.
static void test_add_quantize_halts_on_flags() {
  const int64_t C = 3, n = 2 * C * 5;
  std::vector<float> a(n), b(n, 1.f), mul(C, 1.f), add(C, 0.f);
  for (int64_t i = 0; i < n; ++i) a[i] = rnorm();
  const float s = 0.1f;
  const int32_t z = 2;
  for (bool affine : {false, true}) {
    for (bool halt : {true, false}) {
      std::vector<float> ga = a;
      std::vector<uint8_t> codes(n, 77);
      int32_t status[cuda::kStatusWords] = {};
      status[cuda::kStParamFlags] = affine ? cuda::kBadOutScale : cuda::kBadXScale;
      if (affine)
        launch(dim3(2), dim3(64), cuda::affine_quantize_act_kernel, const_cast<const float*>(ga.data()),
               const_cast<const float*>(b.data()), ga.data(), n, int64_t{5}, C, const_cast<const float*>(mul.data()),
               const_cast<const float*>(add.data()), true, const_cast<const float*>(&s),
               const_cast<const int32_t*>(&z), 4, static_cast<void*>(codes.data()), true, status, halt);
      else
        launch(dim3(2), dim3(64), cuda::quantize_act_kernel, const_cast<const float*>(ga.data()),
               const_cast<const float*>(b.data()), ga.data(), n, const_cast<const float*>(&s),
               const_cast<const int32_t*>(&z), 4, static_cast<void*>(codes.data()), true, status, halt);
      const bool untouched = ga == a && codes == std::vector<uint8_t>(n, 77);
      CHECK(untouched == halt, "add_%s_quantize with a flagged parameter: halt_on_flags %d, x %s",
            affine ? "affine" : "relu", int(halt), untouched ? "untouched" : "written");
    }
  }
}

// The status counts saturate: a wrapping add made 2^32 NaNs (or bad codes) read back as 0 (no error).
static void test_status_counts_saturate() {
  int32_t word = 0;
  cuda::add_count(&word, int64_t{1} << 32);
  CHECK(word == INT32_MAX, "a count of 2^32 read back as %d", word);
  word = 5;
  cuda::add_count(&word, 7);
  CHECK(word == 12, "5 + 7 counted as %d", word);
  word = INT32_MAX - 1;
  cuda::add_count(&word, 3);
  CHECK(word == INT32_MAX, "a count past INT32_MAX read back as %d", word);
}

static void test_pack() {
  for (int bits : {2, 7, 8, 9, 16}) {
    const int64_t N = rint(1, 140), K = rint(1, 300);
    std::vector<int32_t> w = rand_codes(N * K, bits), zw = rand_codes(N, bits);
    const Blob want = cpu_blob(w, zw, N, K, bits);
    const cpu::PackedLayout& L = want.L;
    std::vector<int64_t> store(static_cast<size_t>(L.bytes / 8 + 16), 0);
    int8_t* got = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(store.data()) + 63) / 64 * 64);
    int32_t status[cuda::kStatusWords] = {};
    // w as transposed storage: sn = 1, sk = N
    std::vector<int32_t> wt(N * K);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) wt[k * N + n] = w[n * K + k];
    const int64_t words = L.limbs * L.Npad * L.Kp / 4;
    launch(dim3(3), dim3(256), cuda::pack_words_kernel<int32_t>, const_cast<const int32_t*>(wt.data()), N, K,
           int64_t{1}, N, L.Kp, L.Npad, L.limbs,
           cpu::pack_zp_shifted(bits) ? const_cast<const int32_t*>(zw.data()) : nullptr,
           reinterpret_cast<uint32_t*>(got + L.data_off));
    launch(dim3(static_cast<unsigned>((N * 32 + 255) / 256)), dim3(256), cuda::pack_colsum_kernel<int32_t>,
           const_cast<const int32_t*>(wt.data()), N, K, int64_t{1}, N, const_cast<const int32_t*>(zw.data()),
           static_cast<uint32_t>(arith::max_code(bits)), reinterpret_cast<int64_t*>(got + L.colsum_off),
           reinterpret_cast<int32_t*>(got + L.zp_off), status);
    CHECK(std::memcmp(got + L.data_off, want.p + L.data_off, words * 4) == 0, "pack words differ (bits %d)", bits);
    CHECK(std::memcmp(got + L.colsum_off, want.p + L.colsum_off, L.bytes - L.colsum_off) == 0,
          "pack colsum / zp differ (bits %d)", bits);
    CHECK(status[cuda::kStBadCodes] == 0, "no bad codes");
    w[N * K / 2] = static_cast<int32_t>(arith::max_code(bits)) + 1;  // one code out of range
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) wt[k * N + n] = w[n * K + k];
    launch(dim3(static_cast<unsigned>((N * 32 + 255) / 256)), dim3(256), cuda::pack_colsum_kernel<int32_t>,
           const_cast<const int32_t*>(wt.data()), N, K, int64_t{1}, N, const_cast<const int32_t*>(zw.data()),
           static_cast<uint32_t>(arith::max_code(bits)), reinterpret_cast<int64_t*>(got + L.colsum_off),
           reinterpret_cast<int32_t*>(got + L.zp_off), status);
    CHECK(status[cuda::kStBadCodes] == 1, "pack_colsum counted %d bad codes, want 1", status[cuda::kStBadCodes]);
  }
}

static void test_act_rows() {
  for (int trial = 0; trial < 18; ++trial) {
    const int bits = trial % 4 == 0 ? 12 : (trial % 2 ? 8 : 4);
    // Trials 16, 17: an input without pixels (H, then W, 0): every tap is padding (the host sends it here,
    // never to the implicit conv, which indexes pixels).
    const bool no_pixels = trial >= 16;
    const bool conv = trial % 3 != 0 || no_pixels;
    const int lx = bits <= 8 ? 1 : 2;
    cuda::ActParams p;
    int32_t zx = rint(0, static_cast<int>(arith::max_code(bits)));
    p.x_zp = &zx;
    p.qmax = arith::max_code(bits);
    std::vector<int32_t> x;
    std::vector<int64_t> a;
    if (conv) {
      const int batch = rint(1, 2);
      p.is_conv = true;
      p.C = 16 * rint(1, 3);
      p.H = trial == 16 ? 0 : rint(3, 9);
      p.W = trial == 17 ? 0 : rint(3, 9);
      p.kh = p.kw = (trial % 2) ? 3 : 1;
      p.sth = p.stw = rint(1, 2);
      p.pdh = p.pdw = no_pixels ? 2 : p.kh / 2;
      p.OH = (p.H + 2 * p.pdh - p.kh) / p.sth + 1;
      p.OW = (p.W + 2 * p.pdw - p.kw) / p.stw + 1;
      p.M = int64_t(batch) * p.OH * p.OW;
      p.K = int64_t(p.kh) * p.kw * p.C;
      p.sc = 1;  // channels-last
      p.sw = p.C;
      p.sh = int64_t(p.W) * p.C;
      p.sn = int64_t(p.H) * p.sh;
      x = rand_codes(int64_t(batch) * p.H * p.W * p.C, bits);
      a = im2col(x, p, zx);
    } else {
      p.M = rint(1, 40);
      p.K = rint(1, 200);
      p.sm = p.K;
      p.sk = 1;
      x = rand_codes(p.M * p.K, bits);
      a.assign(x.begin(), x.end());
    }
    if (trial == 5) {  // a bad code: counted once per read (a conv reads a pixel once per tap covering it)
      x[0] = static_cast<int32_t>(p.qmax) + 1;
      a = conv ? im2col(x, p, zx) : std::vector<int64_t>(x.begin(), x.end());
    }
    int64_t bad_want = 0;
    for (int64_t v : a) bad_want += v > static_cast<int64_t>(p.qmax);
    std::vector<uint8_t> xu8(x.begin(), x.end());
    const bool as_u8 = bits <= 8 && trial % 2 == 1 && !(trial == 5);
    p.x = as_u8 ? static_cast<const void*>(xu8.data()) : static_cast<const void*>(x.data());
    p.lda = (p.K + 15) / 16 * 16;
    p.lx = lx;
    std::vector<uint8_t> planes(lx * p.M * p.lda, 0xAB);
    std::vector<int64_t> rowsum(p.M, -1);
    int32_t status[cuda::kStatusWords] = {};
    p.planes = planes.data();
    p.rowsum = rowsum.data();
    p.status = status;
    const dim3 grid(static_cast<unsigned>((p.M * 32 + 255) / 256));
    if (as_u8)
      launch(grid, dim3(256), cuda::act_rows_kernel<uint8_t>, p);
    else
      launch(grid, dim3(256), cuda::act_rows_kernel<int32_t>, p);
    bool ok = status[cuda::kStBadCodes] == bad_want;
    for (int64_t m = 0; m < p.M && ok; ++m) {
      int64_t s = 0;
      for (int64_t k = 0; k < p.K; ++k) {
        const int64_t v = a[m * p.K + k];
        s += v;
        ok &= planes[m * p.lda + k] == (v & 255) && (lx == 1 || planes[(p.M + m) * p.lda + k] == (v >> 8));
      }
      for (int64_t k = p.K; k < p.lda; ++k) ok &= planes[m * p.lda + k] == 0;
      ok &= rowsum[m] == s;
    }
    CHECK(ok, "act_rows trial %d (conv %d bits %d M %lld K %lld): sums, planes or bad count differ", trial, conv, bits,
          (long long)p.M, (long long)p.K);
    if (conv && as_u8 && !no_pixels) {  // the implicit-conv path: pixel sums, then the receptive fields' sums
      std::vector<int64_t> psum(x.size() / p.C);
      std::vector<int64_t> rs(p.M, -1);
      int32_t st2[cuda::kStatusWords] = {};
      p.status = st2;
      p.rowsum = rs.data();
      launch(dim3(static_cast<unsigned>((psum.size() + 255) / 256)), dim3(256), cuda::pixel_sums_kernel, p, psum.data());
      launch(dim3(static_cast<unsigned>((p.M + 255) / 256)), dim3(256), cuda::conv_rowsum_kernel, p,
             const_cast<const int64_t*>(psum.data()));
      CHECK(rs == rowsum && st2[cuda::kStBadCodes] == 0, "conv_rowsum trial %d differs from the im2col sums", trial);
    }
    if (conv && !no_pixels) {  // the implicit conv on limb planes: the input's planes, its pixel sums, the fields' sums
      cuda::ActParams q = p;
      const int64_t npix = static_cast<int64_t>(x.size()) / p.C;
      std::vector<int32_t> nchw;
      if (!as_u8 && trial % 4 == 2) {  // the input channels-first, read through its strides
        const int64_t hw = int64_t(p.H) * p.W;
        nchw.resize(x.size());
        for (int64_t i = 0; i < npix; ++i)
          for (int c = 0; c < p.C; ++c) nchw[(i / hw) * p.C * hw + c * hw + i % hw] = x[i * p.C + c];
        q.x = nchw.data(), q.sc = hw, q.sw = 1, q.sh = p.W, q.sn = p.C * hw;
      }
      std::vector<uint8_t> pl(lx * npix * p.C, 0xAB);
      std::vector<int64_t> psum(npix), rs(p.M, -1);
      int32_t st3[cuda::kStatusWords] = {};
      q.status = st3, q.rowsum = rs.data(), q.lx = lx;
      launch(dim3(static_cast<unsigned>((npix * 32 + 255) / 256)), dim3(256),
             as_u8 ? cuda::conv_planes_kernel<uint8_t> : cuda::conv_planes_kernel<int32_t>, q, pl.data(), psum.data());
      launch(dim3(static_cast<unsigned>((p.M + 255) / 256)), dim3(256), cuda::conv_rowsum_kernel, q,
             const_cast<const int64_t*>(psum.data()));
      bool same = st3[cuda::kStBadCodes] == bad_want && (bad_want != 0 || rs == rowsum);
      for (int64_t i = 0; i < npix * p.C; ++i)
        same &= pl[i] == (x[i] & 255) && (lx == 1 || pl[npix * p.C + i] == ((x[i] >> 8) & 255));
      CHECK(same, "conv_planes trial %d (bits %d, %s): planes, sums or bad reads (%d, want %lld) differ", trial, bits,
            nchw.empty() ? "channels-last" : "channels-first", st3[cuda::kStBadCodes], (long long)bad_want);
    }
  }
}

// act_rows_kernel without planes (qgemm.cu's direct_matrix: the GEMM reads the uint8 rows in
// place): row sums and range counts, by 16-byte vectors over aligned rows (then the K % 16 tail)
// and code by code over rows that are not 16-byte aligned.
static void test_act_row_sums() {
  for (int trial = 0; trial < 8; ++trial) {
    const int bits = trial % 2 ? 8 : 4;
    cuda::ActParams p;
    int32_t zx = 1;
    p.x_zp = &zx;
    p.qmax = arith::max_code(bits);
    p.M = rint(1, 40);
    p.K = trial < 2 ? rint(1, 15) : (trial < 4 ? 16 * 40 + rint(0, 15) : rint(16, 300));
    // trials 6, 7: a row stride that is no multiple of 16 (rows 1, 2, ... unaligned)
    p.sm = (p.K + 15) / 16 * 16 + (trial >= 6 ? 5 : 16 * rint(0, 2));
    p.sk = 1;
    std::vector<int32_t> x = rand_codes(p.M * p.sm, 8);  // 8-bit bytes: above qmax for 4-bit rows
    int64_t bad_want = 0;
    std::vector<int64_t> want(p.M, 0);
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t k = 0; k < p.K; ++k) {
        int32_t& v = x[m * p.sm + k];
        if (bits == 4 && rint(0, 9) != 0) v &= 15;  // mostly codes, some not
        want[m] += v;
        bad_want += v > static_cast<int32_t>(p.qmax);
      }
    Buf<uint8_t> xu8(x.size());
    for (size_t i = 0; i < x.size(); ++i) xu8.p[i] = static_cast<uint8_t>(x[i]);
    std::vector<int64_t> rowsum(p.M, -1);
    int32_t status[cuda::kStatusWords] = {};
    p.x = xu8.p;
    p.planes = nullptr;
    p.rowsum = rowsum.data();
    p.status = status;
    launch(dim3(static_cast<unsigned>((p.M * 32 + 255) / 256)), dim3(256), cuda::act_rows_kernel<uint8_t>, p);
    CHECK(rowsum == want && status[cuda::kStBadCodes] == bad_want,
          "act_rows sums only, trial %d (bits %d M %lld K %lld sm %lld): sums or bad count (%d, want %lld) differ",
          trial, bits, (long long)p.M, (long long)p.K, (long long)p.sm, status[cuda::kStBadCodes], (long long)bad_want);
  }
}

// The implicit-conv sums check only the codes the conv reads: a 1x1 stride-2 conv of a 6x6 image
// never reads pixel (1, 1), so a 4-bit code of 200 there is no error; at pixel (2, 2) it is one read.
static void test_conv_bad_codes() {
  cuda::ActParams p;
  int32_t zx = 3;
  p.x_zp = &zx;
  p.qmax = 15;
  p.is_conv = true;
  p.C = 16, p.H = p.W = 6, p.kh = p.kw = 1, p.sth = p.stw = 2, p.pdh = p.pdw = 0;
  p.OH = p.OW = 3, p.M = 9, p.K = 16;
  p.sc = 1, p.sw = 16, p.sh = 96, p.sn = 576;
  for (int at : {1, 2}) {
    std::vector<int32_t> x = rand_codes(576, 4);
    x[(at * 6 + at) * 16 + 5] = 200;
    std::vector<int64_t> a = im2col(x, p, zx), want(9, 0), rs(9, -1);
    for (int64_t m = 0; m < 9; ++m)
      for (int64_t k = 0; k < 16; ++k) want[m] += a[m * 16 + k];
    std::vector<uint8_t> xu8(x.begin(), x.end());
    std::vector<int64_t> psum(36);
    int32_t status[cuda::kStatusWords] = {};
    p.x = xu8.data(), p.rowsum = rs.data(), p.status = status;
    launch(dim3(1), dim3(256), cuda::pixel_sums_kernel, p, psum.data());
    launch(dim3(1), dim3(256), cuda::conv_rowsum_kernel, p, const_cast<const int64_t*>(psum.data()));
    if (at == 1)
      CHECK(status[cuda::kStBadCodes] == 0 && rs == want, "a bad code on a pixel no tap reads: %d bad reads",
            status[cuda::kStBadCodes]);
    else
      CHECK(status[cuda::kStBadCodes] == 1, "a bad code read once: %d bad reads counted", status[cuda::kStBadCodes]);
  }
}

static void test_check_params() {
  const float good = 0.5f, zero = 0.f, inf = INFINITY;
  const int32_t zp_ok = 3, zp_bad = 300;
  std::vector<float> ws = {0.1f, 0.2f, 0.3f}, ws_bad = {0.1f, -1.f, 0.3f}, aff_bad = {1.f, NAN, 1.f};
  const float big = 1e30f, tiny = 1e-30f;
  std::vector<float> ws_big = {0.1f, 1e10f, 0.3f}, ws_tiny = {1e-20f, 0.2f, 0.3f}, aff_big = {1.f, 1.f, 1e10f};
  struct Case {
    const float *xs, *os, *w, *aff, *bias;
    const int32_t *xz, *oz;
    int want;
  } cases[] = {
      {&good, &good, ws.data(), ws.data(), ws.data(), &zp_ok, &zp_ok, 0},
      {&zero, nullptr, nullptr, nullptr, nullptr, &zp_ok, nullptr, cuda::kBadXScale},
      {&good, &inf, nullptr, nullptr, nullptr, &zp_bad, &zp_bad, cuda::kBadOutScale | cuda::kBadXZp | cuda::kBadOutZp},
      {&good, nullptr, ws_bad.data(), aff_bad.data(), aff_bad.data(), &zp_ok, nullptr,
       cuda::kBadWScale | cuda::kBadAffScale | cuda::kBadAffBias},
      // factors that pass alone, products that leave float32 (over, under to 0, with the affine)
      {&big, nullptr, ws_big.data(), nullptr, nullptr, &zp_ok, nullptr, cuda::kBadMult},
      {&tiny, nullptr, ws_tiny.data(), nullptr, nullptr, &zp_ok, nullptr, cuda::kBadMult},
      {&big, nullptr, ws.data(), aff_big.data(), nullptr, &zp_ok, nullptr, cuda::kBadMult},
  };
  for (const Case& c : cases) {
    cuda::ParamCheck pc;
    pc.x_scale = c.xs;
    pc.out_scale = c.os;
    pc.w_scale = c.w;
    pc.aff_scale = c.aff;
    pc.aff_bias = c.bias;
    pc.x_zp = c.xz;
    pc.out_zp = c.oz;
    pc.N = 3;
    int32_t status[cuda::kStatusWords] = {};
    launch(dim3(2), dim3(32), cuda::check_params_kernel, pc, status);
    CHECK(status[cuda::kStParamFlags] == c.want, "check_params flags %d, want %d", status[cuda::kStParamFlags], c.want);
  }
  // A packed weight's zero points and column sums (K = 5): in range for the header's bits, one channel
  // off by one at either end, and a header whose bits the launcher's header check refuses (no flag).
  const int64_t K = 5;
  for (int bits : {2, 4, 8, 9, 16}) {
    const int64_t q = arith::max_code(bits);
    struct PCase {
      int hdr_bits;
      int32_t zp1;
      int64_t cs1;
      int want;
    } pcases[] = {
        {bits, static_cast<int32_t>(q), K * q, 0},
        {bits, 0, 0, 0},
        {bits, static_cast<int32_t>(q + 1), 0, cuda::kBadPacked},
        {bits, -1, 0, cuda::kBadPacked},
        {bits, 0, K * q + 1, cuda::kBadPacked},
        {bits, 0, -1, cuda::kBadPacked},
        {40, static_cast<int32_t>(q + 1), -1, 0},
    };
    for (const PCase& c : pcases) {
      const int32_t hdr_bits = c.hdr_bits;
      std::vector<int32_t> zp = {1, c.zp1, 0};
      std::vector<int64_t> cs = {K, c.cs1, 0};
      cuda::ParamCheck pc;
      pc.w_bits = &hdr_bits;
      pc.w_zp = zp.data();
      pc.w_colsum = cs.data();
      pc.w_K = K;
      pc.N = 3;
      int32_t status[cuda::kStatusWords] = {};
      launch(dim3(2), dim3(32), cuda::check_params_kernel, pc, status);
      CHECK(status[cuda::kStParamFlags] == c.want, "bits %d (header %d): zero point %d, column sum %lld: flags %d, want %d",
            bits, c.hdr_bits, c.zp1, (long long)c.cs1, status[cuda::kStParamFlags], c.want);
    }
  }
}

// divmod's 32-bit path and its 64-bit one (an operand of 2^31 or more), at their edges, against int64
// division; and tile_of's walk, which uses it, against the same walk in int64.
static void test_divmod() {
  const int64_t big = int64_t{1} << 31;
  const int64_t as[] = {0, 1, 5, 6, 7, big - 1, big, big + 5, int64_t{1} << 40, (int64_t{1} << 62) + 3};
  const int64_t bs[] = {1, 2, 3, 7, 64, big - 1, big, big + 1, int64_t{1} << 33};
  for (int64_t a : as)
    for (int64_t b : bs) {
      int64_t r = -1;
      const int64_t q = cuda::divmod(a, b, &r);
      CHECK(q == a / b && r == a % b, "divmod(%lld, %lld) = %lld rem %lld", (long long)a, (long long)b,
            (long long)q, (long long)r);
    }
  for (int64_t num_m : {1, 7, 8, 9, 33})
    for (int64_t num_n : {1, 3, 16})
      for (int64_t t = 0; t < num_m * num_n; ++t) {
        int64_t mt, nt;
        cuda::tile_of(t, num_m, num_n, &mt, &nt);
        const int64_t per_group = cuda::kGroupM * num_n, first = (t / per_group) * cuda::kGroupM;
        const int64_t rows = num_m - first < cuda::kGroupM ? num_m - first : cuda::kGroupM, r = t % per_group;
        CHECK(mt == first + r % rows && nt == r / rows, "tile_of(%lld) of %lld x %lld", (long long)t,
              (long long)num_m, (long long)num_n);
      }
}

int main() {
  test_divmod();
  test_fake_quant();
  test_act_qparams();
  test_weight_fake_quant();
  test_quantizer_asserts();
  test_quantize_act();
  test_affine_quantize_act();
  test_add_relu();
  test_add_quantize();
  test_add_quantize_halts_on_flags();
  test_status_counts_saturate();
  test_pack();
  test_act_rows();
  test_act_row_sums();
  test_conv_bad_codes();
  test_check_params();
  CHECK(cuda_emu::violations.load() == 0, "%lld emulated launch-contract violations (e.g. a launch the GPU refuses)",
        (long long)cuda_emu::violations.load());
  return checks_done("emulated CUDA kernels: all checks passed");
}

// C++ tests of the torch-free integer GEMM engine (csrc/cpu/qgemm.h): every supported ISA against a
// naive int64 reference over random GEMM and conv cases (bits 2..16, odd sizes, extreme zero
// points, strides, padding), the K = 65,536 16-bit overflow case, and quantize_act.
// Build and run: see CMakeLists.txt (ctest). Exit code 0 = pass.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "check.h"
#include "common/arith.h"
#include "cpu/qgemm.h"

using namespace dwq::cpu;

struct Packed {
  std::vector<int64_t> storage;  // 8-byte aligned; over-allocated for 64-byte alignment
  int8_t* ptr = nullptr;
  int64_t bytes = 0;
};

static Packed pack(const std::vector<int32_t>& w, int64_t N, int64_t K, const std::vector<int32_t>& zw, int bits,
                   int kh = 0, int kw = 0) {
  Packed p;
  p.bytes = packed_weight_bytes(N, K, bits);
  p.storage.resize(static_cast<size_t>(p.bytes / 8 + 16));
  uintptr_t a = reinterpret_cast<uintptr_t>(p.storage.data());
  p.ptr = reinterpret_cast<int8_t*>((a + 63) / 64 * 64);
  const int64_t bad = pack_weight(w.data(), false, N, K, K, 1, zw.data(), bits, p.ptr, kh, kw);
  CHECK(bad == 0, "pack_weight reported %lld bad codes", (long long)bad);
  return p;
}

// The GEMM activation source of int32 codes x [M][K] (row-major).
static ActSource int32_rows(const std::vector<int32_t>& x, int32_t zx, int bits, int64_t K) {
  ActSource a;
  a.x = x.data();
  a.is_u8 = false;
  a.zx = zx;
  a.bits = bits;
  a.sm = K;
  a.sk = 1;
  return a;
}

static void run_all(Isa isa, int64_t M, const ActSource& a, const Packed& p, const Epilogue& ep) {
  PackedWeightView v;
  CHECK(parse_packed_weight(p.ptr, p.bytes, &v), "parse_packed_weight failed");
  const GemmPlan plan = plan_qgemm(M, v, a.bits, 2);
  // run the items in two uneven ranges, as two threads would
  const int64_t items = plan.items(), mid = items / 3;
  int64_t bad = run_qgemm(isa, plan, a, v, ep, 0, mid) + run_qgemm(isa, plan, a, v, ep, mid, items);
  CHECK(bad == 0, "run_qgemm reported %lld bad codes", (long long)bad);
  // and in the work-balanced shares of three threads (the caller's split), with the rows per item a
  // multiple of the ISA's microkernel (as the op plans) after the plans above that are not
  const GemmPlan p3 = plan_qgemm(M, v, a.bits, 3, isa_row_tile(isa));
  bad = 0;
  for (int t = 0; t < 3; ++t) bad += run_qgemm(isa, p3, a, v, ep, plan_split(p3, t, 3), plan_split(p3, t + 1, 3));
  CHECK(bad == 0, "run_qgemm reported %lld bad codes", (long long)bad);
}

// plan_split: shares cover [0, items) in order, and each share's work (rows x column blocks) is
// within one item of the even split.
static void split_cases(std::mt19937_64& rng) {
  for (int c = 0; c < 400; ++c) {
    PackedWeightView v;
    v.N = 1 + rng() % 3000;
    v.K = 1 + rng() % 5000;
    v.Kp = (v.K + 3) / 4 * 4;
    v.Npad = (v.N + 63) / 64 * 64;
    v.bits = 2 + rng() % 15;
    v.limbs = limbs_for_bits(v.bits);
    const int64_t M = 1 + rng() % 5000;
    const int T = 1 + rng() % 6;
    const GemmPlan p = plan_qgemm(M, v, 2 + rng() % 15, T);
    CHECK(p.nc_blocks * p.n_chunks >= p.n_blocks && p.mc * p.m_blocks >= M, "plan does not cover the output");
    CHECK(plan_split(p, 0, T) == 0 && plan_split(p, T, T) == p.items(), "split does not cover the items");
    const int64_t item_max = p.mc * p.nc_blocks, even = M * p.n_blocks / T;
    for (int t = 0; t < T; ++t) {
      const int64_t b = plan_split(p, t, T), e = plan_split(p, t + 1, T);
      CHECK(b <= e, "split boundaries out of order (%lld > %lld)", (long long)b, (long long)e);
      int64_t work = 0;
      for (int64_t i = b; i < e; ++i) {
        const int64_t ch = i / p.m_blocks, mb = i % p.m_blocks;
        work += (std::min(p.M, (mb + 1) * p.mc) - mb * p.mc) *
                (std::min(p.n_blocks, (ch + 1) * p.nc_blocks) - ch * p.nc_blocks);
      }
      CHECK(std::llabs(work - even) <= item_max + T, "share %d of %d: work %lld, even %lld, item %lld", t, T,
            (long long)work, (long long)even, (long long)item_max);
    }
  }
}

static int64_t gemm_cases(Isa isa, std::mt19937_64& rng, int cases) {
  int64_t done = 0;
  for (int c = 0; c < cases; ++c) {
    const int xb = 2 + rng() % 15, wb = 2 + rng() % 15;
    const int64_t M = 1 + rng() % 23, N = 1 + rng() % 150, K = 1 + rng() % 300;
    const int32_t qx = (1 << xb) - 1, qw = (1 << wb) - 1;
    auto pick_z = [&](int32_t qm) { int r = rng() % 4; return r == 0 ? 0 : r == 1 ? qm : int32_t(rng() % (qm + 1)); };
    const int32_t zx = pick_z(qx);
    std::vector<int32_t> x(M * K), w(N * K), zw(N);
    for (auto& v : x) v = rng() % 5 == 0 ? (rng() % 2 ? qx : 0) : int32_t(rng() % (qx + 1));
    for (auto& v : w) v = rng() % 5 == 0 ? (rng() % 2 ? qw : 0) : int32_t(rng() % (qw + 1));
    for (auto& z : zw) z = pick_z(qw);
    Packed p = pack(w, N, K, zw, wb);
    const ActSource a = int32_rows(x, zx, xb, K);
    std::vector<int64_t> out(M * N, -1);
    Epilogue ep;
    ep.kind = OutKind::acc_i64;
    ep.out = out.data();
    ep.ldo = N;
    run_all(isa, M, a, p, ep);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t ref = 0;
        for (int64_t k = 0; k < K; ++k) ref += int64_t(x[m * K + k] - zx) * (w[n * K + k] - zw[n]);
        if (out[m * N + n] != ref) {
          CHECK(false, "%s gemm M=%lld N=%lld K=%lld xb=%d wb=%d: [%lld,%lld] got %lld want %lld", isa_name(isa),
                (long long)M, (long long)N, (long long)K, xb, wb, (long long)m, (long long)n,
                (long long)out[m * N + n], (long long)ref);
          return done;
        }
      }
    ++done;
  }
  return done;
}

// wide: the shapes of model convs, 64 or 128 channels and 12..45 columns, at widths <= 8 (the
// int32 path), mostly stride 1 (AMX's padded implicit path, items starting anywhere in an output
// row) on uint8 codes; their requantized uint8 outputs are compared with the scalar ISA's too.
// The residual epilogue (Residual in cpu/qgemm.h) of one conv, whose exact accumulators acc are
// known: y = relu?(acc * mult (+ bias) + residual) and its codes (NaN counted, code zp), on `isa`
// against the definition, with a NaN and an exact zero sum among the residuals.
static void residual_case(Isa isa, int64_t M, int64_t O, const ActSource& a, const Packed& p,
                          const std::vector<int64_t>& acc, const std::vector<float>& mult, bool relu, int32_t zp,
                          bool bias_on) {
  std::mt19937_64 rr(static_cast<uint64_t>(M * 131 + O));  // (own stream: the conv cases stay the same)
  std::vector<float> bias(O), res(M * O), y(M * O, -1.f);
  for (auto& v : bias) v = float(int64_t(rr() % 2001) - 1000) / 64.f;
  for (auto& v : res) v = float(int64_t(rr() % 4001) - 2000) / 16.f;
  res[0] = std::nanf("");
  std::vector<uint8_t> codes(M * O, 7);
  std::atomic<int64_t> nans{0};
  Epilogue e;
  e.kind = OutKind::f32;
  e.ldo = O;
  e.mult = mult.data();
  e.bias = bias_on ? bias.data() : nullptr;
  e.relu = relu;
  e.out_scale = 0.37f;
  e.out_zp = zp;
  e.out = y.data();
  e.res.residual = res.data();
  e.res.codes = codes.data();
  e.res.nans = &nans;
  run_all(isa, M, a, p, e);
  const float qm = 255.f;
  int64_t want_nans = 0, bad = 0;
  for (int64_t i = 0; i < M * O; ++i) {
    const int64_t o = i % O;
    float v = dwq::arith::epilogue<float, true, false>(static_cast<float>(acc[i]), mult[o], bias_on ? bias[o] : 0.f);
    v = v + res[i];
    if (relu && v < 0.f) v = 0.f;
    want_nans += v != v;
    const float code = dwq::arith::quantize(v != v ? 0.f : v, 0.37f, float(zp), qm);
    const uint8_t q = static_cast<uint8_t>(static_cast<int32_t>(code));
    bad += !(std::memcmp(&v, &y[i], sizeof v) == 0 && codes[i] == q);
  }
  CHECK(bad == 0 && nans.load() == want_nans * 2 && want_nans == 1,  // (run_all runs it twice: two splits)
        "%s residual epilogue: %lld values differ, %lld NaN counted (want %lld)", isa_name(isa), (long long)bad,
        (long long)nans.load(), (long long)want_nans * 2);
}

static int64_t conv_cases(Isa isa, std::mt19937_64& rng, int cases, bool wide = false, bool limbs = false) {
  int64_t done = 0;
  const int ks[4] = {1, 3, 7, 5};
  for (int c = 0; c < cases; ++c) {
    int xb = wide ? 2 + rng() % 7 : 2 + rng() % 15, wb = wide ? 2 + rng() % 7 : 2 + rng() % 15;
    if (limbs) {  // (wide shapes with 9..16-bit codes on one side at least: AMX's padded limb planes)
      xb = 2 + int(rng() % 15);
      wb = 9 + int(rng() % 8);
      if (rng() % 2) std::swap(xb, wb);
    }
    const int64_t k = ks[rng() % (wide ? 4 : 3)], s = wide && rng() % 4 ? 1 : 1 + rng() % 2;
    const int64_t pad = rng() % (k / 2 + 1);
    const int64_t C = wide ? (k == 7 ? 64 : 64 * (1 + rng() % 2)) : rng() % 2 ? 4 * (1 + rng() % 4) : 1 + rng() % 9;
    const int64_t B = 1 + rng() % (wide ? 3 : 2), H = k + rng() % (wide ? 4 : 6), O = 1 + rng() % 70;
    const int64_t ow_wide = rng() % 3 == 0 ? 16 * (1 + rng() % 2) : 12 + rng() % 34;  // (whole AMX tiles or not)
    const int64_t W = wide ? ow_wide + k - 1 - 2 * pad : k + rng() % 5;
    const int64_t OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1, K = k * k * C, M = B * OH * OW;
    const int32_t qx = (1 << xb) - 1, qw = (1 << wb) - 1;
    const int32_t zx = rng() % 3 == 0 ? qx : int32_t(rng() % (qx + 1));
    std::vector<int32_t> x(B * H * W * C), w(O * K), zw(O);  // x NHWC, w [O][ky][kx][c]
    for (auto& v : x) v = int32_t(rng() % (qx + 1));
    for (auto& v : w) v = int32_t(rng() % (qw + 1));
    for (auto& z : zw) z = int32_t(rng() % (qw + 1));
    Packed p = pack(w, O, K, zw, wb);
    ActSource a = int32_rows(x, zx, xb, K);  // (then made a conv source)
    a.is_conv = true;
    a.batch = B; a.H = H; a.W = W; a.C = C;
    a.sn = H * W * C; a.sh = W * C; a.sw = C; a.sc = 1;
    a.kh = a.kw = k; a.stride_h = a.stride_w = s; a.pad_h = a.pad_w = pad; a.OH = OH; a.OW = OW;
    // uint8 codes half the time (when they fit): the byte-copy packing path
    std::vector<uint8_t> x8;
    if (xb <= 8 && (limbs ? rng() % 2 == 0 : (wide || rng() % 2))) {
      x8.assign(x.begin(), x.end());
      a.x = x8.data();
      a.is_u8 = true;
    }
    std::vector<int64_t> out(M * O, -1);
    Epilogue ep;
    ep.kind = OutKind::acc_i64;
    ep.out = out.data();
    ep.ldo = O;
    run_all(isa, M, a, p, ep);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t ow = m % OW, oh = (m / OW) % OH, n = m / (OW * OH);
      for (int64_t o = 0; o < O; ++o) {
        int64_t ref = 0;
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx)
            for (int64_t ci = 0; ci < C; ++ci) {
              const int64_t ih = oh * s - pad + ky, iw = ow * s - pad + kx;
              const int32_t xv = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((n * H + ih) * W + iw) * C + ci] : zx;
              ref += int64_t(xv - zx) * (w[o * K + (ky * k + kx) * C + ci] - zw[o]);
            }
        if (out[m * O + o] != ref) {
          CHECK(false, "%s conv k=%lld s=%lld p=%lld C=%lld W=%lld: got %lld want %lld", isa_name(isa), (long long)k,
                (long long)s, (long long)pad, (long long)C, (long long)W, (long long)out[m * O + o], (long long)ref);
          return done;
        }
      }
    }
    if (wide && isa != Isa::scalar) {
      std::vector<float> mult(O);
      for (auto& v : mult) v = std::ldexp(float(1 + rng() % 1000), -int(10 + rng() % 8));
      std::vector<uint8_t> got(M * O, 1), want(M * O, 2);
      Epilogue eq;
      eq.kind = OutKind::codes_u8;
      eq.ldo = O;
      eq.mult = mult.data();
      eq.relu = rng() % 2;
      eq.out_scale = 0.37f;
      eq.out_zp = int32_t(rng() % 256);
      eq.out = got.data();
      run_all(isa, M, a, p, eq);
      eq.out = want.data();
      run_all(Isa::scalar, M, a, p, eq);
      CHECK(got == want, "%s conv k=%lld s=%lld p=%lld C=%lld W=%lld: uint8 outputs differ from the scalar ISA's",
            isa_name(isa), (long long)k, (long long)s, (long long)pad, (long long)C, (long long)W);
      residual_case(isa, M, O, a, p, out, mult, eq.relu, eq.out_zp, rng() % 2 == 0);
    }
    if (!wide && (xb > 8 || wb > 8) && c % 3 == 0) {  // the limb paths' residual output (store_row)
      std::mt19937_64 lr(static_cast<uint64_t>(c));  // (own stream: the cases after stay the same)
      std::vector<float> mult(O);
      for (auto& v : mult) v = std::ldexp(float(1 + lr() % 1000), -int(30 + lr() % 8));
      residual_case(isa, M, O, a, p, out, mult, lr() % 2 == 0, int32_t(lr() % 256), lr() % 2 == 0);
    }
    ++done;
  }
  return done;
}

// K = 65,536 at 16 bits with every code at the extreme: |acc| = K * 65535^2 ~ 2.8e14 needs int64.
static void overflow_case(Isa isa) {
  const int64_t M = 2, N = 3, K = 65536 + 3;
  std::vector<int32_t> x(M * K), w(N * K), zw = {0, 65535, 0};
  for (int64_t i = 0; i < M * K; ++i) x[i] = i < K ? 65535 : 0;
  for (int64_t i = 0; i < N * K; ++i) w[i] = (i / K) == 1 ? 0 : 65535;
  Packed p = pack(w, N, K, zw, 16);
  const ActSource a = int32_rows(x, 0, 16, K);
  std::vector<int64_t> out(M * N);
  Epilogue ep;
  ep.out = out.data();
  ep.ldo = N;
  run_all(isa, M, a, p, ep);
  const int64_t big = K * int64_t(65535) * 65535;
  CHECK(out[0] == big && out[1] == -big && out[2] == big && out[3] == 0, "%s overflow case: %lld %lld %lld",
        isa_name(isa), (long long)out[0], (long long)out[1], (long long)out[2]);
}

// Every pair of products at its extreme: 7-bit codes 127 against weight bytes -128 and +127 fill the
// int16 pair sums of a narrow (vpmaddubsw) kernel to +-32512 and 32258; 8-bit codes 255 against them
// would saturate there, so they must take the wide path. Also uint8 activations, K near the
// int32-exact limit of one pass at 7 x 8 bits, and every row count of a tile. Two-limb codes (9, 16
// bits) at 0 and 2^b - 1 fill the whole-code int16 products of AVX2's two-limb kernel (x - 32768
// against bytes -128: +2^22 each) over K beyond one int32 chunk.
static void narrow_extreme_cases(Isa isa) {
  for (int xb : {7, 8, 9, 16})
    for (int wb : {7, 8, 16})
      // K = 33025 / 33026: the largest K whose 8-bit accs all fit int32 (the fast path, at |acc| =
      // 255 * 255 * K = 2^31 - 33023) and the first that needs int64 (arith::acc_fits_int32)
      for (int64_t K : {int64_t{4099}, int64_t{33025}, int64_t{33026}, int64_t{65536}}) {
        if ((xb > 8 || wb > 8) && K == 4099 && xb != wb) continue;  // (keeps the run short)
        if ((K == 33025 || K == 33026) && (xb != 8 || wb != 8)) continue;
        const int64_t M = 5, N = 67;
        const int32_t qx = (1 << xb) - 1, qw = (1 << wb) - 1;
        std::vector<uint8_t> x(xb <= 8 ? M * K : 0);
        std::vector<int32_t> x32(xb <= 8 ? 0 : M * K);
        std::vector<int32_t> w(N * K), zw(N);
        for (int64_t i = 0; i < M * K; ++i) {
          if (xb <= 8)
            x[i] = static_cast<uint8_t>((i / K) == 3 ? 0 : qx);
          else
            x32[i] = (i / K) == 3 ? 0 : qx;
        }
        for (int64_t n = 0; n < N; ++n) {
          zw[n] = n % 3 == 0 ? 0 : n % 3 == 1 ? qw : qw / 2;
          for (int64_t k = 0; k < K; ++k) w[n * K + k] = n % 2 ? qw : 0;
        }
        Packed p = pack(w, N, K, zw, wb);
        ActSource a;
        a.x = xb <= 8 ? static_cast<const void*>(x.data()) : static_cast<const void*>(x32.data());
        a.is_u8 = xb <= 8;
        a.zx = 0;
        a.bits = xb;
        a.sm = K;
        std::vector<int64_t> out(M * N, -1);
        Epilogue ep;
        ep.out = out.data();
        ep.ldo = N;
        run_all(isa, M, a, p, ep);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            const int64_t want = K * int64_t(m == 3 ? 0 : qx) * ((n % 2 ? qw : 0) - zw[n]);
            CHECK(out[m * N + n] == want, "%s narrow extreme xb=%d wb=%d K=%lld [%lld,%lld]: got %lld want %lld",
                  isa_name(isa), xb, wb, (long long)K, (long long)m, (long long)n, (long long)out[m * N + n],
                  (long long)want);
          }
      }
}

// Floats whose quotient by s is at or next to a rounding tie: (k + 1/2) s and the 4 floats either
// side of it, for `count` values of k: -10..9, then random within +-qmax, then up to 2^22 (beyond
// every code's range).
static std::vector<float> tie_values(float s, int32_t qmax, int count, std::mt19937_64& rng) {
  std::vector<float> out;
  for (int c = 0; c < count; ++c) {
    const double k = c < 20 ? c - 10 : c < 40 ? double(rng() % (2 * qmax)) - qmax : double(rng() % (1 << 22));
    float y = static_cast<float>((k + 0.5) * s);
    for (int j = 0; j < 4; ++j) y = std::nextafter(y, -INFINITY);
    for (int j = -4; j <= 4; ++j, y = std::nextafter(y, INFINITY))
      if (std::isfinite(y)) out.push_back(y);
  }
  return out;
}

static void quantize_cases(Isa isa, std::mt19937_64& rng) {
  std::vector<float> x(5000);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& v : x) v = nd(rng);
  x[0] = 0.5f; x[1] = 1.5f; x[2] = 2.5f; x[3] = -0.5f; x[4] = 1e30f; x[5] = -INFINITY;
  for (int bits : {2, 5, 8, 9, 16}) {
    const float s = 0.0371f;
    const int32_t z = (1 << (bits - 1)) - 1, qm = (1 << bits) - 1;
    std::vector<int32_t> q(x.size());
    std::vector<uint8_t> q8(x.size());
    quantize_act(isa, x.data(), x.size(), s, z, bits, q.data(), false);
    if (bits <= 8) quantize_act(isa, x.data(), x.size(), s, z, bits, q8.data(), true);
    for (size_t i = 0; i < x.size(); ++i) {
      float r = std::nearbyint(x[i] / s) + float(z);
      r = std::fmin(std::fmax(r, 0.f), float(qm));
      CHECK(q[i] == int32_t(r), "%s quantize bits=%d x=%g got %d want %d", isa_name(isa), bits, x[i], q[i], int(r));
      if (bits <= 8) CHECK(q8[i] == q[i], "%s quantize u8 mismatch", isa_name(isa));
      if (q[i] != int32_t(r)) return;
    }
  }
  // values at and next to rounding ties (x = (k + 1/2) s, 4 floats either side) for scales a power of
  // two or not, small and large, codes of 8 and 16 bits, and NaN (counted, code zp): arith::quantize
  // exactly, whatever the ISA's way to avoid dividing
  for (const float s : {1.f, 0.37f, 0.1f, 7.3e-5f, 3e3f, 0x1p-121f, 0x1p119f, 0x1.8p-101f, 0x1.3p99f,
                        0x1.fffffep-100f, 0x1.000002p100f})
    for (const int bits : {8, 16}) {
      const int32_t qm = (1 << bits) - 1, z = qm / 2 + int32_t(rng() % 3);
      std::vector<float> xs = tie_values(s, qm, 50, rng);
      xs.push_back(NAN);
      xs.push_back(-NAN);
      std::vector<int32_t> got(xs.size(), -1);
      const int64_t nans = quantize_act(isa, xs.data(), static_cast<int64_t>(xs.size()), s, z, bits, got.data(), false);
      CHECK(nans == 2, "%s quantize counted %lld NaNs, want 2", isa_name(isa), (long long)nans);
      for (size_t i = 0; i < xs.size(); ++i) {
        const float v = xs[i] != xs[i] ? 0.f : xs[i];
        const int32_t want = static_cast<int32_t>(dwq::arith::quantize(v, s, float(z), float(qm)));
        if (got[i] != want) {
          CHECK(false, "%s quantize x=%a s=%a z=%d bits=%d: got %d want %d", isa_name(isa), xs[i], s, z, bits, got[i],
                want);
          return;
        }
      }
    }
  // ties: 1.5 / 1 -> 2, 2.5 -> 2, -0.5 -> -0 (half to even)
  std::vector<int32_t> q(4);
  const float t[4] = {0.5f, 1.5f, 2.5f, -0.5f};
  quantize_act(isa, t, 4, 1.f, 4, 8, q.data(), false);
  CHECK(q[0] == 4 && q[1] == 6 && q[2] == 6 && q[3] == 4, "%s ties: %d %d %d %d", isa_name(isa), q[0], q[1], q[2], q[3]);
}

// The header keeps a conv kernel (or 0 x 0 for a GEMM weight), and parse refuses a kernel that
// does not divide K or is half set: the ops rely on it to refuse another kernel shape of equal K.
static void header_kernel_cases() {
  const int64_t N = 3, K = 24;
  std::vector<int32_t> w(N * K, 1), zw(N, 0);
  PackedWeightView v;
  Packed p;
  for (const auto& [kh, kw] : {std::pair{0, 0}, std::pair{3, 2}, std::pair{1, 1}, std::pair{24, 1}}) {
    p = pack(w, N, K, zw, 4, kh, kw);
    CHECK(parse_packed_weight(p.ptr, p.bytes, &v) && v.kh == kh && v.kw == kw, "kernel %dx%d read back as %dx%d", kh,
          kw, v.kh, v.kw);
  }
  // the kh, kw fields follow 4 int32 and 7 int64 (csrc/cpu/qgemm_common.cpp Header)
  int32_t* hk = reinterpret_cast<int32_t*>(p.ptr + 16 + 7 * 8);
  CHECK(hk[0] == 24 && hk[1] == 1, "kernel fields not where expected: %d %d", hk[0], hk[1]);
  for (const auto& [kh, kw] : {std::pair{5, 1}, std::pair{0, 2}, std::pair{3, 0}, std::pair{-3, -2}, std::pair{48, 1}}) {
    hk[0] = kh;
    hk[1] = kw;
    CHECK(!parse_packed_weight(p.ptr, p.bytes, &v), "a header with kernel %dx%d for K = 24 was accepted", kh, kw);
  }
}

// Codes of at most 7 bits are stored less their column's zero point (PackedLayout::zp_shifted), wider
// ones less 128 per limb, where the engine reads them: byte (n, k) at [n / 64][k / 4][n % 64][k % 4].
// A zero point out of range keeps the 128 offset; the header's flag must be 0 or 1, and 1 only for
// widths up to 7.
static void zp_shift_layout_cases(std::mt19937_64& rng) {
  for (int bits : {2, 5, 7, 8, 12}) {
    const int64_t N = 1 + rng() % 90, K = 1 + rng() % 40;
    const int32_t qm = (1 << bits) - 1;
    std::vector<int32_t> w(N * K), zw(N);
    for (auto& v : w) v = int32_t(rng() % (qm + 1));
    for (auto& z : zw) z = rng() % 3 == 0 ? qm : int32_t(rng() % (qm + 1));
    Packed p = pack(w, N, K, zw, bits);
    PackedWeightView v;
    CHECK(parse_packed_weight(p.ptr, p.bytes, &v), "bits %d: blob refused", bits);
    CHECK(v.zp_shifted == (bits <= 7), "bits %d: zp_shifted %d", bits, int(v.zp_shifted));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int32_t q = w[n * K + k], want = bits <= 7 ? q - zw[n] : (q & 255) - 128;
        const int8_t got = v.data[(n / kBlockN) * kBlockN * v.Kp + (k / 4) * kBlockN * 4 + (n % kBlockN) * 4 + k % 4];
        if (got != want) {
          CHECK(false, "bits %d: byte (%lld, %lld) is %d, want %d", bits, (long long)n, (long long)k, int(got), want);
          return;
        }
      }
    if (bits > 7) continue;
    int32_t* flag = reinterpret_cast<int32_t*>(p.ptr + kHeaderZpShiftedOff);
    CHECK(*flag == 1, "bits %d: the header's flag is %d at byte %lld", bits, *flag, (long long)kHeaderZpShiftedOff);
    *flag = 2;
    CHECK(!parse_packed_weight(p.ptr, p.bytes, &v), "a zp_shifted flag of 2 was accepted");
    *flag = 1;
    *reinterpret_cast<int32_t*>(p.ptr + 4) = 1;  // the version a reader before zp_shifted knew
    CHECK(!parse_packed_weight(p.ptr, p.bytes, &v), "a version-1 blob flagged zp_shifted was accepted");
    std::vector<int32_t> zbad(zw);
    zbad[N / 2] = qm + 1;
    Packed q = pack(w, N, K, zbad, bits);
    CHECK(parse_packed_weight(q.ptr, q.bytes, &v) && !v.zp_shifted, "bits %d: an out-of-range zero point shifted", bits);
  }
  {
    std::vector<int32_t> w(40, 9), zw(2, 3);
    setenv("DWQ_PACK_ZP_SHIFT", "0", 1);
    Packed p = pack(w, 2, 20, zw, 5);
    unsetenv("DWQ_PACK_ZP_SHIFT");
    PackedWeightView v;
    CHECK(parse_packed_weight(p.ptr, p.bytes, &v) && !v.zp_shifted && v.data[0] == 9 - 128,
          "DWQ_PACK_ZP_SHIFT=0 still shifted by the zero point");
  }
  std::vector<int32_t> w(64, 200), zw(2, 100);
  Packed p = pack(w, 2, 32, zw, 8);
  *reinterpret_cast<int32_t*>(p.ptr + kHeaderZpShiftedOff) = 1;
  *reinterpret_cast<int32_t*>(p.ptr + 4) = 2;
  PackedWeightView v;
  CHECK(!parse_packed_weight(p.ptr, p.bytes, &v), "an 8-bit blob flagged zp_shifted was accepted");
}

// A blob of codes of at most 7 bits written before zp_shifted (bytes q - 128, flag 0) still computes
// what the shifted one does, on the paths that then need the row sums: the im2col / in-place conv
// (AMX: padded rows with their window sums), the int64 store and the fused requantizing epilogue
// with bias and ReLU.
static void legacy_blob_cases(Isa isa, std::mt19937_64& rng) {
  const int64_t B = 2, H = 18, W = 18, C = 64, k = 3, O = 70, OH = 16, OW = 16, K = k * k * C, M = B * OH * OW;
  const int xb = 8, wb = 1 + 2 + rng() % 5;  // weights of 3..7 bits
  const int32_t qw = (1 << wb) - 1;
  std::vector<int32_t> x(B * H * W * C), w(O * K), zw(O);
  for (auto& v : x) v = int32_t(rng() % 256);
  for (auto& v : w) v = int32_t(rng() % (qw + 1));
  for (auto& z : zw) z = int32_t(rng() % (qw + 1));
  Packed shifted = pack(w, O, K, zw, wb);
  Packed legacy = pack(w, O, K, zw, wb);
  PackedWeightView v;
  CHECK(parse_packed_weight(legacy.ptr, legacy.bytes, &v) && v.zp_shifted, "legacy case: not shifted");
  int8_t* data = legacy.ptr + kHeaderBytes;
  for (int64_t n = 0; n < O; ++n)
    for (int64_t kk = 0; kk < K; ++kk)
      data[(n / kBlockN) * kBlockN * v.Kp + (kk / 4) * kBlockN * 4 + (n % kBlockN) * 4 + kk % 4] =
          static_cast<int8_t>(w[n * K + kk] - 128);
  *reinterpret_cast<int32_t*>(legacy.ptr + kHeaderZpShiftedOff) = 0;
  int32_t* version = reinterpret_cast<int32_t*>(legacy.ptr + 4);  // (after the magic: csrc/cpu/qgemm_common.cpp Header)
  CHECK(*version == 2 && !parse_packed_weight(legacy.ptr, legacy.bytes, &v), "a version-2 blob without its flag was read");
  *version = 1;
  CHECK(parse_packed_weight(legacy.ptr, legacy.bytes, &v) && !v.zp_shifted, "legacy case: flag not cleared");
  std::vector<uint8_t> x8(x.begin(), x.end());
  ActSource a = int32_rows(x, int32_t(rng() % 256), xb, K);
  a.x = x8.data();
  a.is_u8 = true;
  a.is_conv = true;
  a.batch = B; a.H = H; a.W = W; a.C = C;
  a.sn = H * W * C; a.sh = W * C; a.sw = C; a.sc = 1;
  a.kh = a.kw = k; a.pad_h = a.pad_w = 1; a.OH = OH; a.OW = OW;
  std::vector<int64_t> acc_s(M * O, -1), acc_l(M * O, -2);
  Epilogue ep;
  ep.ldo = O;
  ep.out = acc_s.data();
  run_all(isa, M, a, shifted, ep);
  ep.out = acc_l.data();
  run_all(isa, M, a, legacy, ep);
  CHECK(acc_s == acc_l, "%s: the legacy blob's accumulators differ from the shifted blob's", isa_name(isa));
  std::vector<float> mult(O), bias(O);
  for (auto& m : mult) m = std::ldexp(float(1 + rng() % 1000), -int(10 + rng() % 8));
  for (auto& b : bias) b = float(int(rng() % 200) - 100) * 0.01f;
  std::vector<uint8_t> cs(M * O, 1), cl(M * O, 2);
  Epilogue eq;
  eq.kind = OutKind::codes_u8;
  eq.ldo = O;
  eq.mult = mult.data();
  eq.bias = bias.data();
  eq.relu = true;
  eq.out_scale = 0.37f;
  eq.out_zp = 7;
  eq.out = cs.data();
  run_all(isa, M, a, shifted, eq);
  eq.out = cl.data();
  run_all(isa, M, a, legacy, eq);
  CHECK(cs == cl, "%s: the legacy blob's requantized codes differ from the shifted blob's", isa_name(isa));
}

// A blob whose size int64 cannot hold is refused before packed_layout computes it (it wrapped: at
// K = 2^57 and 16 bits to 0 bytes), and every blob that fits has the size its parts add up to.
static void layout_size_cases() {
  const int64_t big = int64_t{1} << 40;
  CHECK(!packed_layout_fits(1, int64_t{1} << 57, 16) && !packed_layout_fits(1, big + 1, 8) &&
            !packed_layout_fits(big + 1, 1, 8) && !packed_layout_fits(big, big, 2) && !packed_layout_fits(0, 4, 8),
        "an unrepresentable blob size was accepted");
  for (const auto& [N, K, bits] : {std::tuple{int64_t{1}, big, 16}, std::tuple{big, int64_t{1}, 8},
                                   std::tuple{int64_t{3}, int64_t{1} << 30, 16}, std::tuple{int64_t{65}, int64_t{7}, 4}}) {
    const PackedLayout L = packed_layout(N, K, bits);
    CHECK(packed_layout_fits(N, K, bits) && L.bytes == kHeaderBytes + L.limbs * L.Npad * L.Kp + 12 * N,
          "layout N=%lld K=%lld bits=%d: %lld bytes", (long long)N, (long long)K, bits, (long long)L.bytes);
  }
}

// The requantizing epilogue at and next to rounding ties: every output is acc = 1 times mult[n], and
// mult[n] / s lands on k + 0.5 or within a few floats of it, for scales of every magnitude (the
// AVX-512 epilogue divides by the reciprocal where that rounds to the same code, exactly elsewhere):
// the codes must be arith::quantize's, bit for bit, on every ISA.
static int64_t requant_tie_cases(Isa isa, std::mt19937_64& rng) {
  std::vector<float> scales = {1.f, 0.5f, 3.f, 0.1f, 1e-3f, 7.3e-5f, 1e3f, 0x1p-119f, 0x1p-121f, 0x1p119f, 0x1p121f,
                               0x1.8p-101f, 0x1.3p99f, 0x1.fffffep-100f, 0x1.000002p100f};
  for (int i = 0; i < 24; ++i) scales.push_back(std::ldexp(float(1 + rng() % 1000) / 997.f, int(rng() % 40) - 20));
  int64_t done = 0;
  for (const float s : scales)
    for (const int out_bits : {8, 16}) {
      const int32_t qmax = (1 << out_bits) - 1, z = qmax / 2 + int32_t(rng() % 3);
      const std::vector<float> mult = tie_values(s, qmax, 60, rng);
      const int64_t N = static_cast<int64_t>(mult.size()), M = 1 + rng() % 40, K = 1;
      std::vector<int32_t> x(M * K, 1), w(N * K, 1), zw(N, 0);
      Packed p = pack(w, N, K, zw, 8);
      const ActSource a = int32_rows(x, 0, 8, K);
      std::vector<int32_t> out(M * N, -1);
      Epilogue ep;
      ep.kind = OutKind::codes_i32;
      ep.out = out.data();
      ep.ldo = N;
      ep.mult = mult.data();
      ep.out_scale = s;
      ep.out_zp = z;
      ep.out_bits = out_bits;
      run_all(isa, M, a, p, ep);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          const float y = dwq::arith::epilogue<float, false, false>(1.f, mult[n], 0.f);
          const int32_t want = static_cast<int32_t>(dwq::arith::quantize(y, s, float(z), float(qmax)));
          if (out[m * N + n] != want) {
            CHECK(false, "%s requantize: y=%a s=%a z=%d bits=%d: got %d want %d", isa_name(isa), y, s, z, out_bits,
                  out[m * N + n], want);
            return done;
          }
        }
      done += N;
    }
  return done;
}

int main() {
  std::mt19937_64 rng(1234);
  header_kernel_cases();
  layout_size_cases();
  {
    std::mt19937_64 zrng(7);  // own stream, as below
    zp_shift_layout_cases(zrng);
  }
  {
    std::mt19937_64 srng(99);  // own stream: the GEMM/conv cases below stay the same
    split_cases(srng);
  }
  for (Isa isa : kAllIsas) {
    if (!isa_supported(isa)) {
      std::printf("%s: not supported by this CPU, skipped\n", isa_name(isa));
      continue;
    }
    const int64_t g = gemm_cases(isa, rng, 150);
    const int64_t c = conv_cases(isa, rng, 120) + conv_cases(isa, rng, 30, true) + conv_cases(isa, rng, 12, true, true);
    overflow_case(isa);
    narrow_extreme_cases(isa);
    {
      std::mt19937_64 lrng(11);
      legacy_blob_cases(isa, lrng);
    }
    quantize_cases(isa, rng);
    const int64_t t = requant_tie_cases(isa, rng);
    std::printf("%s: %lld gemm + %lld conv cases (42 of model shapes) exact, %lld requantized values at and next to ties\n",
                isa_name(isa), (long long)g, (long long)c, (long long)t);
  }
  return checks_done("qgemm: all checks passed");
}

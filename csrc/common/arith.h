// The scalar arithmetic of dwq's arithmetic contract (DESIGN.md), defined once for every kernel:
// fake quantization (csrc/cpu/fake_quant.cpp, csrc/cuda/fake_quant.cu), activation quantization and
// the GEMM epilogue (csrc/cpu/qgemm_*, csrc/cuda/*). Torch-free; __host__ __device__ under nvcc.
//
//   code      q  = clamp(round_half_even(x / s) + z, 0, 2^b - 1)
//   fake      x' = (q - z) * s
//   epilogue  y  = float(acc) * mult (+ bias), optional ReLU; then float out or requantize(y)
//   zero-point terms of acc = sum_k (qx - zx)(qw - zw), with weights stored shifted by `shift`
//   (128 per 8-bit limb for the signed operand of vpdpbusd, 0 where both operands are unsigned):
//             acc = T + rowsum(qx) * (shift - zw) + (K * zx * zw - zx * colsum(qw)),
//             T   = sum_k qx * (qw - shift)
//
// One rounding method: round half to even by the magic number 1.5 * 2^(mantissa bits): after
// clamping |v| <= 2^22 (float; 2^51 for double), (v + 1.5 * 2^23) lands where the float grid is the
// integers, so IEEE round-to-nearest-even rounds v itself (the magic is even, so parity and ties
// are v's), and subtracting it back is exact. This equals torch.round (nearbyint) on that range;
// beyond it every caller clamps to a code range far inside (codes <= 65535), so the clamp changes
// no result. It needs only adds and compares, so the same code auto-vectorizes on every ISA
// (the hand-written AVX-512 epilogue uses arith's constants, step for step) and runs on GPUs
// without libm, and it
// needs the default rounding mode and no fused multiply-add / reassociation: the build passes
// -ffp-contract=off (and never -ffast-math), device code uses explicitly rounded intrinsics.
// NaN is the caller's business (it has no code): the templates propagate it.
#pragma once
#include <cstdint>

// Always inlined into the (possibly ISA-specific) caller, so they vectorize with its instruction set.
#if defined(__CUDACC__)
#define DWQ_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define DWQ_HD inline __attribute__((always_inline))
#else
#define DWQ_HD inline
#endif

namespace dwq::arith {

// Value type traits: scalars splat to themselves (a vector type with +, -, *, /, <, > and ?: could
// specialize it).
template <typename F>
struct Lanes {
  using scalar = F;
  DWQ_HD static F splat(scalar s) { return s; }
};

template <typename S>
struct Rne;
template <>
struct Rne<float> {
  static constexpr float clamp = 4194304.f;   // 2^22
  static constexpr float magic = 12582912.f;  // 1.5 * 2^23
};
template <>
struct Rne<double> {
  static constexpr double clamp = 2251799813685248.0;  // 2^51
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
};

// Rounding-exact helpers: plain operators on the host (-ffp-contract=off), explicitly rounded
// intrinsics on the device so that nvcc never fuses them into an FMA.
template <typename F>
DWQ_HD F add_rn(F a, F b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(F) == 4) return __fadd_rn(a, b); else return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <typename F>
DWQ_HD F mul_rn(F a, F b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(F) == 4) return __fmul_rn(a, b); else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <typename F>
DWQ_HD F div_rn(F a, F b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(F) == 4) return __fdiv_rn(a, b); else return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// round_half_even(v) for |v| <= Rne::clamp; values beyond are clamped to +-Rne::clamp.
template <typename F>
DWQ_HD F round_half_even_clamped(F v) {
  using S = typename Lanes<F>::scalar;
  const F c = Lanes<F>::splat(Rne<S>::clamp), nc = Lanes<F>::splat(-Rne<S>::clamp);
  const F m = Lanes<F>::splat(Rne<S>::magic);
  v = v < nc ? nc : v;
  v = v > c ? c : v;
  return add_rn(add_rn(v, m), -m);
}

// The code of the quotient v = x / s: clamp(round_half_even(v) + z, 0, qmax), as a float.
template <typename F>
DWQ_HD F code_of_quotient(F v, F z, F qmax) {
  using S = typename Lanes<F>::scalar;
  const F zero = Lanes<F>::splat(S(0));
  v = add_rn(round_half_even_clamped(v), z);
  v = v < zero ? zero : v;
  return v > qmax ? qmax : v;
}

// q = clamp(round_half_even(x / s) + z, 0, qmax); also the requantization of an epilogue value.
template <typename F>
DWQ_HD F quantize(F x, F s, F z, F qmax) {
  return code_of_quotient(div_rn(x, s), z, qmax);
}

// x' = (q - z) * s: the fake-quantized value.
template <typename F>
DWQ_HD F dequantize(F q, F s, F z) {
  return mul_rn(add_rn(q, -z), s);
}

// y = acc * mult (+ bias), then ReLU: the float part of the epilogue, in this order.
template <typename F, bool BIAS, bool RELU>
DWQ_HD F epilogue(F acc, F mult, F bias) {
  F y = mul_rn(acc, mult);
  if constexpr (BIAS) y = add_rn(y, bias);
  if constexpr (RELU) {
    using S = typename Lanes<F>::scalar;
    const F zero = Lanes<F>::splat(S(0));
    y = y > zero ? y : zero;
  }
  return y;
}

// Zero-point terms per output column (see the header comment); exact in int64.
DWQ_HD int64_t zp_col_weight(int32_t zw, int64_t shift) { return shift - zw; }
DWQ_HD int64_t zp_col_const(int64_t K, int32_t zx, int32_t zw, int64_t colsum) {
  return K * zx * static_cast<int64_t>(zw) - static_cast<int64_t>(zx) * colsum;
}
// acc from the shifted product sum T and the row sum of the activation codes.
DWQ_HD int64_t acc_from_terms(int64_t t, int64_t rowsum, int64_t col_weight, int64_t col_const) {
  return t + rowsum * col_weight + col_const;
}
// The same in wrapping 32-bit arithmetic, exact whenever the true acc fits int32 (the fast path).
DWQ_HD int32_t acc_from_terms32(int32_t t, uint32_t rowsum, uint32_t col_weight, uint32_t col_const) {
  return static_cast<int32_t>(static_cast<uint32_t>(t) + rowsum * col_weight + col_const);
}
// Whether every acc of a K-deep product of codes 0..qmax_x and 0..qmax_w fits int32 (|acc| <=
// K * qmax_x * qmax_w, whatever the zero points): then acc_from_terms32 is exact (the fast path).
DWQ_HD bool acc_fits_int32(int64_t K, int64_t qmax_x, int64_t qmax_w) {
  const int64_t per_k = qmax_x * qmax_w;  // (qmax <= 2^16 - 1 each: no overflow; K * per_k could)
  return per_k == 0 || K <= int64_t{0x7FFFFFFF} / per_k;
}

// choose_qparams (integer zero point) of a finite range [mn, mx], as dwq.quant.qparams computes
// it in float32: the range widened to include 0, s = max((max - min) / qmax, 1e-8) with an IEEE
// division, z = clamp(round_half_even(-min / s), 0, qmax). Callers reject NaN ranges first.
DWQ_HD void qparams_of_range(float mn, float mx, float qmax, float* scale, int32_t* zp) {
  mn = mn < 0.f ? mn : 0.f;
  mx = mx > 0.f ? mx : 0.f;
  float s = div_rn(add_rn(mx, -mn), qmax);
  s = s < 1e-8f ? 1e-8f : s;
  *scale = s;
  *zp = static_cast<int32_t>(code_of_quotient(div_rn(-mn, s), 0.f, qmax));
}

// The running range update of ActQuantizer in train mode: ema * running + (1 - ema) * batch, in
// float32 with both factors rounded to float32 first (as torch multiplies a float32 tensor by a
// Python float).
DWQ_HD float ema_update(float running, float batch, float ema_old, float ema_new) {
  return add_rn(mul_rn(ema_old, running), mul_rn(ema_new, batch));
}

// ActQuantizer's running ranges at one forward: train mode moves the active precision's `slot` and
// the `observed` slot (the same one with a shared range) toward the batch range [bmin, bmax] (a
// slot's first batch initializes it) and quantizes with the batch range; eval mode picks the slot's
// range if it saw a training batch, else the observed one, else the batch's. Writes the range to
// quantize with into [*lo, *hi]; `init` flags as they were before this forward. A batch range without
// a finite width (NaN, inf, or wider than float32 holds) leaves the running ranges as they were: its
// scale is this forward's error, not a lasting state (the EMA of NaN or inf would never recover).
// A batch bound of -0 is taken as +0 (adding +0 rounds -0 to +0 and leaves every other value, NaN
// and inf included): min/max reductions may return either zero when both are present, depending on
// how the elements were split among threads or blocks, and the running buffers must be the same bits
// on every run and on the pure-PyTorch path (ActQuantizer._track does the same).
DWQ_HD void act_running_range(float* rmin, float* rmax, bool* init, int64_t slot, int64_t observed, float bmin,
                              float bmax, float ema_old, float ema_new, bool training, float* lo, float* hi) {
  bmin = add_rn(bmin, 0.f);
  bmax = add_rn(bmax, 0.f);
  const float width = add_rn(bmax, -bmin);
  if (training && add_rn(width, -width) == 0.f) {  // (x - x is 0 exactly for finite x, NaN otherwise)
    for (int k = 0; k < (slot == observed ? 1 : 2); ++k) {
      const int64_t i = k == 0 ? slot : observed;
      rmin[i] = init[i] ? ema_update(rmin[i], bmin, ema_old, ema_new) : bmin;
      rmax[i] = init[i] ? ema_update(rmax[i], bmax, ema_old, ema_new) : bmax;
      init[i] = true;
    }
  }
  if (training) {
    *lo = bmin;
    *hi = bmax;
    return;
  }
  const int64_t i = init[slot] ? slot : observed;
  *lo = init[i] ? rmin[i] : bmin;
  *hi = init[i] ? rmax[i] : bmax;
}

// Largest code of a width: 2^bits - 1.
DWQ_HD int64_t max_code(int bits) { return (int64_t{1} << bits) - 1; }

}  // namespace dwq::arith

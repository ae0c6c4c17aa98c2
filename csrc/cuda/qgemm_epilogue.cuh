// Epilogue of the CUDA integer engine: exact int64 accumulator from the tensor-core partial T and
// the zero-point terms, then arith.h's float steps (scale, affine, ReLU, requantize), as the CPU
// driver's store_row does (csrc/cpu/qgemm_driver_epilogue.inc.h), value for value.
#pragma once
#include <cstdint>

#include "common/arith.h"
#include "cuda/qgemm_params.h"

namespace dwq::cuda {

// Per output column: the zero-point terms and the float multiplier / bias.
struct ColTerms {
  int64_t colw = 0, colc = 0;
  float mult = 0.f, bias = 0.f;
};

// Per launch: the scalars in device memory, read once per thread.
struct EpiScalars {
  int32_t zx = 0;
  float sx = 1.f, os = 1.f, oz = 0.f, oqm = 255.f;
};

__device__ __forceinline__ EpiScalars load_scalars(const EpiParams& e) {
  EpiScalars s;
  s.zx = *e.x_zp;
  if (e.kind == kOutF32 || e.kind == kOutU8 || e.kind == kOutI32) s.sx = *e.x_scale;
  if (e.kind == kOutU8 || e.kind == kOutI32) {
    s.os = *e.out_scale;
    s.oz = static_cast<float>(*e.out_zp);
    s.oqm = static_cast<float>(arith::max_code(e.out_bits));
  }
  return s;
}

// n < N.
__device__ __forceinline__ ColTerms col_terms(const EpiParams& e, const EpiScalars& s, int64_t n) {
  ColTerms c;
  const int32_t zw = e.wzp[n];
  c.colw = arith::zp_col_weight(zw, e.shift);
  c.colc = arith::zp_col_const(e.K, s.zx, zw, e.colsum[n]);
  if (e.kind == kOutF32 || e.kind == kOutU8 || e.kind == kOutI32) {
    // mult = (s_x * s_w[n]) * affine_scale[n] in float32, the CPU binding's order.
    c.mult = arith::mul_rn(e.w_scale[n], s.sx);
    if (e.aff_scale != nullptr) c.mult = arith::mul_rn(c.mult, e.aff_scale[n]);
    if (e.aff_bias != nullptr) c.bias = e.aff_bias[n];
  }
  return c;
}

__device__ __forceinline__ float epilogue_value(float a, const ColTerms& c, bool bias, bool relu) {
  if (bias) {
    return relu ? arith::epilogue<float, true, true>(a, c.mult, c.bias)
                : arith::epilogue<float, true, false>(a, c.mult, c.bias);
  }
  return relu ? arith::epilogue<float, false, true>(a, c.mult, 0.f)
              : arith::epilogue<float, false, false>(a, c.mult, 0.f);
}

// Writes output (m, n) from the product sum T (m < M, n < N). kOutPartialT adds T to the split-K
// workspace instead (wrapping int64 adds: exact, order-independent).
__device__ __forceinline__ void store_output(const EpiParams& e, const EpiScalars& s, const ColTerms& c, int64_t rowsum,
                                             int64_t m, int64_t n, int64_t t) {
  const int64_t i = m * e.ldo + n;
  if (e.kind == kOutPartialT) {
    atomicAdd(reinterpret_cast<unsigned long long*>(e.ws + i), static_cast<unsigned long long>(t));
    return;
  }
  const int64_t acc = arith::acc_from_terms(t, rowsum, c.colw, c.colc);
  if (e.kind == kOutAccI64) {
    static_cast<int64_t*>(e.out)[i] = acc;
    return;
  }
  const float y = epilogue_value(static_cast<float>(acc), c, e.aff_bias != nullptr, e.relu);
  if (e.kind == kOutF32) {
    static_cast<float*>(e.out)[i] = y;
    return;
  }
  const int32_t q = static_cast<int32_t>(arith::quantize(y, s.os, s.oz, s.oqm));
  if (e.kind == kOutU8)
    static_cast<uint8_t*>(e.out)[i] = static_cast<uint8_t>(q);
  else
    static_cast<int32_t*>(e.out)[i] = q;
}

// Outputs (m, n) and (m, n + 1) as one vector store (n + 1 < N and m * ldo + n even, so the pair is
// aligned to its size: every output tensor is freshly allocated), else two scalar ones.
__device__ __forceinline__ void store_pair(const EpiParams& e, const EpiScalars& s, const ColTerms& c0,
                                           const ColTerms& c1, int64_t rowsum, int64_t m, int64_t n, int64_t N,
                                           int64_t t0, int64_t t1) {
  const int64_t i = m * e.ldo + n;
  if (n + 1 >= N || (i & 1) != 0 || e.kind == kOutPartialT) {
    store_output(e, s, c0, rowsum, m, n, t0);
    if (n + 1 < N) store_output(e, s, c1, rowsum, m, n + 1, t1);
    return;
  }
  const int64_t a0 = arith::acc_from_terms(t0, rowsum, c0.colw, c0.colc);
  const int64_t a1 = arith::acc_from_terms(t1, rowsum, c1.colw, c1.colc);
  if (e.kind == kOutAccI64) {
    *reinterpret_cast<longlong2*>(static_cast<int64_t*>(e.out) + i) = make_longlong2(a0, a1);
    return;
  }
  const bool bias = e.aff_bias != nullptr;
  const float y0 = epilogue_value(static_cast<float>(a0), c0, bias, e.relu);
  const float y1 = epilogue_value(static_cast<float>(a1), c1, bias, e.relu);
  if (e.kind == kOutF32) {
    *reinterpret_cast<float2*>(static_cast<float*>(e.out) + i) = make_float2(y0, y1);
    return;
  }
  const int32_t q0 = static_cast<int32_t>(arith::quantize(y0, s.os, s.oz, s.oqm));
  const int32_t q1 = static_cast<int32_t>(arith::quantize(y1, s.os, s.oz, s.oqm));
  if (e.kind == kOutU8)
    *reinterpret_cast<uchar2*>(static_cast<uint8_t*>(e.out) + i) =
        make_uchar2(static_cast<unsigned char>(q0), static_cast<unsigned char>(q1));
  else
    *reinterpret_cast<int2*>(static_cast<int32_t*>(e.out) + i) = make_int2(q0, q1);
}

}  // namespace dwq::cuda

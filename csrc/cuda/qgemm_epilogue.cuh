// Epilogue of the CUDA integer engine: exact int64 accumulator from the tensor-core partial T and
// the zero-point terms, then arith.h's float steps (scale, affine, ReLU, requantize), as the CPU
// driver's store_row does (csrc/cpu/qgemm_driver_epilogue.inc.h), value for value.
#pragma once
#include <cstdint>
#include <type_traits>

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
  bool w_zp_shifted = false;
  float sx = 1.f, os = 1.f, oz = 0.f, oqm = 255.f;
};

__device__ __forceinline__ EpiScalars load_scalars(const EpiParams& e) {
  EpiScalars s;
  s.zx = *e.x_zp;
  s.w_zp_shifted = e.w_zp_shifted != nullptr && *e.w_zp_shifted != 0;
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
  c.colw = arith::zp_col_weight(zw, s.w_zp_shifted ? zw : e.shift);
  c.colc = arith::zp_col_const(e.K, s.zx, zw, e.colsum[n]);
  if (e.kind == kOutF32 || e.kind == kOutU8 || e.kind == kOutI32) {
    // mult = (s_x * s_w[n]) * affine_scale[n] in float32, the CPU binding's order.
    c.mult = arith::mul_rn(e.w_scale[n], s.sx);
    if (e.aff_scale != nullptr) c.mult = arith::mul_rn(c.mult, e.aff_scale[n]);
    if (e.aff_bias != nullptr) c.bias = e.aff_bias[n];
  }
  return c;
}

// C: ColTerms or ColTerms32 (below).
template <class C>
__device__ __forceinline__ float epilogue_value(float a, const C& c, bool bias, bool relu) {
  if (bias) {
    return relu ? arith::epilogue<float, true, true>(a, c.mult, c.bias)
                : arith::epilogue<float, true, false>(a, c.mult, c.bias);
  }
  return relu ? arith::epilogue<float, false, true>(a, c.mult, 0.f)
              : arith::epilogue<float, false, false>(a, c.mult, 0.f);
}

// A column's terms mod 2^32 and its float factors: the int32 epilogue's (EpiParams::acc32; the CPU
// fast path's arithmetic, arith::acc_from_terms32).
struct alignas(16) ColTerms32 {
  uint32_t colw, colc;
  float mult, bias;
};

// Column n's terms of either kind; a column n >= N gets zeros (never stored).
template <class C>
__device__ __forceinline__ C col_terms_of(const EpiParams& e, const EpiScalars& s, int64_t n, int64_t N) {
  if (n >= N) return C{};
  const ColTerms c = col_terms(e, s, n);
  if constexpr (std::is_same_v<C, ColTerms32>) {
    return ColTerms32{static_cast<uint32_t>(c.colw), static_cast<uint32_t>(c.colc), c.mult, c.bias};
  } else {
    return c;
  }
}

// acc from the product sum t and the row sum: exact in int64, or in wrapping int32 arithmetic where
// every acc fits int32 (ColTerms32; rowsum mod 2^32).
__device__ __forceinline__ int64_t acc_of(const ColTerms& c, int64_t rowsum, int64_t t) {
  return arith::acc_from_terms(t, rowsum, c.colw, c.colc);
}
__device__ __forceinline__ int32_t acc_of(const ColTerms32& c, uint32_t rowsum, int32_t t) {
  return arith::acc_from_terms32(t, rowsum, c.colw, c.colc);
}

// The element type that output kind KIND stores (kOutPartialT: the split-K workspace's int64 T).
template <int KIND>
using OutT = std::conditional_t<KIND == kOutF32, float,
                                std::conditional_t<KIND == kOutU8, uint8_t,
                                                   std::conditional_t<KIND == kOutI32, int32_t, int64_t>>>;

// The output of kind KIND (not kOutPartialT) of accumulator acc: arith.h's float steps, then the
// requantization for the code kinds.
template <int KIND, class C, class A>
__device__ __forceinline__ OutT<KIND> out_value(const EpiParams& e, const EpiScalars& s, const C& c, A acc) {
  if constexpr (KIND == kOutAccI64) {
    return static_cast<int64_t>(acc);
  } else {
    const float y = epilogue_value(static_cast<float>(acc), c, e.aff_bias != nullptr, e.relu);
    if constexpr (KIND == kOutF32) return y;
    else return static_cast<OutT<KIND>>(static_cast<int32_t>(arith::quantize(y, s.os, s.oz, s.oqm)));
  }
}

// Outputs i and i + 1 (the next column, if `second`) of kind KIND at `base` (the output, or the
// split-K workspace for kOutPartialT, which adds T there: wrapping int64 adds, exact and
// order-independent) from the product sums t0, t1: one vector store where the pair is aligned to its
// size (i even: every output is freshly allocated), else scalar ones.
template <int KIND, class C, class R, class T>
__device__ __forceinline__ void store_pair_k(const EpiParams& e, const EpiScalars& s, const C& c0, const C& c1,
                                             R rowsum, OutT<KIND>* base, int64_t i, bool second, T t0, T t1) {
  if constexpr (KIND == kOutPartialT) {
    atomicAdd(reinterpret_cast<unsigned long long*>(base + i), static_cast<unsigned long long>(t0));
    if (second) atomicAdd(reinterpret_cast<unsigned long long*>(base + i + 1), static_cast<unsigned long long>(t1));
  } else {
    const OutT<KIND> v0 = out_value<KIND>(e, s, c0, acc_of(c0, rowsum, t0));
    if (!second) {
      base[i] = v0;
      return;
    }
    const OutT<KIND> v1 = out_value<KIND>(e, s, c1, acc_of(c1, rowsum, t1));
    if ((i & 1) != 0) {
      base[i] = v0;
      base[i + 1] = v1;
    } else if constexpr (KIND == kOutAccI64) {
      *reinterpret_cast<longlong2*>(base + i) = make_longlong2(v0, v1);
    } else if constexpr (KIND == kOutF32) {
      *reinterpret_cast<float2*>(base + i) = make_float2(v0, v1);
    } else if constexpr (KIND == kOutU8) {
      *reinterpret_cast<uchar2*>(base + i) = make_uchar2(v0, v1);
    } else {
      *reinterpret_cast<int2*>(base + i) = make_int2(v0, v1);
    }
  }
}

// The same with the kind read at run time (e.kind), int64 terms: outputs (m, n) and (m, n + 1) if
// n + 1 < N.
__device__ __forceinline__ void store_pair(const EpiParams& e, const EpiScalars& s, const ColTerms& c0,
                                           const ColTerms& c1, int64_t rowsum, int64_t m, int64_t n, int64_t N,
                                           int64_t t0, int64_t t1) {
  const int64_t i = m * e.ldo + n;
  const bool second = n + 1 < N;
  switch (e.kind) {
    case kOutPartialT:
      return store_pair_k<kOutPartialT>(e, s, c0, c1, rowsum, e.ws, i, second, t0, t1);
    case kOutAccI64:
      return store_pair_k<kOutAccI64>(e, s, c0, c1, rowsum, static_cast<int64_t*>(e.out), i, second, t0, t1);
    case kOutF32:
      return store_pair_k<kOutF32>(e, s, c0, c1, rowsum, static_cast<float*>(e.out), i, second, t0, t1);
    case kOutU8:
      return store_pair_k<kOutU8>(e, s, c0, c1, rowsum, static_cast<uint8_t*>(e.out), i, second, t0, t1);
    default:
      return store_pair_k<kOutI32>(e, s, c0, c1, rowsum, static_cast<int32_t*>(e.out), i, second, t0, t1);
  }
}

// Output (m, n) alone (m < M, n < N).
__device__ __forceinline__ void store_output(const EpiParams& e, const EpiScalars& s, const ColTerms& c, int64_t rowsum,
                                             int64_t m, int64_t n, int64_t t) {
  store_pair(e, s, c, c, rowsum, m, n, n + 1, t, t);
}

}  // namespace dwq::cuda

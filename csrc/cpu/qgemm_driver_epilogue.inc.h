// Epilogue of the integer GEMM engine (part of qgemm_driver.inc.h, which includes it): exact
// accumulators -> y = acc * mult (+ bias), ReLU -> float32 or requantized codes (or a residual
// added first, then the ReLU, float32 and codes: Residual in qgemm.h), all through
// csrc/common/arith.h (the one definition of the contract's scalar steps). store_row serves the
// int64 paths; fused_tile / an ISA's isa_fused_tile the int32 fast path, with the zero-point terms
// folded in. Include-free: compiled inside the including ISA file's namespace and target region.

namespace {

// Final per-row epilogue on exact accumulators acc[0..nv) (the int64 paths).
template <bool BIAS, bool RELU, typename AccT>
inline void epilogue_values(const AccT* __restrict acc, const float* __restrict mult, const float* __restrict bias,
                            float* __restrict y, int64_t nv) {
  for (int64_t j = 0; j < nv; ++j)
    y[j] = arith::epilogue<float, BIAS, RELU>(static_cast<float>(acc[j]), mult[j], BIAS ? bias[j] : 0.f);
}

// The residual output of row m's values y[0..nv) (Residual in qgemm.h): y + residual, the ReLU, float
// out and the codes; returns the row's NaN results (counted only where codes are made).
inline int64_t residual_row(const float* __restrict y, int64_t nv, const Epilogue& ep, int64_t m, int64_t n0) {
  const int64_t at = m * ep.ldo + n0;
  const float* __restrict res = ep.res.residual + at;
  float* __restrict o = static_cast<float*>(ep.out) + at;
  for (int64_t j = 0; j < nv; ++j) {
    const float v = y[j] + res[j];
    o[j] = ep.relu && v < 0.f ? 0.f : v;
  }
  if (ep.res.codes == nullptr) return 0;
  const float s = ep.out_scale, z = static_cast<float>(ep.out_zp);
  const float qm = static_cast<float>(arith::max_code(ep.out_bits));
  int64_t nans = 0;
  for (int64_t j = 0; j < nv; ++j) {
    const float v = o[j];
    nans += v != v;
    const int32_t q = static_cast<int32_t>(arith::quantize(v != v ? 0.f : v, s, z, qm));  // NaN: counted, code zp
    if (ep.res.codes_u8)
      static_cast<uint8_t*>(ep.res.codes)[at + j] = static_cast<uint8_t>(q);
    else
      static_cast<int32_t*>(ep.res.codes)[at + j] = q;
  }
  return nans;
}

inline void count_nans(const Epilogue& ep, int64_t n) {
  if (n != 0) ep.res.nans->fetch_add(n, std::memory_order_relaxed);
}

template <typename AccT>
inline void store_row(const AccT* __restrict acc, int64_t nv, const Epilogue& ep, int64_t m, int64_t n0) {
  if (ep.kind == OutKind::acc_i64) {
    int64_t* __restrict o = static_cast<int64_t*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = static_cast<int64_t>(acc[j]);
    return;
  }
  alignas(64) float y[kBlockN];
  const float* mult = ep.mult + n0;
  const float* bias = ep.bias != nullptr ? ep.bias + n0 : nullptr;
  const bool relu = ep.relu && ep.res.residual == nullptr;  // (a residual's ReLU comes after its add)
  if (bias != nullptr)
    relu ? epilogue_values<true, true>(acc, mult, bias, y, nv) : epilogue_values<true, false>(acc, mult, bias, y, nv);
  else
    relu ? epilogue_values<false, true>(acc, mult, bias, y, nv) : epilogue_values<false, false>(acc, mult, bias, y, nv);
  if (ep.res.residual != nullptr) {
    count_nans(ep, residual_row(y, nv, ep, m, n0));
    return;
  }
  if (ep.kind == OutKind::f32) {
    float* __restrict o = static_cast<float*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = y[j];
    return;
  }
  const float s = ep.out_scale, z = static_cast<float>(ep.out_zp);
  const float qm = static_cast<float>(arith::max_code(ep.out_bits));
  for (int64_t j = 0; j < nv; ++j) y[j] = arith::quantize(y[j], s, z, qm);
  if (ep.kind == OutKind::codes_u8) {
    uint8_t* __restrict o = static_cast<uint8_t*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = static_cast<uint8_t>(static_cast<int32_t>(y[j]));
  } else {
    int32_t* __restrict o = static_cast<int32_t*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = static_cast<int32_t>(y[j]);
  }
}

// Single-pass epilogue of the int32 fast path for a whole tile (rows r < mr, columns j < nv): the
// zero-point corrections, scaling, affine, ReLU and output conversion fused into one loop per row,
// specialized on the output kind and flags so the loop has no branches; the same arith.h steps as
// store_row. ROWS: the row sums' term is there (not for a zp_shifted blob, whose column weights are 0).
template <OutKind KIND, bool BIAS, bool RELU, bool ROWS, typename OutT>
inline void fused_row(const int32_t* __restrict t, uint32_t rsr, const uint32_t* __restrict colw,
                      const uint32_t* __restrict colc, const float* __restrict mult, const float* __restrict bias,
                      float s, float z, float qm, OutT* __restrict o, int64_t nv) {
  for (int64_t j = 0; j < nv; ++j) {
    const int32_t acc = ROWS ? arith::acc_from_terms32(t[j], rsr, colw[j], colc[j])
                             : arith::acc_from_terms32(t[j], 0u, 0u, colc[j]);
    const float y = arith::epilogue<float, BIAS, RELU>(static_cast<float>(acc), mult[j], BIAS ? bias[j] : 0.f);
    if constexpr (KIND == OutKind::f32)
      o[j] = y;
    else
      o[j] = static_cast<OutT>(static_cast<int32_t>(arith::quantize(y, s, z, qm)));
  }
}

template <OutKind KIND, bool BIAS, bool RELU, bool ROWS>
void fused_tile(const int32_t* t32, int mr, int64_t nv, const int64_t* rs, const uint32_t* colw, const uint32_t* colc,
                const Epilogue& ep, int64_t m, int64_t n0) {
  using OutT = std::conditional_t<KIND == OutKind::f32, float, std::conditional_t<KIND == OutKind::codes_u8, uint8_t, int32_t>>;
  const float* mult = ep.mult + n0;
  const float* bias = BIAS ? ep.bias + n0 : nullptr;
  const float s = ep.out_scale, z = static_cast<float>(ep.out_zp);
  const float qm = static_cast<float>(arith::max_code(ep.out_bits));
  OutT* out = static_cast<OutT*>(ep.out) + m * ep.ldo + n0;
  const int64_t ldo = ep.ldo;
  for (int r = 0; r < mr; ++r)
    fused_row<KIND, BIAS, RELU, ROWS, OutT>(t32 + r * kBlockN, static_cast<uint32_t>(rs[r]), colw, colc, mult, bias, s, z, qm,
                                      out + r * ldo, nv);
}

// fused_tile's residual output (Residual in qgemm.h): each row's epilogue values (no ReLU: it comes
// after the add), then residual_row.
template <bool BIAS, bool ROWS>
void residual_tile(const int32_t* t32, int mr, int64_t nv, const int64_t* rs, const uint32_t* colw,
                   const uint32_t* colc, const Epilogue& ep, int64_t m, int64_t n0) {
  alignas(64) float y[kBlockN];
  const float* mult = ep.mult + n0;
  const float* bias = BIAS ? ep.bias + n0 : nullptr;
  int64_t nans = 0;
  for (int r = 0; r < mr; ++r) {
    const int64_t ahead = (m + r + 16) * ep.ldo + n0;  // (the next tile's lines: isa_residual_tile says why)
    for (int64_t j = 0; j < nv; j += 16) {
      __builtin_prefetch(ep.res.residual + ahead + j, 0);
      __builtin_prefetch(static_cast<float*>(ep.out) + ahead + j, 1);
    }
    fused_row<OutKind::f32, BIAS, false, ROWS, float>(t32 + r * kBlockN, static_cast<uint32_t>(rs[r]), colw, colc, mult,
                                                bias, 0.f, 0.f, 0.f, y, nv);
    nans += residual_row(y, nv, ep, m + r, n0);
  }
  count_nans(ep, nans);
}

using FusedTileFn = void (*)(const int32_t*, int, int64_t, const int64_t*, const uint32_t*, const uint32_t*,
                             const Epilogue&, int64_t, int64_t);

// ROWS: some column weight is not 0, so the row sums' term is there.
template <OutKind KIND, bool ROWS>
FusedTileFn pick_fused_kind(const Epilogue& ep) {
#ifdef DWQ_ISA_FUSED  // the ISA file's explicit version of fused_tile
  if (ep.bias != nullptr)
    return ep.relu ? &isa_fused_tile<KIND, true, true, ROWS> : &isa_fused_tile<KIND, true, false, ROWS>;
  return ep.relu ? &isa_fused_tile<KIND, false, true, ROWS> : &isa_fused_tile<KIND, false, false, ROWS>;
#else
  if (ep.bias != nullptr) return ep.relu ? &fused_tile<KIND, true, true, ROWS> : &fused_tile<KIND, true, false, ROWS>;
  return ep.relu ? &fused_tile<KIND, false, true, ROWS> : &fused_tile<KIND, false, false, ROWS>;
#endif
}

template <bool ROWS>
FusedTileFn pick_fused_rows(const Epilogue& ep) {
  if (ep.kind == OutKind::f32 && ep.res.residual != nullptr) {
#ifdef DWQ_ISA_FUSED
    return ep.bias != nullptr ? &isa_residual_tile<true, ROWS> : &isa_residual_tile<false, ROWS>;
#else
    return ep.bias != nullptr ? &residual_tile<true, ROWS> : &residual_tile<false, ROWS>;
#endif
  }
  switch (ep.kind) {
    case OutKind::f32: return pick_fused_kind<OutKind::f32, ROWS>(ep);
    case OutKind::codes_u8: return pick_fused_kind<OutKind::codes_u8, ROWS>(ep);
    case OutKind::codes_i32: return pick_fused_kind<OutKind::codes_i32, ROWS>(ep);
    default: return nullptr;  // int64 accumulators: store_row
  }
}

FusedTileFn pick_fused(const Epilogue& ep, bool rows) { return rows ? pick_fused_rows<true>(ep) : pick_fused_rows<false>(ep); }

}  // namespace

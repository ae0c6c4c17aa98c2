// The AVX-512 pieces of the integer engine's driver that do not depend on the microkernel: the int32
// fast path's fused epilogue, the single-pass im2col row packer and, through it, the activation
// packer's copy + sum, and the activation quantization (the optional DWQ_ISA_FUSED,
// DWQ_ISA_ROWPACK, DWQ_ISA_COPY_SUM and DWQ_ISA_QUANTIZE of qgemm_driver.inc.h). Textually
// included, like the driver, by each ISA file whose target region has AVX-512
// (qgemm_avx512vnni.cpp, qgemm_amx.cpp), inside its own namespace: include-free.

// Explicit AVX-512 fused epilogue of the int32 fast path (the driver's fused_tile): arith.h's
// acc_from_terms32, epilogue<BIAS, RELU> and quantize, lane by lane, with arith's constants: the
// same float operations in the same order (clamps as min/max, which agree with arith's compares
// because no value here can be NaN: accumulators are finite integers, mult/bias/scale finite).
// (arith's templates are not instantiated on __m512 itself: an always-inline generic template with
// 512-bit vector arguments is rejected by Clang's ABI check; test_qgemm/test_qconv compare this
// path bit for bit with the scalar one.)
#define DWQ_ISA_FUSED 1
// (masked forms with an all-ones mask: the plain ones read _mm512_undefined_* and GCC 12 warns)
static inline __m512 fmax(__m512 a, __m512 b) { return _mm512_maskz_max_ps(__mmask16(0xFFFF), a, b); }
static inline __m512 fmin(__m512 a, __m512 b) { return _mm512_maskz_min_ps(__mmask16(0xFFFF), a, b); }
// The requantized code clamp(round_half_even(y / s) + z, 0, qmax), with as few divisions as
// exactness allows (a 16-lane vdivps bounded the requantizing epilogue). The quotient is clamped to
// [-z, qmax - z] before rounding instead of to +-2^22 (rounding is monotone and the bounds are
// integers, so the code is the same) and the code needs no clamp after. With inv = RN(1 / s):
// - s a power of two: RN(y * inv) is RN(y / s) (both round the same exact value);
// - far = max(z, qmax - z) <= 1024 (codes of up to 10 bits, 11 with a centred zero point) and
//   2^-100 <= s <= 2^100 (inv normal, far from overflow):
//   a = RN(y * inv) is within 1.6 * 2^-23 |a| of RN(y / s), so once both are clamped (which only
//   brings them closer; beyond twice the range both clamp to the same bound) they are within
//   2^-21 far of each other and round to the same integer k when |a - k| < 1/2 - 2^-20 far (a - k
//   is exact by Sterbenz). A vector with a lane nearer a half-integer divides (about 1 in 100 at
//   8 bits);
// - otherwise it divides.
// The code comes out of the rounding's own bits: with |q| < 2^22 integral after the add of the magic
// 1.5 * 2^23, t = q + magic has the bits of magic's plus q, so code = bits(t) - (bits(magic) - z), one
// integer subtraction where the float ones were a subtraction, an add and a conversion. relu: the
// epilogue's ReLU folded into the lower bound (max(y, 0) / s = max(y / s, 0) for s > 0; -z <= 0, so
// the bound becomes 0; no NaN reaches here).
struct Requant {
  int mode;  // 0: divide, 1: multiply by inv (s a power of two), 2: multiply and check
  __m512 s, inv, lo, hi, bnd, magic;
  __m512i off;  // bits(magic) - z
  explicit Requant(const Epilogue& ep, bool relu = false) : Requant(ep.out_scale, ep.out_zp, ep.out_bits, relu) {}
  Requant(float scale, int32_t zp, int bits, bool relu = false) {
    const float r = 1.f / scale;
    const float qm = static_cast<float>(arith::max_code(bits)), zf = static_cast<float>(zp);
    const float far = std::max(zf, qm - zf);
    const bool pow2 = r > 0.f && r <= 0x1.fffffep127f && static_cast<double>(scale) * static_cast<double>(r) == 1.0;
    mode = pow2 ? 1 : far <= 1024.f && scale >= 0x1p-100f && scale <= 0x1p100f ? 2 : 0;
    s = _mm512_set1_ps(scale);
    inv = _mm512_set1_ps(r);
    lo = _mm512_set1_ps(relu ? 0.f : -zf);
    hi = _mm512_set1_ps(qm - zf);
    bnd = _mm512_set1_ps(0.5f - far * 0x1p-20f);
    magic = _mm512_set1_ps(arith::Rne<float>::magic);
    int32_t mbits;
    std::memcpy(&mbits, &arith::Rne<float>::magic, sizeof(mbits));
    off = _mm512_set1_epi32(mbits - zp);
  }
  // The codes of y's 16 lanes, as int32.
  inline __m512i codes(__m512 y) const {
    if (mode == 2) {
      const __m512 a = fmin(fmax(_mm512_mul_ps(y, inv), lo), hi);
      const __m512 t = _mm512_add_ps(a, magic);
      const __m512 k = _mm512_sub_ps(t, magic);
      if (_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(a, k)), bnd, _CMP_LT_OQ) == __mmask16(0xFFFF))
        return _mm512_sub_epi32(_mm512_castps_si512(t), off);
    }
    const __m512 q = fmin(fmax(mode == 1 ? _mm512_mul_ps(y, inv) : _mm512_div_ps(y, s), lo), hi);
    return _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(q, magic)), off);
  }
};

// The tile's per-column epilogue terms (up to 64 columns in four vectors; lanes past nv masked off)
// and, per row, arith's acc_from_terms32 and epilogue's float part (no ReLU) of a vector. ROWS: the
// row sums' term is there (its multiply skipped where every column weight is 0: a zp_shifted blob).
template <bool BIAS, bool ROWS>
struct TileCols {
  __mmask16 km[4];
  __m512i cw[4], cc[4];
  __m512 mu[4], bi[4];
  int nvec;
  TileCols(int64_t nv, const uint32_t* colw, const uint32_t* colc, const float* mult, const float* bias)
      : nvec(static_cast<int>((nv + 15) / 16)) {
    for (int v = 0; v < 4; ++v) {
      const int64_t left = nv - 16 * v;
      km[v] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
      cw[v] = _mm512_loadu_si512(colw + 16 * v);
      cc[v] = _mm512_loadu_si512(colc + 16 * v);
      mu[v] = _mm512_maskz_loadu_ps(km[v], mult + 16 * v);
      bi[v] = BIAS ? _mm512_maskz_loadu_ps(km[v], bias + 16 * v) : _mm512_setzero_ps();
    }
  }
  // acc_from_terms32: t + rowsum * col_weight + col_const, wrapping; then acc * mult (+ bias)
  inline __m512 y(const int32_t* t, __m512i rsr, int v) const {
    __m512i acc = _mm512_add_epi32(_mm512_loadu_si512(t + 16 * v), cc[v]);
    if constexpr (ROWS) acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(rsr, cw[v]));
    const __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(__mmask16(0xFFFF), acc), mu[v]);
    return BIAS ? _mm512_add_ps(y, bi[v]) : y;
  }
};

static inline __m512i row_sum(int64_t rs) { return _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(rs))); }

template <OutKind KIND, bool BIAS, bool RELU, bool ROWS>
static void isa_fused_tile(const int32_t* t32, int mr, int64_t nv, const int64_t* rs, const uint32_t* colw,
                           const uint32_t* colc, const Epilogue& ep, int64_t m, int64_t n0) {
  const TileCols<BIAS, ROWS> tc(nv, colw, colc, ep.mult + n0, BIAS ? ep.bias + n0 : nullptr);
  const __m512 zero = _mm512_setzero_ps();
  const Requant rq(ep, RELU);  // (codes: the ReLU is its lower bound)
  for (int r = 0; r < mr; ++r) {
    const __m512i rsr = ROWS ? row_sum(rs[r]) : _mm512_setzero_si512();
    const int32_t* t = t32 + r * kBlockN;
    const int64_t row = (m + r) * ep.ldo + n0;
    for (int v = 0; v < tc.nvec; ++v) {
      __m512 y = tc.y(t, rsr, v);
      if constexpr (KIND == OutKind::f32) {
        if constexpr (RELU) y = fmax(y, zero);
        _mm512_mask_storeu_ps(static_cast<float*>(ep.out) + row + 16 * v, tc.km[v], y);
      } else {
        // quantize: clamp(round_half_even_clamped(y / s) + z, 0, qmax)
        const __m512i qi = rq.codes(y);
        if constexpr (KIND == OutKind::codes_u8)
          _mm512_mask_cvtepi32_storeu_epi8(static_cast<uint8_t*>(ep.out) + row + 16 * v, tc.km[v], qi);
        else
          _mm512_mask_storeu_epi32(static_cast<int32_t*>(ep.out) + row + 16 * v, tc.km[v], qi);
      }
    }
  }
}

// isa_fused_tile's residual output (Residual in qgemm.h; the generic residual_tile's values): y =
// acc * mult (+ bias), + residual (one add), ReLU as `v < 0 ? 0 : v` (a blend: NaN and -0 kept, as the
// residual add_relu_ keeps them), float32 out, and the codes through Requant with NaN counted (code zp).
template <bool BIAS, bool ROWS>
static void isa_residual_tile(const int32_t* t32, int mr, int64_t nv, const int64_t* rs, const uint32_t* colw,
                              const uint32_t* colc, const Epilogue& ep, int64_t m, int64_t n0) {
  const TileCols<BIAS, ROWS> tc(nv, colw, colc, ep.mult + n0, BIAS ? ep.bias + n0 : nullptr);
  const __m512 zero = _mm512_setzero_ps();
  const Requant rq(ep);
  int64_t nans = 0;
  for (int r = 0; r < mr; ++r) {
    const __m512i rsr = ROWS ? row_sum(rs[r]) : _mm512_setzero_si512();
    const int32_t* t = t32 + r * kBlockN;
    const int64_t at = (m + r) * ep.ldo + n0;
    // The residual's rows are read (and the output's written) one 64-column slice at a time, a row
    // stride apart: a pattern the hardware prefetchers miss (a cold residual made the fused conv
    // slower than conv + add: 4.6 against 3.3 ms at ResNet-50's first conv3, b8). Ask for the next
    // tile's lines (16 rows ahead) while this one is finished.
    const char* ahead = reinterpret_cast<const char*>(ep.res.residual + at + 16 * ep.ldo);
    const char* out_ahead = reinterpret_cast<const char*>(static_cast<float*>(ep.out) + at + 16 * ep.ldo);
    for (int v = 0; v < tc.nvec; ++v) {
      _mm_prefetch(ahead + 64 * v, _MM_HINT_T0);
      _mm_prefetch(out_ahead + 64 * v, _MM_HINT_ET0);
    }
    for (int v = 0; v < tc.nvec; ++v) {
      __m512 y = _mm512_add_ps(tc.y(t, rsr, v), _mm512_maskz_loadu_ps(tc.km[v], ep.res.residual + at + 16 * v));
      if (ep.relu) y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, zero, _CMP_LT_OQ), zero);
      _mm512_mask_storeu_ps(static_cast<float*>(ep.out) + at + 16 * v, tc.km[v], y);
      if (ep.res.codes == nullptr) continue;
      const __mmask16 nan = _mm512_mask_cmp_ps_mask(tc.km[v], y, y, _CMP_UNORD_Q);
      nans += _mm_popcnt_u32(nan);
      const __m512i q = rq.codes(_mm512_maskz_mov_ps(~nan, y));
      if (ep.res.codes_u8)
        _mm512_mask_cvtepi32_storeu_epi8(static_cast<uint8_t*>(ep.res.codes) + at + 16 * v, tc.km[v], q);
      else
        _mm512_mask_storeu_epi32(static_cast<int32_t*>(ep.res.codes) + at + 16 * v, tc.km[v], q);
    }
  }
  if (nans != 0) ep.res.nans->fetch_add(nans, std::memory_order_relaxed);
}

// Activation quantization (the driver's quantize, same contract): 16 values a step through Requant,
// NaN counted and given the code zp (as 0 would be).
#define DWQ_ISA_QUANTIZE 1
int64_t quantize(const float* x, int64_t n, float scale, int32_t zp, int bits, void* out, bool out_u8) {
  const Requant rq(scale, zp, bits);
  int64_t nans = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    const __mmask16 nan = _mm512_mask_cmp_ps_mask(k, v, v, _CMP_UNORD_Q);
    nans += _mm_popcnt_u32(nan);
    const __m512i q = rq.codes(_mm512_maskz_mov_ps(~nan, v));
    if (out_u8)
      _mm512_mask_cvtepi32_storeu_epi8(static_cast<uint8_t*>(out) + i, k, q);
    else
      _mm512_mask_storeu_epi32(static_cast<int32_t*>(out) + i, k, q);
  }
  return nans;
}

// 128-bit lanes (x0 + x1, x2 + x3, y0 + y1, y2 + y3): two pixel pairs' partial sums folded, so that
// two folds of four pairs leave the 8 pixels' sums in order (RowPack::copy_pixels).
static inline __m512i fold_lanes(__m512i x, __m512i y) {
  return _mm512_add_epi64(_mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Row packer of the im2col fast path (uint8 codes, one limb, dense channels-last): copies the taps
// of one row with 64-byte moves and keeps its sum (vpsadbw) and range check in registers, so the
// row is read and written once (no memcpy calls, no second pass over the packed row).
#define DWQ_ISA_ROWPACK 1
// GCC 12's _mm512_extracti64x4_epi64 passes _mm256_undefined_si256() as its merge operand, which
// -Wmaybe-uninitialized reports as a false positive wherever it is inlined.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
struct RowPack {
  __m512i acc = _mm512_setzero_si512();
  __m512i lim;
  int64_t bad = 0, extra = 0;
  bool check;
  explicit RowPack(uint32_t qmax)
      : lim(_mm512_set1_epi8(static_cast<char>(qmax > 255 ? 255 : qmax))), check(qmax < 255) {}
  inline void copy(const uint8_t* src, int64_t n, uint8_t* dst) {
    const __m512i zero = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m512i v = _mm512_loadu_si512(src + i);
      _mm512_storeu_si512(dst + i, v);
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
      if (check) bad += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
    }
    if (i < n) {
      const __mmask64 k = (__mmask64{1} << (n - i)) - 1;
      const __m512i v = _mm512_maskz_loadu_epi8(k, src + i);
      _mm512_mask_storeu_epi8(dst + i, k, v);
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
      if (check) bad += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
    }
  }
  inline void add(const uint8_t* src, int64_t n) {  // sum and range check only
    const __m512i zero = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m512i v = _mm512_loadu_si512(src + i);
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
      if (check) bad += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
    }
    if (i < n) {
      const __m512i v = _mm512_maskz_loadu_epi8((__mmask64{1} << (n - i)) - 1, src + i);
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
      if (check) bad += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
    }
  }
  inline void fill(uint8_t* dst, uint8_t val, int64_t n) {
    const __m512i v = _mm512_set1_epi8(static_cast<char>(val));
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, v);
    if (i < n) _mm512_mask_storeu_epi8(dst + i, (__mmask64{1} << (n - i)) - 1, v);
    extra += static_cast<int64_t>(val) * n;
  }
  // Copies npix pixels of C codes each (64 | C) and writes each pixel's code sum to sums[]; the
  // sums of 8 pixels are reduced together (unpacks and 128-bit lane shuffles: ~3 operations a pixel)
  // instead of one horizontal sum each (~7). Leaves the row sum (take) as it was.
  inline void copy_pixels(const uint8_t* src, int64_t npix, int64_t C, uint8_t* dst, int64_t* sums) {
    int64_t p = 0;
    for (; p + 8 <= npix; p += 8) {
      __m512i s[8];
      for (int j = 0; j < 8; ++j) s[j] = copy_pixel(src + (p + j) * C, C, dst + (p + j) * C);
      // a[j], 128-bit lane l: the lane-l partial sums of pixels 2j and 2j + 1
      __m512i a[4];
      for (int j = 0; j < 4; ++j)
        a[j] = _mm512_add_epi64(_mm512_unpacklo_epi64(s[2 * j], s[2 * j + 1]),
                                _mm512_unpackhi_epi64(s[2 * j], s[2 * j + 1]));
      _mm512_storeu_si512(sums + p, fold_lanes(fold_lanes(a[0], a[1]), fold_lanes(a[2], a[3])));
    }
    for (; p < npix; ++p) sums[p] = hsum(copy_pixel(src + p * C, C, dst + p * C));
  }
  // One pixel of copy_pixels: its 64-byte blocks copied and range-checked, their sums (vpsadbw) in
  // the 8 lanes returned.
  inline __m512i copy_pixel(const uint8_t* src, int64_t C, uint8_t* dst) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i t = zero;
    for (int64_t c = 0; c < C; c += 64) {
      const __m512i v = _mm512_loadu_si512(src + c);
      _mm512_storeu_si512(dst + c, v);
      t = _mm512_add_epi64(t, _mm512_sad_epu8(v, zero));
      if (check) bad += _mm_popcnt_u64(_mm512_cmpgt_epu8_mask(v, lim));
    }
    return t;
  }
  static inline int64_t hsum(__m512i v) {
    const __m256i h = _mm256_add_epi64(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    const __m128i q = _mm_add_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    return _mm_cvtsi128_si64(q) + _mm_extract_epi64(q, 1);
  }
  // The row's sum; resets for the next row.
  inline int64_t take() {
    const int64_t r = hsum(acc) + extra;
    acc = _mm512_setzero_si512();
    extra = 0;
    return r;
  }
};
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Byte copy + sum (vpsadbw) + out-of-range count for the activation packer: one RowPack row.
#define DWQ_ISA_COPY_SUM 1
static inline uint64_t copy_sum_u8(const uint8_t* src, int64_t n, uint8_t* dst, uint32_t qmax, int64_t* bad) {
  RowPack rp(qmax);
  rp.copy(src, n, dst);
  *bad += rp.bad;
  return static_cast<uint64_t>(rp.take());
}

// Blocked GEMM driver, activation packing (GEMM rows or im2col), fused epilogue and activation
// quantization of the integer engine (qgemm.h). Textually included by each per-ISA file inside its
// own namespace dwq::cpu::<isa>, after that file has defined
//   constexpr int kMR;                        rows per microkernel call
//   void ukernel(int mr, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kgroups, int32_t* C);
//     C[r][0..63] = sum_{k < 4*kgroups} A[r*lda + k] * B[(k/4)*256 + j*4 + k%4]   (r < mr <= kMR)
// so the same loops compile once per ISA (auto-vectorized with that ISA) without ODR clashes.
// Optional, for hand-written versions (the AVX-512 file defines all four):
//   DWQ_ISA_COPY_SUM uint64_t copy_sum_u8(const uint8_t* src, int64_t n, uint8_t* dst, uint32_t qmax,
//                    int64_t* bad): copies n bytes, returns their sum, adds the count of bytes > qmax
//                    to *bad (the generic loop below otherwise);
//   DWQ_ISA_FUSED    isa_fused_tile<KIND, BIAS, RELU>, same signature and results as fused_tile;
//   DWQ_ISA_ROWPACK  struct RowPack(qmax) { copy(src, n, dst); add(src, n); fill(dst, v, n); take(); bad; }
//                    (single-pass uint8 im2col rows with their sums and range check);
//   DWQ_ISA_IMPLICIT ukernel_taps(mr, rows, ntaps, kgt, B, C): the microkernel over per-row tap
//                    pointers (implicit-GEMM stride-1 conv; needs DWQ_ISA_ROWPACK for pixel sums).
// No #include here: the including file provides <algorithm>, <climits>, <cstring>, <type_traits>,
// <vector>.

namespace {

#ifndef DWQ_ISA_COPY_SUM
static inline uint64_t copy_sum_u8(const uint8_t* src, int64_t n, uint8_t* dst, uint32_t qmax, int64_t* bad) {
  uint64_t s = 0;
  int64_t b = 0;
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = src[i];
    s += src[i];
    b += src[i] > qmax;
  }
  *bad += b;
  return s;
}
#endif

// Steps the output pixel (n, oh, ow) of a conv row walk in row-major order.
inline void next_pixel(const ActSource& a, int64_t& n, int64_t& oh, int64_t& ow) {
  if (++ow == a.OW) {
    ow = 0;
    if (++oh == a.OH) {
      oh = 0;
      ++n;
    }
  }
}

#ifndef DWQ_ISA_IMPLICIT
inline void ukernel_taps(int, const uint8_t* const*, int64_t, int64_t, const int8_t*, int32_t*) {}  // never called
#endif

struct ThreadBuffers {
  std::vector<const uint8_t*> taps;  // implicit conv: [mc][kh*kw] slice pointers of one item
  std::vector<int64_t> psum;         // implicit conv: per-input-pixel code sums of one item
  std::vector<uint8_t> zline;        // implicit conv: C zero-point codes (the padding slice)
  std::vector<uint8_t> a;    // [limbs][mc][Kp] activation codes (u8 limbs) of one item
  std::vector<int64_t> rs;   // [mc] exact row sums of the codes
  std::vector<int64_t> colw, colc;      // [columns of the item] zero-point terms (see run)
  std::vector<uint32_t> colw32, colc32;  // the same mod 2^32 for the int32 fast path
};

ThreadBuffers& thread_buffers() {
  static thread_local ThreadBuffers b;
  return b;
}

constexpr int64_t kSumChunk = 32768;  // elements per uint32 partial sum (32768 * 65535 < 2^32)

// Copies n codes (element stride `stride`) into limb rows lo/hi (hi may be null); adds them to *sum
// and counts codes above qmax into *bad.
template <typename T>
inline void copy_codes(const T* src, int64_t n, int64_t stride, uint8_t* lo, uint8_t* hi, uint32_t qmax,
                       int64_t* sum, int64_t* bad) {
  if constexpr (sizeof(T) == 1) {
    if (stride == 1 && hi == nullptr) {  // the common case: uint8 codes along a contiguous K slice
      *sum += static_cast<int64_t>(copy_sum_u8(reinterpret_cast<const uint8_t*>(src), n, lo, qmax, bad));
      return;
    }
  }
  for (int64_t i0 = 0; i0 < n; i0 += kSumChunk) {
    const int64_t i1 = std::min(n, i0 + kSumChunk);
    uint32_t s = 0, b = 0;
    if (stride == 1) {
      if (hi != nullptr) {
        for (int64_t i = i0; i < i1; ++i) {
          const uint32_t v = static_cast<uint32_t>(src[i]);
          lo[i] = static_cast<uint8_t>(v);
          hi[i] = static_cast<uint8_t>(v >> 8);
          s += v;
          b += v > qmax;
        }
      } else {
        for (int64_t i = i0; i < i1; ++i) {
          const uint32_t v = static_cast<uint32_t>(src[i]);
          lo[i] = static_cast<uint8_t>(v);
          s += v;
          b += v > qmax;
        }
      }
    } else {
      for (int64_t i = i0; i < i1; ++i) {
        const uint32_t v = static_cast<uint32_t>(src[i * stride]);
        lo[i] = static_cast<uint8_t>(v);
        if (hi != nullptr) hi[i] = static_cast<uint8_t>(v >> 8);
        s += v;
        b += v > qmax;
      }
    }
    *sum += s;
    *bad += b;
  }
}

template <typename T>
int64_t pack_rows_t(const ActSource& a, const T* x, int64_t K, int64_t Kp, int lx, int64_t m0, int64_t rows,
                    int64_t mc, uint8_t* buf, int64_t* rs) {
  const uint32_t qmax = (uint32_t{1} << a.bits) - 1;
  const uint8_t zlo = static_cast<uint8_t>(a.zx & 255), zhi = static_cast<uint8_t>((a.zx >> 8) & 255);
  int64_t bad = 0;
  // uint8 codes of one limb with contiguous channels: assemble the row with plain copies, then
  // take its sum (padding codes included) and range check in one pass over the L1-hot row.
  const bool dense = a.is_conv && a.sc == 1 && a.sw == a.C;
  const bool u8_rows = sizeof(T) == 1 && lx == 1 && dense;
  int64_t ow = 0, oh = 0, n = 0;
  if (a.is_conv) {
    ow = m0 % a.OW;
    oh = (m0 / a.OW) % a.OH;
    n = m0 / (a.OW * a.OH);
  }
#ifdef DWQ_ISA_ROWPACK
  if (u8_rows) {  // the ISA's single-pass row packer
    RowPack rp(qmax);
    const uint8_t* x8 = reinterpret_cast<const uint8_t*>(x);
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* lo = buf + r * Kp;
      int64_t k = 0;
      for (int64_t ky = 0; ky < a.kh; ++ky) {
        const int64_t ih = oh * a.stride_h - a.pad_h + ky;
        if (ih < 0 || ih >= a.H) {
          rp.fill(lo + k, zlo, a.kw * a.C);
          k += a.kw * a.C;
          continue;
        }
        for (int64_t kx = 0; kx < a.kw;) {
          const int64_t iw = ow * a.stride_w - a.pad_w + kx;
          if (iw < 0 || iw >= a.W) {
            rp.fill(lo + k, zlo, a.C);
            k += a.C;
            ++kx;
            continue;
          }
          int64_t run = 1;
          while (kx + run < a.kw && iw + run < a.W) ++run;
          rp.copy(x8 + n * a.sn + ih * a.sh + iw * a.sw, run * a.C, lo + k);
          k += run * a.C;
          kx += run;
        }
      }
      if (Kp > K) std::memset(lo + K, 0, static_cast<size_t>(Kp - K));
      rs[r] = rp.take();
      next_pixel(a, n, oh, ow);
    }
    return rp.bad;
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = m0 + r;
    uint8_t* lo = buf + r * Kp;
    uint8_t* hi = lx == 2 ? buf + mc * Kp + r * Kp : nullptr;
    int64_t sum = 0;
    if (!a.is_conv) {
      copy_codes<T>(x + m * a.sm, K, a.sk, lo, hi, qmax, &sum, &bad);
    } else {
      // Dense channels-last input: the in-bounds taps of one kernel row are one contiguous run.
      int64_t k = 0;
      for (int64_t ky = 0; ky < a.kh; ++ky) {
        const int64_t ih = oh * a.stride_h - a.pad_h + ky;
        for (int64_t kx = 0; kx < a.kw; ++kx, k += a.C) {
          const int64_t iw = ow * a.stride_w - a.pad_w + kx;
          if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W) {
            int64_t run = 1;
            if (dense)
              while (kx + run < a.kw && iw + run < a.W) ++run;
            const T* src = x + n * a.sn + ih * a.sh + iw * a.sw;
            if (u8_rows)
              std::memcpy(lo + k, src, static_cast<size_t>(run * a.C));
            else
              copy_codes<T>(src, run * a.C, dense ? 1 : a.sc, lo + k, hi ? hi + k : nullptr, qmax, &sum, &bad);
            kx += run - 1;
            k += (run - 1) * a.C;
          } else {  // padding: the zero-point code, so the padded (qx - zx) is exactly 0
            std::memset(lo + k, zlo, static_cast<size_t>(a.C));
            if (hi) std::memset(hi + k, zhi, static_cast<size_t>(a.C));
            if (!u8_rows) sum += static_cast<int64_t>(a.zx) * a.C;
          }
        }
      }
      if (u8_rows) sum = static_cast<int64_t>(copy_sum_u8(lo, K, lo, qmax, &bad));
      next_pixel(a, n, oh, ow);
    }
    if (Kp > K) {
      std::memset(lo + K, 0, static_cast<size_t>(Kp - K));
      if (hi) std::memset(hi + K, 0, static_cast<size_t>(Kp - K));
    }
    rs[r] = sum;
  }
  return bad;
}

// Final per-row epilogue on exact accumulators acc[0..nv).
template <typename AccT>
inline void store_row(const AccT* __restrict acc, int64_t nv, const Epilogue& ep, int64_t m, int64_t n0) {
  if (ep.kind == OutKind::acc_i64) {
    int64_t* __restrict o = static_cast<int64_t*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = static_cast<int64_t>(acc[j]);
    return;
  }
  alignas(64) float y[kBlockN];
  const float* __restrict mult = ep.mult + n0;
  for (int64_t j = 0; j < nv; ++j) y[j] = static_cast<float>(acc[j]) * mult[j];
  if (ep.bias != nullptr) {
    const float* __restrict bias = ep.bias + n0;
    for (int64_t j = 0; j < nv; ++j) y[j] = y[j] + bias[j];
  }
  if (ep.relu)
    for (int64_t j = 0; j < nv; ++j) y[j] = y[j] > 0.f ? y[j] : 0.f;
  if (ep.kind == OutKind::f32) {
    float* __restrict o = static_cast<float*>(ep.out) + m * ep.ldo + n0;
    for (int64_t j = 0; j < nv; ++j) o[j] = y[j];
    return;
  }
  // Requantize: clamp(round_half_even(y / s') + z', 0, qmax). |y/s'| is clamped to 2^22 first (far
  // outside any code range), where adding and removing 1.5 * 2^23 rounds half to even exactly.
  const float s = ep.out_scale, z = static_cast<float>(ep.out_zp);
  const float qm = static_cast<float>((int64_t{1} << ep.out_bits) - 1);
  for (int64_t j = 0; j < nv; ++j) {
    float v = y[j] / s;
    v = v < -4194304.f ? -4194304.f : (v > 4194304.f ? 4194304.f : v);
    v = (v + 12582912.f) - 12582912.f;
    v = v + z;
    y[j] = v < 0.f ? 0.f : (v > qm ? qm : v);
  }
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
// specialized on the output kind and flags so the loop has no branches. Same float operations, in
// the same order, as store_row.
template <OutKind KIND, bool BIAS, bool RELU, typename OutT>
inline void fused_row(const int32_t* __restrict t, uint32_t rsr, const uint32_t* __restrict colw,
                      const uint32_t* __restrict colc, const float* __restrict mult, const float* __restrict bias,
                      float s, float z, float qm, OutT* __restrict o, int64_t nv) {
  for (int64_t j = 0; j < nv; ++j) {
    const int32_t acc = static_cast<int32_t>(static_cast<uint32_t>(t[j]) + rsr * colw[j] + colc[j]);
    float y = static_cast<float>(acc) * mult[j];
    if constexpr (BIAS) y = y + bias[j];
    if constexpr (RELU) y = y > 0.f ? y : 0.f;
    if constexpr (KIND == OutKind::f32) {
      o[j] = y;
    } else {
      float v = y / s;
      v = v < -4194304.f ? -4194304.f : (v > 4194304.f ? 4194304.f : v);
      v = (v + 12582912.f) - 12582912.f;
      v = v + z;
      v = v < 0.f ? 0.f : (v > qm ? qm : v);
      o[j] = static_cast<OutT>(static_cast<int32_t>(v));
    }
  }
}

template <OutKind KIND, bool BIAS, bool RELU>
void fused_tile(const int32_t* t32, int mr, int64_t nv, const int64_t* rs, const uint32_t* colw, const uint32_t* colc,
                const Epilogue& ep, int64_t m, int64_t n0) {
  using OutT = std::conditional_t<KIND == OutKind::f32, float, std::conditional_t<KIND == OutKind::codes_u8, uint8_t, int32_t>>;
  const float* mult = ep.mult + n0;
  const float* bias = BIAS ? ep.bias + n0 : nullptr;
  const float s = ep.out_scale, z = static_cast<float>(ep.out_zp);
  const float qm = static_cast<float>((int64_t{1} << ep.out_bits) - 1);
  OutT* out = static_cast<OutT*>(ep.out) + m * ep.ldo + n0;
  const int64_t ldo = ep.ldo;
  for (int r = 0; r < mr; ++r)
    fused_row<KIND, BIAS, RELU, OutT>(t32 + r * kBlockN, static_cast<uint32_t>(rs[r]), colw, colc, mult, bias, s, z, qm,
                                      out + r * ldo, nv);
}

using FusedTileFn = void (*)(const int32_t*, int, int64_t, const int64_t*, const uint32_t*, const uint32_t*,
                             const Epilogue&, int64_t, int64_t);

template <OutKind KIND>
FusedTileFn pick_fused_kind(const Epilogue& ep) {
#ifdef DWQ_ISA_FUSED  // the ISA file's explicit version of fused_tile
  if (ep.bias != nullptr) return ep.relu ? &isa_fused_tile<KIND, true, true> : &isa_fused_tile<KIND, true, false>;
  return ep.relu ? &isa_fused_tile<KIND, false, true> : &isa_fused_tile<KIND, false, false>;
#else
  if (ep.bias != nullptr) return ep.relu ? &fused_tile<KIND, true, true> : &fused_tile<KIND, true, false>;
  return ep.relu ? &fused_tile<KIND, false, true> : &fused_tile<KIND, false, false>;
#endif
}

FusedTileFn pick_fused(const Epilogue& ep) {
  switch (ep.kind) {
    case OutKind::f32: return pick_fused_kind<OutKind::f32>(ep);
    case OutKind::codes_u8: return pick_fused_kind<OutKind::codes_u8>(ep);
    case OutKind::codes_i32: return pick_fused_kind<OutKind::codes_i32>(ep);
    default: return nullptr;  // int64 accumulators: store_row
  }
}

#ifdef DWQ_ISA_IMPLICIT
// Fills tb.taps (rows x kh*kw slice pointers) and rs for output rows m0 .. m0+rows-1 of a stride-1
// convolution over dense channels-last uint8 codes; returns the count of codes above qmax among
// the input pixels of the rows' receptive field.
int64_t implicit_rows(const ActSource& a, int64_t m0, int64_t rows, ThreadBuffers& tb, int64_t* rs) {
  const uint8_t* x = static_cast<const uint8_t*>(a.x);
  const int64_t ntaps = a.kh * a.kw, HW = a.H * a.W, C = a.C;
  if (tb.zline.size() < static_cast<size_t>(C)) tb.zline.resize(static_cast<size_t>(C));
  std::memset(tb.zline.data(), a.zx, static_cast<size_t>(C));
  if (tb.taps.size() < static_cast<size_t>(rows * ntaps)) tb.taps.resize(static_cast<size_t>(rows * ntaps));
  const int64_t m1 = m0 + rows - 1;
  const int64_t n0 = m0 / (a.OH * a.OW), oh0 = (m0 / a.OW) % a.OH;
  const int64_t n1 = m1 / (a.OH * a.OW), oh1 = (m1 / a.OW) % a.OH;
  const int64_t ih_lo = std::clamp<int64_t>(oh0 - a.pad_h, 0, a.H - 1);
  const int64_t ih_hi = std::clamp<int64_t>(oh1 - a.pad_h + a.kh - 1, 0, a.H - 1);
  const int64_t plo = n0 * HW + ih_lo * a.W, phi = n1 * HW + ih_hi * a.W + a.W - 1;
  const int64_t np = std::max<int64_t>(0, phi - plo + 1);
  if (tb.psum.size() < static_cast<size_t>(np)) tb.psum.resize(static_cast<size_t>(np));
  RowPack rp(static_cast<uint32_t>((int64_t{1} << a.bits) - 1));
  {
    int64_t n = plo / HW, ih = (plo / a.W) % a.H, iw = plo % a.W;
    for (int64_t i = 0; i < np; ++i) {
      rp.add(x + n * a.sn + ih * a.sh + iw * a.sw, C);
      tb.psum[i] = rp.take();
      if (++iw == a.W) {
        iw = 0;
        if (++ih == a.H) {
          ih = 0;
          ++n;
        }
      }
    }
  }
  const int64_t zsum = static_cast<int64_t>(a.zx) * C;
  // Offsets of the taps from the window's corner (ih, iw) = (oh - pad_h, ow - pad_w).
  constexpr int64_t kMaxTaps = 64;
  int64_t toff[kMaxTaps], tpoff[kMaxTaps];
  const bool small = ntaps <= kMaxTaps;
  if (small)
    for (int64_t ky = 0, t = 0; ky < a.kh; ++ky)
      for (int64_t kx = 0; kx < a.kw; ++kx, ++t) {
        toff[t] = ky * a.sh + kx * a.sw;
        tpoff[t] = ky * a.W + kx;
      }
  int64_t ow = m0 % a.OW, oh = oh0, n = n0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t** tp = tb.taps.data() + r * ntaps;
    int64_t sum = 0;
    const int64_t ih0 = oh - a.pad_h, iw0 = ow - a.pad_w;
    if (small && ih0 >= 0 && ih0 + a.kh <= a.H && iw0 >= 0 && iw0 + a.kw <= a.W) {  // interior window
      const uint8_t* base = x + n * a.sn + ih0 * a.sh + iw0 * a.sw;
      const int64_t* ps = tb.psum.data() + (n * HW + ih0 * a.W + iw0 - plo);
      for (int64_t t = 0; t < ntaps; ++t) {
        tp[t] = base + toff[t];
        sum += ps[tpoff[t]];
      }
      rs[r] = sum;
      next_pixel(a, n, oh, ow);
      continue;
    }
    for (int64_t ky = 0; ky < a.kh; ++ky) {
      const int64_t ih = oh - a.pad_h + ky;
      for (int64_t kx = 0; kx < a.kw; ++kx) {
        const int64_t iw = ow - a.pad_w + kx;
        if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W) {
          tp[ky * a.kw + kx] = x + n * a.sn + ih * a.sh + iw * a.sw;
          sum += tb.psum[n * HW + ih * a.W + iw - plo];
        } else {
          tp[ky * a.kw + kx] = tb.zline.data();
          sum += zsum;
        }
      }
    }
    rs[r] = sum;
    next_pixel(a, n, oh, ow);
  }
  return rp.bad;
}
#else
int64_t implicit_rows(const ActSource&, int64_t, int64_t, ThreadBuffers&, int64_t*) { return 0; }  // never called
#endif

}  // namespace

int64_t run(const GemmPlan& p, const ActSource& a, const PackedWeightView& w, const Epilogue& ep, int64_t begin,
            int64_t end) {
  ThreadBuffers& tb = thread_buffers();
  // The item's activation rows are packed in one sweep (streaming reads the prefetchers follow),
  // then every kMR-row tile meets each weight block of the item's L2-resident column chunk.
  const size_t need = static_cast<size_t>(p.lx * p.mc * p.Kp);
  if (tb.a.size() < need) tb.a.resize(need);
  if (tb.rs.size() < static_cast<size_t>(p.mc)) tb.rs.resize(static_cast<size_t>(p.mc));
  const size_t ncol = static_cast<size_t>(p.nc_blocks * kBlockN);
  if (tb.colw.size() < ncol) {
    tb.colw.resize(ncol);
    tb.colc.resize(ncol);
    tb.colw32.resize(ncol);
    tb.colc32.resize(ncol);
  }
  uint8_t* abuf = tb.a.data();
  int64_t* rs = tb.rs.data();

  const int64_t K = p.K, Kp = p.Kp, kg_total = Kp / 4;
  const int64_t qmax_x = (int64_t{1} << a.bits) - 1, qmax_w = (int64_t{1} << w.bits) - 1;
  // One int32 pass is exact when every partial and the final sum fit int32 (wrapping arithmetic
  // is then exact for the zero-point corrections too: the true result fits).
  const bool fast = p.lx == 1 && p.lw == 1 && K <= kMaxKChunk && K * qmax_x * qmax_w <= INT32_MAX;
  // Limbs with K <= 32768: three int32 partial tiles combined once in the epilogue (no int64
  // accumulation per pass); larger K: the general path, K-chunked into int64.
  const bool limb3 = !fast && (p.lx == 2 || p.lw == 2) && K <= 32768;
  const int64_t Lw = p.lw == 2 ? 257 : 1;
  const int64_t zx = a.zx;
  const int64_t kg_chunk = kMaxKChunk / 4;

#ifdef DWQ_ISA_IMPLICIT
  // Stride-1 convolutions over dense channels-last uint8 codes (4 | C): the microkernel reads the
  // input pixels in place through per-row tap pointers (no im2col copy); row sums come from
  // per-pixel sums. Stride 1 reads every input pixel, so range-checking the pixels of the item's
  // input rows checks exactly codes the convolution uses.
  const bool implicit = fast && a.is_conv && a.is_u8 && a.sc == 1 && a.sw == a.C && a.C % 4 == 0 &&
                        a.stride_h == 1 && a.stride_w == 1;
#else
  const bool implicit = false;
#endif
  const int64_t ntaps = a.kh * a.kw;
  alignas(64) int32_t t32[kMR * kBlockN];
  alignas(64) int64_t t64[kMR * kBlockN];
  alignas(64) int32_t tl[3][kMR * kBlockN];
  alignas(64) int32_t acc32[kBlockN];
  alignas(64) int64_t acc64[kBlockN];
  int64_t bad = 0;
  const FusedTileFn fused = pick_fused(ep);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t chunk = item / p.m_blocks, mb = item % p.m_blocks;
    const int64_t m0 = mb * p.mc, rows = std::min(p.mc, p.M - m0);
    const int64_t nb0 = chunk * p.nc_blocks, nb1 = std::min(p.n_blocks, (chunk + 1) * p.nc_blocks);
    // acc = T + rowsum * (128 * Lw - zw) - zx * colsum + K * zx * zw   (T: the shifted-limb products)
    for (int64_t n = nb0 * kBlockN, j = 0; n < nb1 * kBlockN; ++n, ++j) {
      if (n < p.N) {
        const int64_t zw = w.zp[n];
        tb.colw[j] = 128 * Lw - zw;
        tb.colc[j] = -zx * w.colsum[n] + K * zx * zw;
      } else {
        tb.colw[j] = 0;
        tb.colc[j] = 0;
      }
      tb.colw32[j] = static_cast<uint32_t>(tb.colw[j]);
      tb.colc32[j] = static_cast<uint32_t>(tb.colc[j]);
    }
    if (implicit) {
      bad += implicit_rows(a, m0, rows, tb, rs);
    } else
    bad += a.is_u8 ? pack_rows_t<uint8_t>(a, static_cast<const uint8_t*>(a.x), K, Kp, p.lx, m0, rows, p.mc, abuf, rs)
                   : pack_rows_t<int32_t>(a, static_cast<const int32_t*>(a.x), K, Kp, p.lx, m0, rows, p.mc, abuf, rs);
    for (int64_t nb = nb0; nb < nb1; ++nb) {
      const int64_t n0 = nb * kBlockN, nv = std::min<int64_t>(kBlockN, p.N - n0);
      const int64_t* colw = tb.colw.data() + (nb - nb0) * kBlockN;
      const int64_t* colc = tb.colc.data() + (nb - nb0) * kBlockN;
      const uint32_t* colw32 = tb.colw32.data() + (nb - nb0) * kBlockN;
      const uint32_t* colc32 = tb.colc32.data() + (nb - nb0) * kBlockN;
      const int8_t* bblk = w.data + nb * kBlockN * Kp;
      for (int64_t mt = 0; mt < rows; mt += kMR) {
        const int mr = static_cast<int>(std::min<int64_t>(kMR, rows - mt));
        const uint8_t* A = abuf + mt * Kp;
        const int64_t* rst = rs + mt;
        if (fast) {
          if (implicit)
            ukernel_taps(mr, tb.taps.data() + mt * ntaps, ntaps, a.C / 4, bblk, t32);
          else
            ukernel(mr, A, Kp, bblk, kg_total, t32);
          if (fused != nullptr) {
            fused(t32, mr, nv, rst, colw32, colc32, ep, m0 + mt, n0);
          } else {
            for (int r = 0; r < mr; ++r) {
              const uint32_t rsr = static_cast<uint32_t>(rst[r]);
              const int32_t* t = t32 + r * kBlockN;
              for (int64_t j = 0; j < kBlockN; ++j)
                acc32[j] = static_cast<int32_t>(static_cast<uint32_t>(t[j]) + rsr * colw32[j] + colc32[j]);
              store_row<int32_t>(acc32, nv, ep, m0 + mt + r, n0);
            }
          }
        } else if (limb3) {
          // T = t0 + 256 * t1 + 65536 * t2 with t_s = sum_{ia+ib=s} P_ia,ib, each exact in int32
          // (|P01 + P10| <= 2 * 255 * 128 * K < 2^31 for K <= 32768).
          const uint8_t* A1 = A + p.mc * Kp;
          const int8_t* B1 = bblk + w.Npad * Kp;
          ukernel(mr, A, Kp, bblk, kg_total, tl[0]);
          if (p.lw == 2) ukernel(mr, A, Kp, B1, kg_total, tl[1]);
          if (p.lx == 2) {
            if (p.lw == 2) {
              ukernel(mr, A1, Kp, bblk, kg_total, t32);
              for (int64_t i = 0; i < mr * kBlockN; ++i) tl[1][i] += t32[i];
              ukernel(mr, A1, Kp, B1, kg_total, tl[2]);
            } else {
              ukernel(mr, A1, Kp, bblk, kg_total, tl[1]);
            }
          }
          const bool three = p.lx == 2 && p.lw == 2;
          for (int r = 0; r < mr; ++r) {
            const int64_t rsr = rst[r];
            const int32_t* t0 = tl[0] + r * kBlockN;
            const int32_t* t1 = tl[1] + r * kBlockN;
            const int32_t* t2 = tl[2] + r * kBlockN;
            if (three) {
              for (int64_t j = 0; j < kBlockN; ++j)
                acc64[j] = int64_t{t0[j]} + int64_t{t1[j]} * 256 + int64_t{t2[j]} * 65536 + rsr * colw[j] + colc[j];
            } else {
              for (int64_t j = 0; j < kBlockN; ++j)
                acc64[j] = int64_t{t0[j]} + int64_t{t1[j]} * 256 + rsr * colw[j] + colc[j];
            }
            store_row<int64_t>(acc64, nv, ep, m0 + mt + r, n0);
          }
        } else {
          std::fill(t64, t64 + mr * kBlockN, int64_t{0});
          for (int ia = 0; ia < p.lx; ++ia) {
            for (int ib = 0; ib < p.lw; ++ib) {
              const int shift = 8 * (ia + ib);
              const uint8_t* Al = A + ia * p.mc * Kp;
              const int8_t* Bl = bblk + ib * w.Npad * Kp;
              for (int64_t g0 = 0; g0 < kg_total; g0 += kg_chunk) {
                const int64_t gn = std::min(kg_chunk, kg_total - g0);
                ukernel(mr, Al + 4 * g0, Kp, Bl + 256 * g0, gn, t32);
                for (int64_t i = 0; i < mr * kBlockN; ++i) t64[i] += static_cast<int64_t>(t32[i]) * (int64_t{1} << shift);
              }
            }
          }
          for (int r = 0; r < mr; ++r) {
            const int64_t rsr = rst[r];
            const int64_t* t = t64 + r * kBlockN;
            for (int64_t j = 0; j < kBlockN; ++j) acc64[j] = t[j] + rsr * colw[j] + colc[j];
            store_row<int64_t>(acc64, nv, ep, m0 + mt + r, n0);
          }
        }
      }
    }
  }
  return bad;
}

int64_t quantize(const float* x, int64_t n, float scale, int32_t zp, int bits, void* out, bool out_u8) {
  const float qm = static_cast<float>((int64_t{1} << bits) - 1), z = static_cast<float>(zp);
  int64_t nans = 0;
  constexpr int64_t kChunk = 4096;
  alignas(64) float q[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t cnt = std::min(kChunk, n - i0);
    const float* __restrict xs = x + i0;
    int32_t nn = 0;
    for (int64_t i = 0; i < cnt; ++i) {
      float v = xs[i];
      nn += v != v;
      v = v != v ? 0.f : v / scale;
      v = v < -4194304.f ? -4194304.f : (v > 4194304.f ? 4194304.f : v);
      v = (v + 12582912.f) - 12582912.f;
      v = v + z;
      q[i] = v < 0.f ? 0.f : (v > qm ? qm : v);
    }
    nans += nn;
    if (out_u8) {
      uint8_t* __restrict o = static_cast<uint8_t*>(out) + i0;
      for (int64_t i = 0; i < cnt; ++i) o[i] = static_cast<uint8_t>(static_cast<int32_t>(q[i]));
    } else {
      int32_t* __restrict o = static_cast<int32_t*>(out) + i0;
      for (int64_t i = 0; i < cnt; ++i) o[i] = static_cast<int32_t>(q[i]);
    }
  }
  return nans;
}

// Activation packing of the integer GEMM engine (part of qgemm_driver.inc.h, which includes it):
// GEMM rows and im2col rows of uint8/int32 codes into u8 limb planes with exact row sums and a
// range check (copy_codes, pack_rows_t), and the implicit-GEMM tap pointers of stride-1 convs
// (implicit_rows). Padding uses the zero-point code zx, so a padded (qx - zx) is exactly 0.
// Include-free: compiled inside the including ISA file's namespace and target region.

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

#ifndef DWQ_ISA_PADDED
inline void ukernel_padded(int, const uint8_t*, const int64_t*, int64_t, int64_t, const int8_t*, int32_t*) {}  // never called
inline bool padded_pays(int64_t, int64_t, bool, bool) { return false; }
#endif
#ifndef DWQ_ISA_PAIR
inline void ukernel_padded_pair(const uint8_t*, const uint8_t*, const int64_t*, int64_t, int64_t, const int8_t*,
                                int32_t*) {}  // never called
#endif
#ifndef DWQ_ISA_IMPLICIT
inline void ukernel_taps(int, const uint8_t* const*, int64_t, int64_t, const int8_t*, int32_t*) {}  // never called
#endif

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

#ifdef DWQ_ISA_IMPLICIT
// Fills tb.taps (rows x kh*kw slice pointers) and rs (0 unless `sums`: a zp_shifted weight needs
// none) for output rows m0 .. m0+rows-1 of a stride-1 convolution over dense channels-last uint8
// codes; returns the count of codes above qmax among the input pixels of the rows' receptive field.
int64_t implicit_rows(const ActSource& a, int64_t m0, int64_t rows, ThreadBuffers& tb, int64_t* rs, bool sums) {
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
  if (n0 == n1 && oh0 == oh1) {
    // Within one output row (every item of a wide image): only the columns of its windows, else an
    // item of mc outputs summed kh x W pixels and the work grew with the square of the width.
    const int64_t iw_lo = std::clamp<int64_t>(m0 % a.OW - a.pad_w, 0, a.W - 1);
    const int64_t iw_hi = std::clamp<int64_t>(m1 % a.OW - a.pad_w + a.kw - 1, 0, a.W - 1);
    for (int64_t ih = ih_lo; ih <= ih_hi; ++ih)
      for (int64_t iw = iw_lo; iw <= iw_hi; ++iw) {
        rp.add(x + n0 * a.sn + ih * a.sh + iw * a.sw, C);
        if (sums) tb.psum[n0 * HW + ih * a.W + iw - plo] = rp.take();
      }
  } else {
    int64_t n = plo / HW, ih = (plo / a.W) % a.H, iw = plo % a.W;
    for (int64_t i = 0; i < np; ++i) {
      rp.add(x + n * a.sn + ih * a.sh + iw * a.sw, C);
      if (sums) tb.psum[i] = rp.take();
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
        if (sums) sum += ps[tpoff[t]];
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
          if (sums) sum += tb.psum[n * HW + ih * a.W + iw - plo];
        } else {
          tp[ky * a.kw + kx] = tb.zline.data();
          if (sums) sum += zsum;
        }
      }
    }
    rs[r] = sum;
    next_pixel(a, n, oh, ow);
  }
  return rp.bad;
}
#else
int64_t implicit_rows(const ActSource&, int64_t, int64_t, ThreadBuffers&, int64_t*, bool) { return 0; }  // never called
#endif

#ifdef DWQ_ISA_PADDED
// For output rows m0 .. m0+rows-1 of a stride-1 convolution over dense channels-last uint8 codes:
// copies the input pixels their windows read into tb.pad as whole padded rows (the image padded
// with zero-point pixels to Wp = W + 2 pad_w columns and H + 2 pad_h rows), of all Wp columns, or
// only the item's window columns when its outputs lie in one output row (a wide image's items would
// otherwise copy whole rows for a few outputs). Then the taps of consecutive outputs of an output
// row are C bytes apart. tb.pix[r]: row r's window corner, a pixel index into tb.pad; tb.toff[t]:
// tap t's byte offset from it; rs[r]: the window's code sum (from per-pixel sums), or 0 unless
// `sums` (a zp_shifted weight needs none). tb.pad keeps
// kMR spare pixels past the copy for the rows of a tile past its last output. Returns the count of
// codes above qmax among the copied input pixels (stride 1 reads every input pixel: all are codes
// the convolution uses).
// int32 codes (9..16 bits, or fewer held as int32) are split into lx limb planes of that layout, each
// tb.pad_plane bytes apart (with its own spare pixels).
__attribute__((noinline)) int64_t padded_rows(const ActSource& a, int64_t m0, int64_t rows, ThreadBuffers& tb,
                                              int64_t* rs, bool sums, int lx) {
  const int64_t C = a.C, Hp = a.H + 2 * a.pad_h, img = a.OH * a.OW, ntaps = a.kh * a.kw, m1 = m0 + rows - 1;
  int64_t n = m0 / img, oh = (m0 / a.OW) % a.OH, ow = m0 % a.OW;  // the first output pixel
  // padded rows g = n * Hp + ph, g0 .. g1; padded columns c0 .. c1
  const int64_t g0 = n * Hp + oh, g1 = (m1 / img) * Hp + (m1 / a.OW) % a.OH + a.kh - 1;
  const bool one_row = m0 / a.OW == m1 / a.OW;
  const int64_t c0 = one_row ? ow : 0, c1 = one_row ? m1 % a.OW + a.kw - 1 : a.W + 2 * a.pad_w - 1;
  const int64_t wb = c1 - c0 + 1, npix = (g1 - g0 + 1) * wb;
  tb.pad_plane = (npix + kMR) * C;
  const size_t bytes = static_cast<size_t>(lx * tb.pad_plane);
  if (tb.pad.size() < bytes) tb.pad.resize(bytes);
  if (tb.psum.size() < static_cast<size_t>(npix)) tb.psum.resize(static_cast<size_t>(npix));
  if (tb.pix.size() < static_cast<size_t>(rows)) tb.pix.resize(static_cast<size_t>(rows));
  if (tb.toff.size() < static_cast<size_t>(ntaps)) tb.toff.resize(static_cast<size_t>(ntaps));
  uint8_t* pad = tb.pad.data();
  int64_t* ps = tb.psum.data();
  const uint8_t zlo = static_cast<uint8_t>(a.zx & 255), zhi = static_cast<uint8_t>((a.zx >> 8) & 255);
  const int64_t zsum = static_cast<int64_t>(a.zx) * C;
  const uint32_t qmax = static_cast<uint32_t>((int64_t{1} << a.bits) - 1);
  int64_t bad = 0;
  const auto fill = [&](int64_t p0, int64_t cnt) {  // cnt zero-point pixels from pixel p0 on
    std::memset(pad + p0 * C, zlo, static_cast<size_t>(cnt * C));
    if (lx == 2) std::memset(pad + tb.pad_plane + p0 * C, zhi, static_cast<size_t>(cnt * C));
    if (sums) std::fill(ps + p0, ps + p0 + cnt, zsum);
  };
  // the padded columns c0 .. c1 split into left padding, image columns iw_lo .. iw_hi, right padding
  const int64_t iw_lo = std::max<int64_t>(c0 - a.pad_w, 0), iw_hi = std::min<int64_t>(c1 - a.pad_w, a.W - 1);
  const int64_t left = std::min(wb, std::max<int64_t>(a.pad_w - c0, 0)), inside = std::max<int64_t>(iw_hi - iw_lo + 1, 0);
  RowPack rp(qmax);
  for (int64_t g = g0; g <= g1; ++g) {
    const int64_t p0 = (g - g0) * wb, ng = g / Hp, ih = g % Hp - a.pad_h;
    if (ih < 0 || ih >= a.H || inside == 0) {
      fill(p0, wb);
      continue;
    }
    fill(p0, left);
    const int64_t at = ng * a.sn + ih * a.sh + iw_lo * C, q0 = p0 + left;  // (inside pixels, dense)
    if (a.is_u8) {
      const uint8_t* src = static_cast<const uint8_t*>(a.x) + at;
      if (sums)
        rp.copy_pixels(src, inside, C, pad + q0 * C, ps + q0);
      else
        rp.copy(src, inside * C, pad + q0 * C);
      // uint8 codes of a 9..16-bit input: their high limb is 0 (the plane is reused: it held earlier rows)
      if (lx == 2) std::memset(pad + tb.pad_plane + q0 * C, 0, static_cast<size_t>(inside * C));
    } else {
      const int32_t* src = static_cast<const int32_t*>(a.x) + at;
      for (int64_t i = 0; i < inside; ++i) {
        int64_t s = 0;
        copy_codes<int32_t>(src + i * C, C, 1, pad + (q0 + i) * C, lx == 2 ? pad + tb.pad_plane + (q0 + i) * C : nullptr,
                            qmax, &s, &bad);
        if (sums) ps[q0 + i] = s;
      }
    }
    fill(q0 + inside, wb - left - inside);
  }
  bad += rp.bad;
  for (int64_t ky = 0, t = 0; ky < a.kh; ++ky)
    for (int64_t kx = 0; kx < a.kw; ++kx, ++t) tb.toff[t] = (ky * wb + kx) * C;
  // window sums: the kw-pixel sums along each copied row (in place: a sum only reads pixels at or
  // after its own), then kh of them per window
  if (sums)
    for (int64_t i = 0; i + a.kw <= npix; ++i) {
      int64_t h = ps[i];
      for (int64_t kx = 1; kx < a.kw; ++kx) h += ps[i + kx];
      ps[i] = h;
    }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = (n * Hp + oh - g0) * wb + ow - c0;
    int64_t sum = 0;
    if (sums)
      for (int64_t ky = 0; ky < a.kh; ++ky) sum += ps[p + ky * wb];
    tb.pix[r] = p;
    rs[r] = sum;
    next_pixel(a, n, oh, ow);
  }
  return bad;
}
#else
int64_t padded_rows(const ActSource&, int64_t, int64_t, ThreadBuffers&, int64_t*, bool, int) { return 0; }  // never called
#endif

}  // namespace

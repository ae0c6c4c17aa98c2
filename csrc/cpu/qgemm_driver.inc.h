// Blocked GEMM driver and activation quantization (plain, or of a per-channel affine) of the integer engine (qgemm.h); activation
// packing lives in qgemm_driver_pack.inc.h, the epilogue in qgemm_driver_epilogue.inc.h. Textually included by each per-ISA file inside its
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
//                    pointers (implicit-GEMM stride-1 conv; needs DWQ_ISA_ROWPACK for pixel sums);
//   DWQ_ISA_NARROW   ukernel_narrow, ukernel's contract for A codes <= 127 (activations of at most
//                    7 bits, one limb), where an ISA has a faster exact product.
//   DWQ_ISA_WIDE     ukernel_wide(mr, A0, A1, lda, B0, B1, kg, int64_t* C): two-limb activations
//                    multiplied as whole codes less 32768 by the weight limb B0 (+ 256 x B1), in
//                    int64 (see qgemm_avx2.cpp); the driver adds 32768 x the column's limb sum.
//   DWQ_ISA_A_ALIGN  n: the packed activation rows' stride is Kp rounded up to n bytes, zero-filled
//                    past K (a microkernel that reads whole 64-byte k blocks, qgemm_amx.cpp); and
//                    the buffer holds kMR rows more than an item's, which a microkernel may read
//                    (and whose products it may compute) beyond mr, never using them;
//   DWQ_ISA_PADDED   ukernel_padded(mr, P, toff, ntaps, C, B, Cout): a tile of mr <= kMR output pixels
//                    of one output row of a stride-1 conv with 64 | C, read from the zero-point-padded
//                    copy of padded_rows (an ISA may compute all kMR rows: the copy has spare pixels),
//                    and padded_pays(C, OW, limbs, sums): whether a conv takes it (sums: the weights
//                    need each window's pixel sum); needs DWQ_ISA_ROWPACK.
//   DWQ_ISA_PAIR     ukernel_padded_pair(P0, P1, toff, ntaps, C, B, Cout): two whole tiles of
//                    ukernel_padded, into rows 0..kMR-1 and kMR..2kMR-1 of Cout (with DWQ_ISA_PADDED).
//   DWQ_ISA_QUANTIZE quantize(x, n, scale, zp, bits, out, out_u8): the activation quantization below,
//                    hand-written (qgemm_avx512_parts.inc.h);
//   DWQ_ISA_SCOPE    struct IsaScope: constructed at the start of each run() on its thread and
//                    destroyed at its end (qgemm_amx.cpp: the tile configuration).
// No system #include in these pieces: the including file provides <algorithm>, <climits>,
// <cstring>, <type_traits>, <vector> and common/arith.h before it opens its target region.

namespace {

// Kept per thread from call to call (no allocation per call) and never shrunk: the sizes are the
// plan's blocks, not the problem's, so whatever the batch they stay small: activations
// lx*mc*Kp bytes (<= 96 KiB, or 6 rows when K is large: 768 KiB at K = 65,536, 16 bits), zero-point
// terms for the columns of one L2 slab, taps and input-pixel sums for at most 192 output rows.
struct ThreadBuffers {
  std::vector<const uint8_t*> taps;  // implicit conv: [mc][kh*kw] slice pointers of one item
  std::vector<int64_t> psum;         // implicit conv: per-input-pixel code sums of one item
  std::vector<uint8_t> zline;        // implicit conv: C zero-point codes (the padding slice)
  std::vector<uint8_t> pad;          // padded conv: the item's input rows, zero-point padded (per limb plane)
  int64_t pad_plane = 0;             // padded conv: bytes from one limb plane of pad to the next
  std::vector<int64_t> pix, toff;    // padded conv: [mc] window corners (pixels), [kh*kw] tap offsets
  std::vector<uint8_t> a;    // [limbs][mc][lda] activation codes (u8 limbs) of one item
  std::vector<int64_t> rs;   // [mc] exact row sums of the codes
  std::vector<int64_t> colw, colc;      // [columns of the item] zero-point terms (see run)
  std::vector<uint32_t> colw32, colc32;  // the same mod 2^32 for the int32 fast path
};

ThreadBuffers& thread_buffers() {
  static thread_local ThreadBuffers b;
  return b;
}

}  // namespace

#include "cpu/qgemm_driver_pack.inc.h"
#include "cpu/qgemm_driver_epilogue.inc.h"

#ifdef DWQ_ISA_A_ALIGN
constexpr int64_t kAAlign = DWQ_ISA_A_ALIGN;
#else
constexpr int64_t kAAlign = 1;
#endif
#ifndef DWQ_ISA_SCOPE
struct IsaScope {};
#endif


int64_t run(const GemmPlan& p, const ActSource& a, const PackedWeightView& w, const Epilogue& ep, int64_t begin,
            int64_t end) {
  ThreadBuffers& tb = thread_buffers();
  [[maybe_unused]] const IsaScope scope;
  // The item's activation rows are packed in one sweep (streaming reads the prefetchers follow),
  // then every kMR-row tile meets each weight block of the item's L2-resident column chunk.
  // lda: the rows' stride (Kp, or more where the ISA's microkernel reads whole k blocks).
  const int64_t lda = (p.Kp + kAAlign - 1) / kAAlign * kAAlign;
  const size_t need = static_cast<size_t>((p.lx * p.mc + (kAAlign > 1 ? kMR : 0)) * lda);
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
  const int64_t qmax_x = arith::max_code(a.bits), qmax_w = arith::max_code(w.bits);
  // One int32 pass is exact when every partial and the final sum fit int32 (wrapping arithmetic
  // is then exact for the zero-point corrections too: the true result fits).
  const bool fast = p.lx == 1 && p.lw == 1 && K <= kMaxKChunk && arith::acc_fits_int32(K, qmax_x, qmax_w);
  // Limbs with K <= 32768: three int32 partial tiles combined once in the epilogue (no int64
  // accumulation per pass); larger K: the general path, K-chunked into int64.
  const bool limb3 = !fast && (p.lx == 2 || p.lw == 2) && K <= 32768;
  const int64_t kg_chunk = kMaxKChunk / 4;
#ifdef DWQ_ISA_NARROW
  const auto uk = p.lx == 1 && qmax_x <= 127 ? ukernel_narrow : ukernel;
#else
  const auto uk = ukernel;
#endif

  // Stride-1 convolutions over dense channels-last codes (dense_s1), which an ISA's microkernel may
  // read in place (no im2col copy) with row sums from per-pixel sums when they are uint8 (in_place). Stride 1 reads every input pixel,
  // so range-checking the pixels of the item's input rows checks exactly codes the convolution
  // uses. An input without pixels (H or W 0: every tap is padding) has no pixel rows to index: the
  // im2col path fills its zero points.
  [[maybe_unused]] const bool dense_s1 = a.is_conv && a.sc == 1 && a.sw == a.C && a.stride_h == 1 &&
                                         a.stride_w == 1 && a.H > 0 && a.W > 0;
  [[maybe_unused]] const bool in_place = fast && a.is_u8 && dense_s1;
#ifdef DWQ_ISA_IMPLICIT
  // (4 | C) through per-row tap pointers
  const bool implicit = in_place && a.C % 4 == 0;
#else
  const bool implicit = false;
#endif
  const int64_t ntaps = a.kh * a.kw;
  // A zp_shifted blob's column weights are all 0: the row sums are neither needed nor made.
  const bool need_rows = !w.zp_shifted;
#ifdef DWQ_ISA_PADDED
  // (64 | C) tiles of pixels of one output row, read from a zero-point-padded copy of the item's
  // input rows (padded_rows), on the shapes where the ISA's padded_pays says so (8 bits against the
  // ISA's other conv path; limbs against im2col, which splits every code into its limb planes once
  // per tap where the padded copy splits each input pixel once).
  const bool padded_shape = a.C % 64 == 0 && ntaps > 1 && ntaps <= 64;
  const bool padded = in_place && padded_shape && padded_pays(a.C, a.OW, false, need_rows);
  const bool padded_limbs = limb3 && dense_s1 && padded_shape && padded_pays(a.C, a.OW, true, need_rows);
#else
  const bool padded = false, padded_limbs = false;
#endif
#ifdef DWQ_ISA_PAIR
  constexpr int kTileRows = 2 * kMR;  // (rows of t32: a pair call fills two tiles' worth)
#else
  constexpr int kTileRows = kMR;
#endif
  alignas(64) int32_t t32[kTileRows * kBlockN];
  alignas(64) int64_t t64[kMR * kBlockN];
  alignas(64) int32_t tl[3][kTileRows * kBlockN];
  alignas(64) int32_t acc32[kBlockN];
  alignas(64) int64_t acc64[kBlockN];
  int64_t bad = 0;
#ifdef DWQ_ISA_WIDE
  // Two-limb activations as whole int16 codes (ukernel_wide, below): their column term joins colc.
  const bool wide = !fast && p.lx == 2;
#else
  const bool wide = false;
#endif
  const FusedTileFn fused = pick_fused(ep, need_rows);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t chunk = item / p.m_blocks, mb = item % p.m_blocks;
    const int64_t m0 = mb * p.mc, rows = std::min(p.mc, p.M - m0);
    const int64_t nb0 = chunk * p.nc_blocks, nb1 = std::min(p.n_blocks, (chunk + 1) * p.nc_blocks);
    // acc = T + rowsum * (shift - zw) - zx * colsum + K * zx * zw   (T: the shifted-limb products)
    for (int64_t n = nb0 * kBlockN, j = 0; n < nb1 * kBlockN; ++n, ++j) {
      if (n < p.N) {
        tb.colw[j] = arith::zp_col_weight(w.zp[n], w.shift(n));
        tb.colc[j] = arith::zp_col_const(K, a.zx, w.zp[n], w.colsum[n]);
        if (wide) tb.colc[j] += 32768 * (w.colsum[n] - w.shift(n) * K);
      } else {
        tb.colw[j] = 0;
        tb.colc[j] = 0;
      }
      tb.colw32[j] = static_cast<uint32_t>(tb.colw[j]);
      tb.colc32[j] = static_cast<uint32_t>(tb.colc[j]);
    }
    if (padded || padded_limbs) {
      bad += padded_rows(a, m0, rows, tb, rs, need_rows, p.lx);
    } else if (implicit) {
      bad += implicit_rows(a, m0, rows, tb, rs, need_rows);
    } else
    bad += a.is_u8 ? pack_rows_t<uint8_t>(a, static_cast<const uint8_t*>(a.x), K, lda, p.lx, m0, rows, p.mc, abuf, rs)
                   : pack_rows_t<int32_t>(a, static_cast<const int32_t*>(a.x), K, lda, p.lx, m0, rows, p.mc, abuf, rs);
    for (int64_t nb = nb0; nb < nb1; ++nb) {
      const int64_t n0 = nb * kBlockN, nv = std::min<int64_t>(kBlockN, p.N - n0);
      const int64_t* colw = tb.colw.data() + (nb - nb0) * kBlockN;
      const int64_t* colc = tb.colc.data() + (nb - nb0) * kBlockN;
      const uint32_t* colw32 = tb.colw32.data() + (nb - nb0) * kBlockN;
      const uint32_t* colc32 = tb.colc32.data() + (nb - nb0) * kBlockN;
      const int8_t* bblk = w.data + nb * kBlockN * Kp;
      for (int64_t mt = 0, step = 0; mt < rows; mt += step) {
        step = std::min<int64_t>(kMR, rows - mt);
        if (padded || padded_limbs) step = std::min(step, a.OW - (m0 + mt) % a.OW);  // (up to the output row's end)
        const int mr = static_cast<int>(step);
        const uint8_t* A = abuf + mt * lda;
        const int64_t* rst = rs + mt;
#ifdef DWQ_ISA_PAIR
        // A whole padded tile followed by another within its output row: both in one call, which
        // loads fewer tiles per product (qgemm_amx.cpp; b32 3x3 convs at one and two threads,
        // bench_qgemm, codes out: 128 channels at 16x16 1.15-1.20x faster at 4 and 8 bits, 1.23-1.31x
        // at 16; 64 at 32x32 0.98-1.04x and 1.08-1.09x; docs/cpu_engine.md).
        const bool pair = (padded || (padded_limbs && !wide)) && mr == kMR && rows - mt >= 2 * kMR &&
                          (m0 + mt + kMR) % a.OW + kMR <= a.OW;
#else
        const bool pair = false;
#endif
        const int done = pair ? 2 * kMR : mr;  // rows of the tile buffers this step fills
        step = done;
        // the products of this step's padded tile (or pair) in the copy's limb plane `plane` with the weights at B
        const auto padded_tiles = [&](const uint8_t* plane, const int8_t* B, int32_t* Cout) {
          if (pair)
            ukernel_padded_pair(plane + tb.pix[mt] * a.C, plane + tb.pix[mt + kMR] * a.C, tb.toff.data(), ntaps, a.C,
                                B, Cout);
          else
            ukernel_padded(mr, plane + tb.pix[mt] * a.C, tb.toff.data(), ntaps, a.C, B, Cout);
        };
        if (fast) {
          if (padded) {
            padded_tiles(tb.pad.data(), bblk, t32);
          } else if (implicit) {
            ukernel_taps(mr, tb.taps.data() + mt * ntaps, ntaps, a.C / 4, bblk, t32);
          } else {
            uk(mr, A, lda, bblk, kg_total, t32);
          }
          if (fused != nullptr) {
            fused(t32, done, nv, rst, colw32, colc32, ep, m0 + mt, n0);
          } else {
            for (int r = 0; r < done; ++r) {
              const uint32_t rsr = static_cast<uint32_t>(rst[r]);
              const int32_t* t = t32 + r * kBlockN;
              for (int64_t j = 0; j < kBlockN; ++j)
                acc32[j] = arith::acc_from_terms32(t[j], rsr, colw32[j], colc32[j]);
              store_row<int32_t>(acc32, nv, ep, m0 + mt + r, n0);
            }
          }
#ifdef DWQ_ISA_WIDE
        } else if (p.lx == 2) {
          // T = T' + 32768 * sum_{k<K} s_k with s_k = qw_k - shift the shifted limbs combined (the
          // padding's stored bytes are 0: no term), i.e. 32768 * (colsum - shift * K): in colc (above).
          ukernel_wide(mr, A, A + p.mc * lda, lda, bblk, p.lw == 2 ? bblk + w.Npad * Kp : nullptr, kg_total, t64);
          for (int r = 0; r < mr; ++r) {
            const int64_t rsr = rst[r];
            const int64_t* t = t64 + r * kBlockN;
            for (int64_t j = 0; j < nv; ++j) acc64[j] = arith::acc_from_terms(t[j], rsr, colw[j], colc[j]);
            store_row<int64_t>(acc64, nv, ep, m0 + mt + r, n0);
          }
#endif
        } else if (limb3) {
          // T = t0 + 256 * t1 + 65536 * t2 with t_s = sum_{ia+ib=s} P_ia,ib, each exact in int32
          // (|P01 + P10| <= 2 * 255 * 128 * K < 2^31 for K <= 32768).
          const int8_t* B1 = bblk + w.Npad * Kp;
          // the products of activation limb plane ia with the weight limb plane at B, into Cout
          const auto prod = [&](int ia, const int8_t* B, int32_t* Cout) {
            if (padded_limbs)
              padded_tiles(tb.pad.data() + ia * tb.pad_plane, B, Cout);
            else
              (ia == 0 ? uk : ukernel)(mr, A + ia * p.mc * lda, lda, B, kg_total, Cout);
          };
          prod(0, bblk, tl[0]);
          if (p.lw == 2) prod(0, B1, tl[1]);
          if (p.lx == 2) {
            if (p.lw == 2) {
              prod(1, bblk, t32);
              for (int64_t i = 0; i < done * kBlockN; ++i) tl[1][i] += t32[i];
              prod(1, B1, tl[2]);
            } else {
              prod(1, bblk, tl[1]);
            }
          }
          const bool three = p.lx == 2 && p.lw == 2;
          for (int r = 0; r < done; ++r) {
            const int64_t rsr = rst[r];
            const int32_t* t0 = tl[0] + r * kBlockN;
            const int32_t* t1 = tl[1] + r * kBlockN;
            const int32_t* t2 = tl[2] + r * kBlockN;
            if (three) {
              for (int64_t j = 0; j < kBlockN; ++j)
                acc64[j] = arith::acc_from_terms(int64_t{t0[j]} + int64_t{t1[j]} * 256 + int64_t{t2[j]} * 65536, rsr,
                                             colw[j], colc[j]);
            } else {
              for (int64_t j = 0; j < kBlockN; ++j)
                acc64[j] = arith::acc_from_terms(int64_t{t0[j]} + int64_t{t1[j]} * 256, rsr, colw[j], colc[j]);
            }
            store_row<int64_t>(acc64, nv, ep, m0 + mt + r, n0);
          }
        } else {
          std::fill(t64, t64 + mr * kBlockN, int64_t{0});
          for (int ia = 0; ia < p.lx; ++ia) {
            for (int ib = 0; ib < p.lw; ++ib) {
              const int shift = 8 * (ia + ib);
              const uint8_t* Al = A + ia * p.mc * lda;
              const int8_t* Bl = bblk + ib * w.Npad * Kp;
              for (int64_t g0 = 0; g0 < kg_total; g0 += kg_chunk) {
                const int64_t gn = std::min(kg_chunk, kg_total - g0);
                uk(mr, Al + 4 * g0, lda, Bl + 256 * g0, gn, t32);
                for (int64_t i = 0; i < mr * kBlockN; ++i) t64[i] += static_cast<int64_t>(t32[i]) * (int64_t{1} << shift);
              }
            }
          }
          for (int r = 0; r < mr; ++r) {
            const int64_t rsr = rst[r];
            const int64_t* t = t64 + r * kBlockN;
            for (int64_t j = 0; j < kBlockN; ++j) acc64[j] = arith::acc_from_terms(t[j], rsr, colw[j], colc[j]);
            store_row<int64_t>(acc64, nv, ep, m0 + mt + r, n0);
          }
        }
      }
    }
  }
  return bad;
}

#ifndef DWQ_ISA_QUANTIZE
int64_t quantize(const float* x, int64_t n, float scale, int32_t zp, int bits, void* out, bool out_u8) {
  const float qm = static_cast<float>(arith::max_code(bits)), z = static_cast<float>(zp);
  int64_t nans = 0;
  constexpr int64_t kChunk = 4096;
  alignas(64) float q[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t cnt = std::min(kChunk, n - i0);
    const float* __restrict xs = x + i0;
    int32_t nn = 0;
    for (int64_t i = 0; i < cnt; ++i) {
      const float v = xs[i];
      nn += v != v;
      q[i] = arith::quantize(v != v ? 0.f : v, scale, z, qm);  // NaN: counted (an error), code zp
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
#endif

// quantize of y = x * mul[c] + add[c] (arith::epilogue's float part: two roundings) in chunks that
// stay in L1, so that y never goes to memory. ReLU maps y < 0 to 0 (whose code is zp) and keeps NaN,
// which quantize counts (epilogue's ReLU would make it 0: it never meets NaN).
template <bool RELU>
static inline void affine_chunk(const float* __restrict x, float* __restrict y, int64_t n, const float* __restrict mul,
                                const float* __restrict add, bool bcast) {
  if (bcast) {
    const float m = mul[0], a = add[0];
    for (int64_t i = 0; i < n; ++i) {
      const float v = arith::epilogue<float, true, false>(x[i], m, a);
      y[i] = RELU && v < 0.f ? 0.f : v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = arith::epilogue<float, true, false>(x[i], mul[i], add[i]);
      y[i] = RELU && v < 0.f ? 0.f : v;
    }
  }
}

template <bool RELU>
static int64_t affine_quantize_rows(const float* x, int64_t rows, int64_t inner, const AffineRows& a, float scale,
                                    int32_t zp, int bits, void* out, bool out_u8) {
  constexpr int64_t kChunk = 2048;
  alignas(64) float y[kChunk];
  char* o = static_cast<char*>(out);
  const int64_t esz = out_u8 ? 1 : 4;
  int64_t nans = 0, done = 0, filled = 0;
  const auto flush = [&] {
    nans += quantize(y, filled, scale, zp, bits, o + done * esz, out_u8);
    done += filled;
    filled = 0;
  };
  int64_t c = a.c0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < inner; j += kChunk) {  // (a row longer than a chunk is split)
      const int64_t cnt = std::min(kChunk, inner - j);
      if (filled + cnt > kChunk) flush();
      const float* x_row = x + r * inner + j;
      if (a.channels_inner)
        affine_chunk<RELU>(x_row, y + filled, cnt, a.mul + j, a.add + j, false);
      else
        affine_chunk<RELU>(x_row, y + filled, cnt, a.mul + c, a.add + c, true);
      filled += cnt;
    }
    if (++c == a.C) c = 0;
  }
  if (filled) flush();
  return nans;
}

int64_t affine_quantize(const float* x, int64_t rows, int64_t inner, const AffineRows& a, float scale, int32_t zp,
                        int bits, void* out, bool out_u8) {
  return a.relu ? affine_quantize_rows<true>(x, rows, inner, a, scale, zp, bits, out, out_u8)
                : affine_quantize_rows<false>(x, rows, inner, a, scale, zp, bits, out, out_u8);
}

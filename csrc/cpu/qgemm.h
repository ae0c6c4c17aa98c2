// Torch-free true-integer GEMM / conv2d engine for dwq (issue 3). Arithmetic contract: DESIGN.md.
//
//   acc[m][n] = sum_k (qx[m][k] - zx) * (qw[n][k] - zw[n])        exact, int64
//   y[m][n]   = float(acc) * mult[n] (+ bias[n]), optional ReLU    (mult = s_x * s_w[n] * affine_scale[n])
//   out       = y (float32), acc (int64), or requantized codes clamp(round_half_even(y / s') + z', 0, 2^b' - 1)
//
// Layout of the packed weight (one contiguous, 64-byte aligned blob; see pack_weight):
//   [128-byte header][limbs x Npad/64 blocks x Kp/4 groups x 64 columns x 4 k-values of int8]
//   [colsum int64[N]][zero_point int32[N]]
// with Kp = K rounded up to 4, Npad = N rounded up to 64 and limbs = 1 (bits <= 8) or 2 (9..16).
// Each stored byte is (limb - 128) so that it fits the signed operand of vpdpbusd; the driver adds
// 128 * sum(qx) back in the epilogue together with the zero-point terms. Codes of at most 7 bits are
// stored less their column's zero point instead (zp_shifted: |q - zw| <= 127 fits int8 too), so the
// products are already (qw - zw) and the row sums' term vanishes: no row sums, no multiply per output.
// Activations are packed per thread (im2col for conv, padding with the zero-point code zx) into
// u8 limb planes [limbs][rows][Kp] with exact row sums.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "cpu/isa.h"

namespace dwq::cpu {

constexpr int64_t kHeaderBytes = 128;
constexpr int64_t kHeaderZpShiftedOff = 80;  // the header's int32 zp_shifted flag (read there by the CUDA engine)
constexpr int64_t kHeaderBitsOff = 8;  // the header's int32 bits (read by the CUDA engine's value checks)
constexpr int64_t kBlockN = 64;      // output channels per packed block / microkernel tile
constexpr int64_t kMaxKChunk = 65536;  // int32-exact K per 8-bit limb pass (255 * 128 * 65536 < 2^31)

inline int limbs_for_bits(int bits) { return bits <= 8 ? 1 : 2; }

// Where everything sits in a packed-weight blob of [N, K] codes at `bits` (offsets in bytes from the
// blob's start). The one definition of the layout: pack_weight on either device writes it, the CPU
// and CUDA engines read it (the CUDA kernels consume the same blob, csrc/cuda/qgemm_mma.cuh).
struct PackedLayout {
  int64_t N = 0, K = 0, Kp = 0, Npad = 0;
  int bits = 0, limbs = 0;
  // The conv kernel whose (ky, kx, c)-ordered weights the K columns hold (K = kh * kw * C), or 0 x 0
  // for a GEMM weight: recorded so that a conv cannot read the blob with another kernel shape of
  // the same K, nor a GEMM-ordered [O, C * kh * kw] reshape, and silently compute something else.
  int kh = 0, kw = 0;
  // The stored bytes are q - zw[n] (one limb of at most 7 bits, zero points in range), else limb - 128.
  // Blobs written before the flag existed read as 0: their 128 offset stays right. A shifted blob's
  // header has version 2, which the readers of those blobs refused (rather than misread it).
  bool zp_shifted = false;
  int64_t data_off = 0, colsum_off = 0, zp_off = 0, bytes = 0;
};
PackedLayout packed_layout(int64_t N, int64_t K, int bits, int kh = 0, int kw = 0);
// Whether N and K are at most 2^40 and the blob of [N, K] codes at `bits` is below 2^62 bytes, so that packed_layout's
// int64 arithmetic holds (an expanded [1, 2^57] w_codes wrapped the size to 0, and packing wrote past it).
bool packed_layout_fits(int64_t N, int64_t K, int bits);
// Writes the kHeaderBytes-byte header of a blob with layout L (the rest is pack_weight's).
void write_packed_header(const PackedLayout& L, int8_t* out);
int64_t packed_weight_bytes(int64_t N, int64_t K, int bits);
// Columns P of the [N, P] int8 tensor that holds the blob (N * P >= packed_weight_bytes).
int64_t packed_weight_cols(int64_t N, int64_t K, int bits);

struct PackedWeightView {
  int64_t N = 0, K = 0, Kp = 0, Npad = 0;
  int bits = 0, limbs = 0;
  int kh = 0, kw = 0;  // PackedLayout's conv kernel (0 x 0: a GEMM weight)
  bool zp_shifted = false;  // PackedLayout's
  const int8_t* data = nullptr;    // limbs x Npad x Kp bytes
  const int64_t* colsum = nullptr;  // sum_k qw[n][k]
  const int32_t* zp = nullptr;      // zw[n]
  // What was subtracted from column n's codes (their limbs combined) before they were stored.
  int64_t shift(int64_t n) const { return zp_shifted ? zp[n] : (limbs == 2 ? 128 * 257 : 128); }
};

// w[n][k] = w_ptr[n * sn + k * sk], uint8 (w_is_u8) or int32 codes. out must hold
// packed_weight_bytes(N, K, bits) bytes and be 64-byte aligned. Returns the number of codes
// outside [0, 2^bits - 1] (the blob is then not usable). kh x kw: the conv kernel the header records
// (K must be a multiple of kh * kw), 0 x 0 for a GEMM weight.
int64_t pack_weight(const void* w_ptr, bool w_is_u8, int64_t N, int64_t K, int64_t sn, int64_t sk,
                    const int32_t* zero_point, int bits, int8_t* out, int kh = 0, int kw = 0);
// Whether codes of `bits` less a zero point in 0..2^bits - 1 fit int8 (PackedLayout::zp_shifted may be set).
inline bool zp_shift_fits(int bits) { return bits <= 7; }
// Whether pack_weight (either device) stores codes of `bits` so: where they fit, unless the
// environment has DWQ_PACK_ZP_SHIFT=0 (the 128 offset then, as before the flag: for comparisons).
bool pack_zp_shifted(int bits);
// Validates the header against the blob size; false if it is not a dwq packed weight.
bool parse_packed_weight(const int8_t* blob, int64_t nbytes, PackedWeightView* view);

// Logical activation matrix A[M][K] of codes.
struct ActSource {
  const void* x = nullptr;
  bool is_u8 = true;  // uint8 codes, else int32
  int32_t zx = 0;
  int bits = 8;
  // GEMM: A[m][k] = x[m * sm + k * sk].
  int64_t sm = 0, sk = 1;
  // Conv (is_conv): m = (n, oh, ow), k = (ky, kx, c);  A[m][k] = x[n*sn + ih*sh + iw*sw + c*sc],
  // ih = oh*stride_h - pad_h + ky, iw likewise; zx outside the image.
  bool is_conv = false;
  int64_t batch = 0, H = 0, W = 0, C = 0, sn = 0, sh = 0, sw = 0, sc = 1;
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, OH = 0, OW = 0;
};



enum class OutKind : int { acc_i64 = 0, f32 = 1, codes_u8 = 2, codes_i32 = 3 };

// Residual output (kind f32 with `residual`): y = epilogue(acc) + residual[m * ldo + n] (one float
// add, as x.add_(residual) on the layer's output), then the ReLU (relu: after the add, `y < 0 ? 0 : y`,
// NaN kept), stored as float32, and with `codes` also quantized (out_scale, out_zp, out_bits; NaN
// results counted in *nans, their code zp): a residual block's end and the next layer's input codes.
struct Residual {
  const float* residual = nullptr;  // [M][ldo], or null (no residual)
  void* codes = nullptr;            // [M][ldo] uint8 (codes_u8) or int32, or null
  bool codes_u8 = true;
  std::atomic<int64_t>* nans = nullptr;
};

struct Epilogue {
  OutKind kind = OutKind::acc_i64;
  void* out = nullptr;  // row-major [M][ldo]
  int64_t ldo = 0;
  const float* mult = nullptr;  // [N], float kinds only
  const float* bias = nullptr;  // [N] or null
  bool relu = false;
  float out_scale = 1.f;  // codes kinds, and a residual's codes
  int32_t out_zp = 0;
  int out_bits = 8;
  Residual res;  // kind f32 only
};

struct GemmPlan {
  int64_t M = 0, N = 0, K = 0, Kp = 0;
  int lx = 1, lw = 1;
  int64_t mc = 0, nc_blocks = 0, m_blocks = 0, n_chunks = 0, n_blocks = 0;
  int64_t items() const { return m_blocks * n_chunks; }
};

// row_tile: the rows of the ISA's microkernel (isa_row_tile), which the item's rows are a multiple of
// where they can be (any value is correct; others leave partial tiles).
GemmPlan plan_qgemm(int64_t M, const PackedWeightView& w, int x_bits, int nthreads, int row_tile = 6);
int isa_row_tile(Isa isa);

// First item of share t (0 <= t <= nthreads; share t is [plan_split(t), plan_split(t + 1))) when
// nthreads threads split the items by work (rows x column blocks), not by item count: column
// chunks and row blocks need not be the same size, so equal item counts can be unequal work.
int64_t plan_split(const GemmPlan& plan, int t, int nthreads);

// Runs work items [begin, end) of the plan (each item: mc rows x nc_blocks*64 columns); items are
// independent, so threads may run disjoint ranges concurrently. Returns the number of activation
// codes outside [0, 2^bits - 1] that were met (the output is then not meaningful).
int64_t run_qgemm(Isa isa, const GemmPlan& plan, const ActSource& a, const PackedWeightView& w,
                  const Epilogue& ep, int64_t begin, int64_t end);

// codes[i] = clamp(round_half_even(x[i] / scale) + zp, 0, 2^bits - 1) as uint8 (out_u8) or int32.
// Returns the number of NaN inputs (their codes are zp).
int64_t quantize_act(Isa isa, const float* x, int64_t n, float scale, int32_t zp, int bits, void* out, bool out_u8);

// A per-channel affine y = x * mul[c] + add[c] (a folded batch norm), ReLU'd when relu, over rows of
// x: with channels_inner, value j of every row has channel j (channels-last, inner == C); otherwise
// row r has channel (c0 + r) % C (NCHW rows of H*W values).
struct AffineRows {
  const float* mul;
  const float* add;
  int64_t C = 1, c0 = 0;
  bool channels_inner = false, relu = false;
};

// quantize_act's codes of y (two float32 roundings: x * mul, then + add; never a fused
// multiply-add) for `rows` rows of `inner` values, in one pass. Returns the number of NaN values of y.
int64_t affine_quantize_act(Isa isa, const float* x, int64_t rows, int64_t inner, const AffineRows& a, float scale,
                            int32_t zp, int bits, void* out, bool out_u8);

}  // namespace dwq::cpu

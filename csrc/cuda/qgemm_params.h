// Parameter blocks of the CUDA integer engine (launchers: qgemm.cu, qgemm_mma.cu, qgemm_wgmma.cu;
// kernels: qgemm_prep.cuh, qgemm_mma.cuh, qgemm_wgmma.cuh, qgemm_epilogue.cuh).
// Torch-free, plain structs passed by value.
//
// The engine computes, like the CPU one (csrc/cpu/qgemm.h), on the packed-weight blob that
// pack_weight writes on either device (same bytes: [header][limbs x Npad/64 x Kp/4 x 64 x 4 of
// (limb - 128)][colsum int64 [N]][zp int32 [N]]):
//   T[m][n]   = sum_k qx[m][k] * (qw[n][k] - shift[n])           int32 tensor-core partials, int64 sum
//   acc[m][n] = T + rowsum[m] * (shift[n] - zw[n]) + K*zx*zw[n] - zx*colsum[n]     (arith.h)
// with shift[n] = 128 per limb, or zw[n] (codes of at most 7 bits: EpiParams::w_zp_shifted).
// then the float epilogue of arith.h. Scalars that live in device memory (x_scale, zero points,
// out_scale) are read by the kernels, so that no launcher needs a host sync.
#pragma once
#include <cstdint>

#include "common/arith.h"

namespace dwq::cuda {

// Output kinds (values of cpu::OutKind plus the split-K partial).
enum : int { kOutAccI64 = 0, kOutF32 = 1, kOutU8 = 2, kOutI32 = 3, kOutPartialT = 4 };

// Status words written by the kernels (int32 [kStatusWords] on the device); the launcher reads them
// once after the op when value checks are on (DWQ_CUDA_CHECKS, default on).
enum : int { kStBadCodes = 0, kStNaN = 1, kStParamFlags = 2, kStHeader = 4, kStatusWords = 4 + 32 };
// Bits of status[kStParamFlags]: which per-tensor / per-channel argument failed its value check.
enum : int {
  kBadXScale = 1, kBadXZp = 2, kBadOutScale = 4, kBadOutZp = 8, kBadWScale = 16, kBadAffScale = 32,
  kBadAffBias = 64, kBadMult = 128, kBadPacked = 256
};

struct EpiParams {
  int kind = kOutF32;
  void* out = nullptr;  // row-major [M][ldo] of the kind's type
  int64_t ldo = 0;
  int64_t* ws = nullptr;  // kOutPartialT: int64 [M][ldo] that T is atomically added to
  const int64_t* rowsum = nullptr;  // [M] exact sums of the activation codes (padding codes included)
  const int64_t* colsum = nullptr;  // [N] (in the blob)
  const int32_t* wzp = nullptr;     // [N] (in the blob)
  const int32_t* x_zp = nullptr;    // device [1]
  int64_t K = 0;
  int64_t shift = 128;  // 128 * (1 or 257): the weight limbs' offset, unless
  // the blob's header flag (device; null: 0) says its codes were stored less their zero point instead
  // (cpu::PackedLayout::zp_shifted): the rows' term is then 0. Read on the device: the launcher knows
  // the weight's limb count from its shape, not its width.
  const int32_t* w_zp_shifted = nullptr;
  const float* x_scale = nullptr;  // device [1]
  const float* w_scale = nullptr;  // [N]
  const float* aff_scale = nullptr;  // [N] or null
  const float* aff_bias = nullptr;   // [N] or null
  bool relu = false;
  const float* out_scale = nullptr;  // device [1], codes kinds
  const int32_t* out_zp = nullptr;   // device [1], codes kinds
  int out_bits = 8;
  // Every acc fits int32 (one limb each, arith::acc_fits_int32, no split-K partials): the wgmma
  // kernels then run the int32 epilogue (qgemm_epilogue.cuh: acc_from_terms32, as the CPU's fast path).
  bool acc32 = false;
};

struct MmaParams {
  int64_t M = 0, N = 0, K = 0;
  // A, matrix mode: limb plane ia of row m at a + ia * a_plane + m * lda (16-byte aligned rows).
  const uint8_t* a = nullptr;
  int64_t lda = 0, a_plane = 0;
  int lx = 1;
  // A, implicit conv mode (uint8 codes, channel stride 1, C % 16 == 0, 16-byte aligned pixels):
  // m = (n, oh, ow), k = (ky, kx, c); a tap outside the image reads the code zx. Limbs (the wgmma
  // kernel only): plane ia of the input, channels-last, at a + ia * a_plane (conv_planes_kernel).
  int C = 0, H = 0, W = 0, OH = 0, OW = 0, kh = 1, kw = 1, sth = 1, stw = 1, pdh = 0, pdw = 0;
  int64_t sn = 0, sh = 0, sw = 0;
  // B: the blob's limb planes (limb ib at b + ib * Npad * Kp); for the wgmma kernel a K-major copy
  // instead: row n of limb ib at b + ib * b_plane + n * ldb (ldb a multiple of 16, K zero-padded).
  const int8_t* b = nullptr;
  int64_t Kp = 0, Npad = 0;
  int64_t ldb = 0, b_plane = 0;
  int lw = 1;
  int64_t k_chunk = 0;  // K per grid z-slice (multiple of 64): int32 partials stay exact
  EpiParams ep;
};

// EpiParams::acc32 of a product of K-deep x_bits-bit codes on lx and lw limbs: one limb each (weights
// of at most 8 bits: qmax 255), no split-K, and every acc fits int32.
inline bool epilogue_acc32(int64_t K, int x_bits, int lx, int lw, bool split) {
  return !split && lx == 1 && lw == 1 && arith::acc_fits_int32(K, arith::max_code(x_bits), 255);
}

// Activation source of the prep kernels (row sums, range check, limb planes / im2col).
struct ActParams {
  const void* x = nullptr;
  int64_t M = 0, K = 0;
  int64_t sm = 0, sk = 1;  // matrix
  bool is_conv = false;
  int C = 0, H = 0, W = 0, OH = 0, OW = 0, kh = 1, kw = 1, sth = 1, stw = 1, pdh = 0, pdw = 0;
  int64_t sn = 0, sc = 1, sh = 0, sw = 0;
  const int32_t* x_zp = nullptr;  // device [1]
  uint32_t qmax = 255;
  // Outputs: planes (null: sums only) [lx][M][lda] u8, rowsum int64 [M].
  uint8_t* planes = nullptr;
  int64_t lda = 0;
  int lx = 1;
  int64_t* rowsum = nullptr;
  int32_t* status = nullptr;
};

}  // namespace dwq::cuda

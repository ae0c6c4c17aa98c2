// Elementwise and reduction kernels of the CUDA integer engine (launchers in qgemm.cu):
//   quantize_act_kernel   float32 -> codes (arith::quantize, NaN counted), or those of relu(x + b),
//                         the sum written back too
//   affine_quantize_act_kernel  the same of a per-channel affine (+ ReLU) of the input, or of the
//                         input plus a residual (the sum written back too)
//   add_relu_kernel       a = relu(a + b), a ResNet block's residual add and ReLU in one pass
//   pack_words_kernel     the packed-weight limb planes, byte for byte the CPU's pack_weight
//   pack_colsum_kernel    column sums, zero points and the range check of the weight codes
//   act_rows_kernel       per GEMM/im2col row: exact code sum, range check and (optionally) the u8
//                         limb planes [lx][M][lda] the tensor-core kernel reads (K padded with 0)
//   pixel_sums_kernel     per input pixel of a channels-last uint8 conv: code sum and range check
//   conv_planes_kernel    the same sums, and the input's u8 limb planes for the implicit conv
//   conv_rowsum_kernel    per output pixel: the receptive field's code sum from pixel sums
//   check_params_kernel   value checks of the scales / zero points (flags, no host sync)
#pragma once
#include <cstdint>

#include "common/arith.h"
#include "cuda/divmod.cuh"
#include "cuda/qgemm_params.h"

namespace dwq::cuda {

__device__ __forceinline__ int64_t warp_sum64(int64_t v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Adds n > 0 to a status count, saturating at INT32_MAX: a plain atomicAdd wrapped, so 2^32 NaNs or
// bad codes read back as 0 and passed the check the CPU op fails.
__device__ __forceinline__ void add_count(int32_t* word, int64_t n) {
  int32_t old = *word, seen;
  do {
    seen = old;
    const int64_t next = int64_t(seen) + n;
    old = atomicCAS(word, seen, next > INT32_MAX ? INT32_MAX : static_cast<int32_t>(next));
  } while (old != seen);
}

// halt_on_flags (a launch given a residual, with value checks on): check_params_kernel, launched before
// on the stream, flagged an argument, so the op raises; the kernel writes nothing, so that x (sum)
// stays as it was, as the CPU op checks every argument before it writes.
__device__ __forceinline__ bool halted(const int32_t* status, bool halt_on_flags) {
  return halt_on_flags && status[kStParamFlags] != 0;
}

// Stores the code of v at out[i] (uint8 when out_u8, else int32); returns 1 for NaN (an error, whose
// code is zp).
__device__ __forceinline__ int store_code(float v, int64_t i, float s, float z, float qm, void* __restrict__ out,
                                          bool out_u8) {
  const int32_t q = static_cast<int32_t>(arith::quantize(v != v ? 0.f : v, s, z, qm));
  if (out_u8)
    static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(q);
  else
    static_cast<int32_t*>(out)[i] = q;
  return v != v;
}

// The codes of x (float32, n elements in memory order) into out (uint8 when out_u8, else int32); or,
// given b, of relu(x[i] + b[i]) (add_relu_kernel's value), written to sum[i] first: a ResNet block's
// residual add and ReLU and the next layer's quantization in one pass (sum is x, or b, or disjoint
// from both, so none is __restrict__).
__global__ void quantize_act_kernel(const float* x, const float* b, float* sum, int64_t n,
                                    const float* __restrict__ scale, const int32_t* __restrict__ zero_point, int bits,
                                    void* __restrict__ out, bool out_u8, int32_t* __restrict__ status,
                                    bool halt_on_flags) {
  if (halted(status, halt_on_flags)) return;
  const float s = *scale, z = static_cast<float>(*zero_point);
  const float qm = static_cast<float>(arith::max_code(bits));
  int nans = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (b != nullptr) {
      const float y = v + b[i];
      v = y < 0.f ? 0.f : y;
      sum[i] = v;
    }
    nans += store_code(v, i, s, z, qm, out, out_u8);
  }
  if (nans) add_count(status + kStNaN, nans);
}

// The codes of y = v * mul[c] + add[c] (arith::epilogue's float part), ReLU'd when relu (keeping NaN,
// which is counted): a folded batch norm, its ReLU and the activation quantization, of v = x[i]; or,
// given b, of v = x[i] + b[i], written to sum[i] first (a pre-activation block's residual add: sum is
// x, or b, or disjoint from both, so none is __restrict__). Value i has channel c = (i / inner) % C:
// inner = H*W for NCHW, 1 for channels-last.
__global__ void affine_quantize_act_kernel(const float* x, const float* b, float* sum, int64_t n, int64_t inner,
                                           int64_t C, const float* __restrict__ mul, const float* __restrict__ add,
                                           bool relu, const float* __restrict__ scale,
                                           const int32_t* __restrict__ zero_point, int bits, void* __restrict__ out,
                                           bool out_u8, int32_t* __restrict__ status, bool halt_on_flags) {
  if (halted(status, halt_on_flags)) return;
  const float s = *scale, z = static_cast<float>(*zero_point);
  const float qm = static_cast<float>(arith::max_code(bits));
  int nans = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (b != nullptr) {
      v = v + b[i];
      sum[i] = v;
    }
    int64_t r, c;
    divmod(inner == 1 ? i : divmod(i, inner, &r), C, &c);  // (channels-last: one division)
    float y = arith::epilogue<float, true, false>(v, mul[c], add[c]);
    if (relu && y < 0.f) y = 0.f;
    nans += store_code(y, i, s, z, qm, out, out_u8);
  }
  if (nans) add_count(status + kStNaN, nans);
}

// a[i] = relu(a[i] + b[i]), NaN kept (torch.relu's value; the CPU kernel's, float_kernels.inc.h). a and
// b are the same array or disjoint, so no __restrict__ on them.
__global__ void add_relu_kernel(float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float y = a[i] + b[i];
    a[i] = y < 0.f ? 0.f : y;
  }
}

// One thread per 32-bit word of the limb planes [limbs][Npad/64][Kp/4][64][4]: byte (n, k) of limb l
// is ((q >> 8l) & 255) - 128, or q - zp[n] where zp is given (one limb: PackedLayout::zp_shifted),
// zero outside [N) x [K) (the CPU pack's memset).
template <typename T>
__global__ void pack_words_kernel(const T* __restrict__ w, int64_t N, int64_t K, int64_t sn, int64_t sk, int64_t Kp,
                                  int64_t Npad, int limbs, const int32_t* __restrict__ zp, uint32_t* __restrict__ out) {
  const int64_t G = Kp / 4, plane = Npad * G, total = plane * limbs;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t l = i / plane, r = i - l * plane;
    const int64_t blk = r / (G * 64), g = (r / 64) % G, col = r % 64;
    const int64_t nn = blk * 64 + col;
    uint32_t word = 0;
    const int32_t low = nn < N && zp != nullptr ? zp[nn] : 128;
    for (int j = 0; j < 4; ++j) {
      const int64_t k = 4 * g + j;
      if (nn < N && k < K) {
        const uint32_t q = static_cast<uint32_t>(w[nn * sn + k * sk]);
        const uint32_t b = static_cast<uint32_t>(static_cast<int32_t>((q >> (8 * l)) & 255u) - low) & 255u;
        word |= b << (8 * j);
      }
    }
    out[i] = word;
  }
}

// One warp per output channel n: colsum[n] = sum_k q (int64), zp copied, codes above qmax counted.
template <typename T>
__global__ void pack_colsum_kernel(const T* __restrict__ w, int64_t N, int64_t K, int64_t sn, int64_t sk,
                                   const int32_t* __restrict__ zp_in, uint32_t qmax, int64_t* __restrict__ colsum,
                                   int32_t* __restrict__ zp_out, int32_t* __restrict__ status) {
  const int lane = threadIdx.x & 31;
  const int64_t n = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (n >= N) return;
  int64_t sum = 0;
  int bad = 0;
  for (int64_t k = lane; k < K; k += 32) {
    const uint32_t q = static_cast<uint32_t>(w[n * sn + k * sk]);
    sum += q;
    bad += q > qmax;
  }
  sum = warp_sum64(sum);
  bad = static_cast<int>(warp_sum64(bad));
  if (lane == 0) {
    colsum[n] = sum;
    zp_out[n] = zp_in[n];
    if (bad) add_count(status + kStBadCodes, bad);
  }
}

// Four int32 codes at q[v] (16-byte aligned): their sum and count above qmax added, and their low
// and high bytes stored as one word each at lo[v] and hi[v] (hi null: one limb). One 16-byte load a
// lane instead of four 4-byte ones, and word stores instead of byte stores.
__device__ __forceinline__ void split_codes4(const int32_t* q, int64_t v, uint32_t qmax, uint32_t* lo, uint32_t* hi,
                                             int64_t& sum, int& bad) {
  const int4 c = reinterpret_cast<const int4*>(q)[v];
  const uint32_t u[4] = {static_cast<uint32_t>(c.x), static_cast<uint32_t>(c.y), static_cast<uint32_t>(c.z),
                         static_cast<uint32_t>(c.w)};
  uint32_t wl = 0, wh = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    sum += u[j];
    bad += u[j] > qmax;
    wl |= (u[j] & 255u) << (8 * j);
    wh |= ((u[j] >> 8) & 255u) << (8 * j);
  }
  lo[v] = wl;
  if (hi != nullptr) hi[v] = wh;
}

// One warp per row m of the logical activation matrix (GEMM rows or im2col rows, k = (ky, kx, c)).
template <typename T>
__global__ void act_rows_kernel(__grid_constant__ const ActParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t m = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (m >= p.M) return;
  const T* x = static_cast<const T*>(p.x);
  const uint32_t zx = static_cast<uint32_t>(*p.x_zp);
  uint8_t* lo = p.planes != nullptr ? p.planes + m * p.lda : nullptr;
  uint8_t* hi = p.planes != nullptr && p.lx == 2 ? p.planes + p.M * p.lda + m * p.lda : nullptr;
  int64_t sum = 0;
  int bad = 0;
  auto put = [&](int64_t k, uint32_t v) {
    sum += v;
    bad += v > p.qmax;
    if (lo != nullptr) lo[k] = static_cast<uint8_t>(v);
    if (hi != nullptr) hi[k] = static_cast<uint8_t>(v >> 8);
  };
  if (!p.is_conv && sizeof(T) == 1 && lo == nullptr && p.sk == 1 &&
      reinterpret_cast<uintptr_t>(x + m * p.sm) % 16 == 0) {
    // Sums only, over a 16-byte aligned uint8 row (the MMA kernel reads it in place): 16 codes a load.
    const uint8_t* row = reinterpret_cast<const uint8_t*>(x + m * p.sm);
    const uint32_t ones = 0x01010101u, lim = p.qmax * ones;
    const int64_t nv = p.K / 16;
    uint32_t s32 = 0;  // moved into the int64 sum long before it could wrap
    for (int64_t v = lane; v < nv; v += 32) {
      const uint4 q = reinterpret_cast<const uint4*>(row)[v];
      const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s32 = __dp4a(u[j], ones, s32);
        if (p.qmax < 255) bad += __popc(__vcmpgtu4(u[j], lim)) / 8;
      }
      if (s32 >= 0xF0000000u) {
        sum += s32;
        s32 = 0;
      }
    }
    sum += s32;
    for (int64_t k = nv * 16 + lane; k < p.K; k += 32) put(k, row[k]);
  } else if (!p.is_conv) {
    const T* row = x + m * p.sm;
    int64_t k0 = 0;  // int32 rows in place with planes out: 4 codes a lane (planes rows: lda % 16 == 0)
    if (sizeof(T) == 4 && lo != nullptr && p.sk == 1 && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
      k0 = p.K / 4 * 4;
      for (int64_t v = lane; v < p.K / 4; v += 32)
        split_codes4(reinterpret_cast<const int32_t*>(row), v, p.qmax, reinterpret_cast<uint32_t*>(lo),
                     reinterpret_cast<uint32_t*>(hi), sum, bad);
    }
    for (int64_t k = k0 + lane; k < p.K; k += 32) put(k, static_cast<uint32_t>(row[k * p.sk]));
  } else {
    int64_t ow, oh;
    const int64_t n = divmod(divmod(m, p.OW, &ow), p.OH, &oh);
    for (int ky = 0; ky < p.kh; ++ky) {
      const int64_t ih = oh * p.sth - p.pdh + ky;
      for (int kx = 0; kx < p.kw; ++kx) {
        const int64_t iw = ow * p.stw - p.pdw + kx;
        const int64_t k0 = (int64_t(ky) * p.kw + kx) * p.C;
        if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) {
          const T* px = x + n * p.sn + ih * p.sh + iw * p.sw;
          for (int c = lane; c < p.C; c += 32) put(k0 + c, static_cast<uint32_t>(px[c * p.sc]));
        } else {  // padding: the code zx, so (qx - zx) is exactly 0; zx is a valid code
          for (int c = lane; c < p.C; c += 32) {
            sum += zx;
            if (lo != nullptr) lo[k0 + c] = static_cast<uint8_t>(zx);
            if (hi != nullptr) hi[k0 + c] = static_cast<uint8_t>(zx >> 8);
          }
        }
      }
    }
  }
  if (lo != nullptr)
    for (int64_t k = p.K + lane; k < p.lda; k += 32) {
      lo[k] = 0;
      if (hi != nullptr) hi[k] = 0;
    }
  sum = warp_sum64(sum);
  bad = static_cast<int>(warp_sum64(bad));
  if (lane == 0) {
    p.rowsum[m] = sum;
    if (bad) add_count(p.status + kStBadCodes, bad);
  }
}

// One thread per input pixel of dense-channel uint8 codes (channel stride 1, C % 16 == 0, 16-byte
// aligned pixels): psum[pixel] = sum_c x, or -1 where a code is above qmax (conv_rowsum_kernel
// counts the taps that read it: with a stride above 1 some pixels are never read, and the op checks
// only the codes it uses, as the CPU does).
__global__ void pixel_sums_kernel(__grid_constant__ const ActParams p, int64_t* __restrict__ psum) {
  const int64_t npix = int64_t(p.H) * p.W * (p.M / (int64_t(p.OH) * p.OW));
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= npix) return;
  int64_t w, h;
  const int64_t n = divmod(divmod(i, p.W, &w), p.H, &h);
  const uint4* px = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(p.x) + n * p.sn + h * p.sh + w * p.sw);
  const uint32_t ones = 0x01010101u, lim = p.qmax * ones;
  int64_t sum = 0;  // (C * 255 passes int32 from C = 8,421,505: a valid pixel read as one with bad codes)
  int bad = 0;
  for (int c = 0; c < p.C / 16; ++c) {
    const uint4 v = px[c];
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
    uint32_t part = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      part = __dp4a(u[j], ones, part);
      if (p.qmax < 255) bad += __popc(__vcmpgtu4(u[j], lim)) / 8;
    }
    sum += part;
  }
  psum[i] = bad ? -1 : sum;
}

// One warp per input pixel of a conv that the implicit kernel cannot read in place (codes of 9..16
// bits, or int32 codes, or strides that are not 16-byte multiples): the lx limb planes of the input,
// [lx][pixels][C] uint8, channels-last and dense (pixel i's channels at i * C of each plane), and
// psum[i] as pixel_sums_kernel writes it.
template <typename T>
__global__ void conv_planes_kernel(__grid_constant__ const ActParams p, uint8_t* __restrict__ planes,
                                   int64_t* __restrict__ psum) {
  const int lane = threadIdx.x & 31;
  const int64_t npix = int64_t(p.H) * p.W * (p.M / (int64_t(p.OH) * p.OW));
  const int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (i >= npix) return;
  int64_t w, h;
  const int64_t n = divmod(divmod(i, p.W, &w), p.H, &h);
  const T* px = static_cast<const T*>(p.x) + n * p.sn + h * p.sh + w * p.sw;
  uint8_t* lo = planes + i * p.C;
  uint8_t* hi = p.lx == 2 ? planes + npix * p.C + i * p.C : nullptr;
  int64_t sum = 0;
  int bad = 0;
  int c0 = 0;  // int32 channels in place: 4 codes a lane (the planes' pixels: C % 16 == 0 bytes apart)
  if (sizeof(T) == 4 && p.sc == 1 && p.C % 4 == 0 && reinterpret_cast<uintptr_t>(px) % 16 == 0) {
    c0 = p.C;
    for (int v = lane; v < p.C / 4; v += 32)
      split_codes4(reinterpret_cast<const int32_t*>(px), v, p.qmax, reinterpret_cast<uint32_t*>(lo),
                   reinterpret_cast<uint32_t*>(hi), sum, bad);
  }
  for (int c = c0 + lane; c < p.C; c += 32) {
    const uint32_t v = static_cast<uint32_t>(px[c * p.sc]);
    sum += v;
    bad += v > p.qmax;
    lo[c] = static_cast<uint8_t>(v);
    if (hi != nullptr) hi[c] = static_cast<uint8_t>(v >> 8);
  }
  sum = warp_sum64(sum);
  bad = static_cast<int>(warp_sum64(bad));
  if (lane == 0) psum[i] = bad ? -1 : sum;
}

// One thread per output pixel m: rowsum[m] = sum over the taps of the pixel sums, zx * C per
// padded tap; a tap on a pixel with bad codes (psum -1) counts as one bad read. (n, oh, ow) come
// from 32-bit divisions (divmod): with int64 ones this kernel took 7.6 us for 262,144 pixels on an
// H200 at 6% of its DRAM bandwidth (Nsight Compute, 4c57f8f).
__global__ void conv_rowsum_kernel(__grid_constant__ const ActParams p, const int64_t* __restrict__ psum) {
  const int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (m >= p.M) return;
  int64_t ow, oh;
  const int64_t n = divmod(divmod(m, p.OW, &ow), p.OH, &oh);
  const int64_t zsum = int64_t(*p.x_zp) * p.C;
  const int64_t* ps = psum + n * p.H * p.W;
  int64_t sum = 0;
  int bad = 0;
  for (int ky = 0; ky < p.kh; ++ky) {
    const int64_t ih = oh * p.sth - p.pdh + ky;
    for (int kx = 0; kx < p.kw; ++kx) {
      const int64_t iw = ow * p.stw - p.pdw + kx;
      const int64_t v = (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) ? ps[ih * p.W + iw] : zsum;
      bad += v < 0;
      sum += v;
    }
  }
  p.rowsum[m] = sum;
  if (bad) add_count(p.status + kStBadCodes, bad);
}

__device__ __forceinline__ bool finite_pos(float v, bool positive) {
  return isfinite(v) && (!positive || v > 0.f);
}

// Value checks of an op's scalar and per-channel arguments (null pointers are skipped); sets
// kBad* flags in status[kStParamFlags]. The launcher re-runs the host checks only when a flag is set.
struct ParamCheck {
  const float* x_scale = nullptr;
  const int32_t* x_zp = nullptr;
  int x_bits = 8;
  const float* out_scale = nullptr;
  const int32_t* out_zp = nullptr;
  int out_bits = 8;
  const float* w_scale = nullptr;
  const float* aff_scale = nullptr;
  const float* aff_bias = nullptr;
  // The packed weight's per-channel zero points and column sums, which come from the blob (a damaged
  // saved model): checked against its header's bits (w_bits) and K, as the CPU op checks them.
  const int32_t* w_bits = nullptr;
  const int32_t* w_zp = nullptr;
  const int64_t* w_colsum = nullptr;
  int64_t w_K = 0;
  int64_t N = 0;
};

__global__ void check_params_kernel(__grid_constant__ const ParamCheck c, int32_t* __restrict__ status) {
  int flags = 0;
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    if (c.x_scale != nullptr && !finite_pos(*c.x_scale, true)) flags |= kBadXScale;
    if (c.x_zp != nullptr && (*c.x_zp < 0 || *c.x_zp > arith::max_code(c.x_bits))) flags |= kBadXZp;
    if (c.out_scale != nullptr && !finite_pos(*c.out_scale, true)) flags |= kBadOutScale;
    if (c.out_zp != nullptr && (*c.out_zp < 0 || *c.out_zp > arith::max_code(c.out_bits))) flags |= kBadOutZp;
  }
  // A header with bits outside 2..16 fails the launcher's header check, which reports it first.
  const int wb = c.w_bits != nullptr ? *c.w_bits : 0;
  const int64_t wq = wb >= 2 && wb <= 16 ? arith::max_code(wb) : -1;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < c.N; i += int64_t(gridDim.x) * blockDim.x) {
    if (wq >= 0 && c.w_zp != nullptr && c.w_colsum != nullptr) {
      const int64_t z = c.w_zp[i], s = c.w_colsum[i];
      if (z < 0 || z > wq || s < 0 || s > c.w_K * wq) flags |= kBadPacked;
    }
    if (c.w_scale != nullptr && !finite_pos(c.w_scale[i], true)) flags |= kBadWScale;
    if (c.aff_scale != nullptr && !finite_pos(c.aff_scale[i], false)) flags |= kBadAffScale;
    if (c.aff_bias != nullptr && !finite_pos(c.aff_bias[i], false)) flags |= kBadAffBias;
    // The epilogue's multiplier, in its order, when its factors pass (qg_mult_values' check).
    if (c.x_scale != nullptr && c.w_scale != nullptr && finite_pos(*c.x_scale, true) &&
        finite_pos(c.w_scale[i], true)) {
      const float m = arith::mul_rn(c.w_scale[i], *c.x_scale);
      bool ok = finite_pos(m, true);
      if (c.aff_scale != nullptr && finite_pos(c.aff_scale[i], false))
        ok = ok && isfinite(arith::mul_rn(m, c.aff_scale[i]));
      if (!ok) flags |= kBadMult;
    }
  }
  if (flags) atomicOr(status + kStParamFlags, flags);
}

}  // namespace dwq::cuda

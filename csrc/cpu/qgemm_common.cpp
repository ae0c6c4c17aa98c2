// ISA selection, weight packing and work planning of the integer GEMM engine (qgemm.h). Compiled for
// generic x86-64; the per-ISA drivers live in qgemm_{scalar,avx2,avx512vnni,amx}.cpp.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu/qgemm.h"

namespace dwq::cpu {

// Defined in the per-ISA translation units.
namespace scalar {
int64_t run(const GemmPlan&, const ActSource&, const PackedWeightView&, const Epilogue&, int64_t, int64_t);
int64_t quantize(const float*, int64_t, float, int32_t, int, void*, bool);
int64_t affine_quantize(const float*, int64_t, int64_t, const AffineRows&, float, int32_t, int, void*, bool);
}  // namespace scalar
namespace avx2 {
int64_t run(const GemmPlan&, const ActSource&, const PackedWeightView&, const Epilogue&, int64_t, int64_t);
int64_t quantize(const float*, int64_t, float, int32_t, int, void*, bool);
int64_t affine_quantize(const float*, int64_t, int64_t, const AffineRows&, float, int32_t, int, void*, bool);
}  // namespace avx2
namespace avx512_vnni {
int64_t run(const GemmPlan&, const ActSource&, const PackedWeightView&, const Epilogue&, int64_t, int64_t);
int64_t quantize(const float*, int64_t, float, int32_t, int, void*, bool);
int64_t affine_quantize(const float*, int64_t, int64_t, const AffineRows&, float, int32_t, int, void*, bool);
}  // namespace avx512_vnni
namespace amx {
int row_tile();
int64_t run(const GemmPlan&, const ActSource&, const PackedWeightView&, const Epilogue&, int64_t, int64_t);
int64_t quantize(const float*, int64_t, float, int32_t, int, void*, bool);
int64_t affine_quantize(const float*, int64_t, int64_t, const AffineRows&, float, int32_t, int, void*, bool);
}  // namespace amx

namespace {
constexpr int32_t kMagic = 0x57515744;  // "DWQW"
// 2: codes stored less their zero point (zp_shifted), which a reader of version 1 would take for
// q - 128 and compute wrong values from: it refuses the blob instead. Version 1 blobs read as before.
constexpr int32_t kVersion = 1, kVersionZpShifted = 2;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

struct Header {
  int32_t magic, version, bits, limbs;
  int64_t N, K, Kp, Npad, data_off, colsum_off, zp_off;
  int32_t kh, kw;  // zero in blobs written before they were recorded: read as a GEMM weight
  int32_t zp_shifted;  // 0 or 1 (PackedLayout); zero in blobs written before it was recorded
};
static_assert(sizeof(Header) <= kHeaderBytes, "header too large");
static_assert(offsetof(Header, zp_shifted) == kHeaderZpShiftedOff, "kHeaderZpShiftedOff");
static_assert(offsetof(Header, bits) == kHeaderBitsOff, "kHeaderBitsOff");
}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::amx: return "amx";
  }
  return "?";
}

namespace {
#if defined(__linux__) && defined(__x86_64__)
bool request_tile_state() {
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // <asm/prctl.h>, the XSAVE feature number
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#else
bool request_tile_state() { return false; }  // (no known way to ask: AMX stays off)
#endif
}  // namespace

bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
             __builtin_cpu_supports("popcnt");
    case Isa::avx512_vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
    case Isa::amx: {
      // The CPU has the tiles and the OS grants this process their state (Linux hands it out on
      // request only; a tile instruction without it is SIGILL). Asked once: the grant is for good.
      static const bool granted = isa_supported(Isa::avx512_vnni) && __builtin_cpu_supports("amx-tile") &&
                                  __builtin_cpu_supports("amx-int8") && request_tile_state();
      return granted;
    }
  }
  return false;
#else
  return isa == Isa::scalar;
#endif
}

bool select_isa(Isa* isa, std::string* err) {
  const char* env = std::getenv("DWQ_CPU_ISA");
  if (env == nullptr || env[0] == '\0') {
    static const Isa best = isa_supported(Isa::amx)           ? Isa::amx
                            : isa_supported(Isa::avx512_vnni) ? Isa::avx512_vnni
                            : isa_supported(Isa::avx2)        ? Isa::avx2
                                                              : Isa::scalar;
    *isa = best;
    return true;
  }
  for (Isa c : kAllIsas) {
    if (std::strcmp(env, isa_name(c)) == 0) {
      if (!isa_supported(c)) {
        *err = std::string("DWQ_CPU_ISA=") + env + " but this CPU does not support " + env;
        return false;
      }
      *isa = c;
      return true;
    }
  }
  *err = std::string("DWQ_CPU_ISA=") + env + " is not one of scalar, avx2, avx512_vnni, amx";
  return false;
}

PackedLayout packed_layout(int64_t N, int64_t K, int bits, int kh, int kw) {
  PackedLayout L;
  L.N = N;
  L.K = K;
  L.bits = bits;
  L.kh = kh;
  L.kw = kw;
  L.limbs = limbs_for_bits(bits);
  L.Kp = round_up(K, 4);
  L.Npad = round_up(N, kBlockN);
  L.data_off = kHeaderBytes;
  L.colsum_off = L.data_off + L.limbs * L.Npad * L.Kp;
  L.zp_off = L.colsum_off + 8 * N;
  L.bytes = L.zp_off + 4 * N;
  return L;
}

void write_packed_header(const PackedLayout& L, int8_t* out) {
  Header h{};
  h.magic = kMagic;
  h.version = L.zp_shifted ? kVersionZpShifted : kVersion;
  h.bits = L.bits;
  h.limbs = L.limbs;
  h.N = L.N;
  h.K = L.K;
  h.Kp = L.Kp;
  h.Npad = L.Npad;
  h.data_off = L.data_off;
  h.colsum_off = L.colsum_off;
  h.zp_off = L.zp_off;
  h.kh = L.kh;
  h.kw = L.kw;
  h.zp_shifted = L.zp_shifted ? 1 : 0;
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, &h, sizeof(h));
}

bool packed_layout_fits(int64_t N, int64_t K, int bits) {
  constexpr int64_t kMax = int64_t{1} << 62, kMaxDim = int64_t{1} << 40;  // (then round_up and 12 N hold)
  if (N <= 0 || K <= 0 || N > kMaxDim || K > kMaxDim) return false;
  int64_t rows = 0, plane = 0, total = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(limbs_for_bits(bits)), round_up(N, kBlockN), &rows) ||
      __builtin_mul_overflow(rows, round_up(K, 4), &plane) ||
      __builtin_add_overflow(plane, kHeaderBytes + 12 * N, &total))  // (12 N: column sums and zero points)
    return false;
  return total < kMax;
}

bool pack_zp_shifted(int bits) {
  const char* env = std::getenv("DWQ_PACK_ZP_SHIFT");
  return zp_shift_fits(bits) && !(env != nullptr && std::strcmp(env, "0") == 0);
}

int64_t packed_weight_bytes(int64_t N, int64_t K, int bits) { return packed_layout(N, K, bits).bytes; }

int64_t packed_weight_cols(int64_t N, int64_t K, int bits) {
  return (packed_weight_bytes(N, K, bits) + N - 1) / N;
}

int64_t pack_weight(const void* w_ptr, bool w_is_u8, int64_t N, int64_t K, int64_t sn, int64_t sk,
                    const int32_t* zero_point, int bits, int8_t* out, int kh, int kw) {
  PackedLayout h = packed_layout(N, K, bits, kh, kw);
  const uint32_t qmax = (uint32_t{1} << bits) - 1;
  h.zp_shifted = pack_zp_shifted(bits);
  for (int64_t n = 0; n < N && h.zp_shifted; ++n)  // (a zero point out of range keeps the 128 offset)
    h.zp_shifted = zero_point[n] >= 0 && static_cast<uint32_t>(zero_point[n]) <= qmax;
  write_packed_header(h, out);
  int8_t* data = out + h.data_off;
  std::memset(data, 0, static_cast<size_t>(h.limbs * h.Npad * h.Kp));
  int64_t* colsum = reinterpret_cast<int64_t*>(out + h.colsum_off);
  int32_t* zp = reinterpret_cast<int32_t*>(out + h.zp_off);
  const uint8_t* w8 = static_cast<const uint8_t*>(w_ptr);
  const int32_t* w32 = static_cast<const int32_t*>(w_ptr);
  int64_t bad = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t blk = n / kBlockN, col = n % kBlockN;
    const int32_t low_shift = h.zp_shifted ? zero_point[n] : 128;
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t i = n * sn + k * sk;
      const uint32_t q = w_is_u8 ? w8[i] : static_cast<uint32_t>(w32[i]);
      bad += q > qmax;
      sum += q;
      // byte offset inside a limb plane: [blk][k/4][col][k%4]
      const int64_t off = blk * kBlockN * h.Kp + (k / 4) * (kBlockN * 4) + col * 4 + (k % 4);
      data[off] = static_cast<int8_t>(static_cast<int32_t>(q & 255u) - low_shift);
      if (h.limbs == 2) data[h.Npad * h.Kp + off] = static_cast<int8_t>(static_cast<int32_t>((q >> 8) & 255u) - 128);
    }
    colsum[n] = sum;
    zp[n] = zero_point[n];
  }
  return bad;
}

bool parse_packed_weight(const int8_t* blob, int64_t nbytes, PackedWeightView* v) {
  if (nbytes < kHeaderBytes) return false;
  Header h;
  std::memcpy(&h, blob, sizeof(h));
  if (h.magic != kMagic || (h.version != kVersion && h.version != kVersionZpShifted) || h.bits < 2 || h.bits > 16 ||
      h.limbs != limbs_for_bits(h.bits))
    return false;
  // Sizes bounded by the blob before any product, so that the layout below cannot wrap; a blob
  // needs at least one byte per (padded) row and column of its limb plane.
  if (h.N <= 0 || h.K <= 0 || h.N > nbytes || h.K > nbytes) return false;
  if (h.Kp != round_up(h.K, 4) || h.Npad != round_up(h.N, kBlockN)) return false;
  const bool gemm = h.kh == 0 && h.kw == 0;
  if (!gemm && (h.kh < 1 || h.kw < 1 || h.K % (int64_t{h.kh} * h.kw) != 0)) return false;
  if (h.zp_shifted != (h.version == kVersionZpShifted ? 1 : 0) || (h.zp_shifted == 1 && !zp_shift_fits(h.bits)))
    return false;
  int64_t plane = 0;
  if (__builtin_mul_overflow(h.Npad, h.Kp, &plane) || plane > nbytes) return false;
  // The offsets are read from the blob: they must be the layout's, or the engine reads out of bounds.
  const PackedLayout L = packed_layout(h.N, h.K, h.bits);
  if (h.data_off != L.data_off || h.colsum_off != L.colsum_off || h.zp_off != L.zp_off || L.bytes > nbytes)
    return false;
  v->N = h.N;
  v->K = h.K;
  v->Kp = h.Kp;
  v->Npad = h.Npad;
  v->bits = h.bits;
  v->limbs = h.limbs;
  v->kh = h.kh;
  v->kw = h.kw;
  v->zp_shifted = h.zp_shifted == 1;
  v->data = blob + h.data_off;
  v->colsum = reinterpret_cast<const int64_t*>(blob + h.colsum_off);
  v->zp = reinterpret_cast<const int32_t*>(blob + h.zp_off);
  return true;
}

// (6: the rows of the AVX-512 tile, which every other ISA's plans have always used)
int isa_row_tile(Isa isa) { return isa == Isa::amx ? amx::row_tile() : 6; }

GemmPlan plan_qgemm(int64_t M, const PackedWeightView& w, int x_bits, int nthreads, int row_tile) {
  const int64_t rt = std::max(1, row_tile);
  GemmPlan p;
  p.M = M;
  p.N = w.N;
  p.K = w.K;
  p.Kp = w.Kp;
  p.lx = limbs_for_bits(x_bits);
  p.lw = w.limbs;
  p.n_blocks = w.Npad / kBlockN;
  // A K-slab of packed weights (nc_blocks x 64 columns) stays in L2 (1 MiB/core here) while the
  // rows of a packed activation block (mc rows, L1/L2) stream through it.
  // Two-limb activations (int32 codes) are costly to pack, and every column chunk packs them again:
  // there a slab up to 1.5 MiB (L2 plus L3 streaming, far cheaper than the repacking) is allowed.
  const int64_t block_bytes = kBlockN * p.Kp * p.lw;
  const int64_t slab_bytes = p.lx == 2 ? 1536 * 1024 : 768 * 1024;
  p.nc_blocks = std::clamp<int64_t>(slab_bytes / block_bytes, 1, p.n_blocks);
  p.mc = std::clamp<int64_t>((96 * 1024) / (p.Kp * p.lx) / rt * rt, rt, 192 / rt * rt);
  p.mc = std::min(p.mc, round_up(std::max<int64_t>(M, 1), rt));
  // Equal-sized column chunks (a ragged last chunk is a large unequal item; plan_split balances
  // the rest by work).
  auto update = [&] {
    p.n_chunks = (p.n_blocks + p.nc_blocks - 1) / p.nc_blocks;
    p.nc_blocks = (p.n_blocks + p.n_chunks - 1) / p.n_chunks;
    p.m_blocks = (M + p.mc - 1) / p.mc;
  };
  update();
  const int64_t want = 4 * std::max(1, nthreads);
  while (p.items() < want) {
    if (p.nc_blocks > 1) {
      p.nc_blocks = (p.nc_blocks + 1) / 2;
    } else if (p.mc > rt) {
      p.mc = std::max<int64_t>(rt, round_up(p.mc / 2, rt));
    } else {
      break;
    }
    update();
  }
  if (M == 0) p.m_blocks = 0;
  return p;
}

int64_t plan_split(const GemmPlan& p, int t, int nthreads) {
  const int64_t items = p.items();
  if (t <= 0 || items == 0) return 0;
  if (t >= nthreads) return items;
  // Work before item i (chunk-major order): M rows times the blocks of the earlier chunks, plus the
  // earlier rows of its chunk times that chunk's blocks. Pick the boundary nearest the target.
  auto before = [&](int64_t i) {
    const int64_t c = i / p.m_blocks, mb = i % p.m_blocks;
    const int64_t b0 = std::min(c * p.nc_blocks, p.n_blocks), b1 = std::min((c + 1) * p.nc_blocks, p.n_blocks);
    return p.M * b0 + std::min(mb * p.mc, p.M) * (b1 - b0);
  };
  const int64_t total = p.M * p.n_blocks;
  const double target = static_cast<double>(total) * t / nthreads;
  int64_t lo = 0, hi = items;  // first i with before(i) >= target
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<double>(before(mid)) < target) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && target - static_cast<double>(before(lo - 1)) < static_cast<double>(before(lo)) - target) --lo;
  return lo;
}

int64_t run_qgemm(Isa isa, const GemmPlan& plan, const ActSource& a, const PackedWeightView& w,
                  const Epilogue& ep, int64_t begin, int64_t end) {
  switch (isa) {
    case Isa::amx:
      // (isa_supported asks the OS for the tile state, without which a tile instruction is SIGILL;
      // select_isa has refused amx where it is not supported, so only a direct caller falls through)
      if (isa_supported(Isa::amx)) return amx::run(plan, a, w, ep, begin, end);
      [[fallthrough]];
    case Isa::avx512_vnni: return avx512_vnni::run(plan, a, w, ep, begin, end);
    case Isa::avx2: return avx2::run(plan, a, w, ep, begin, end);
    default: return scalar::run(plan, a, w, ep, begin, end);
  }
}

int64_t quantize_act(Isa isa, const float* x, int64_t n, float scale, int32_t zp, int bits, void* out, bool out_u8) {
  switch (isa) {
    case Isa::amx: return amx::quantize(x, n, scale, zp, bits, out, out_u8);
    case Isa::avx512_vnni: return avx512_vnni::quantize(x, n, scale, zp, bits, out, out_u8);
    case Isa::avx2: return avx2::quantize(x, n, scale, zp, bits, out, out_u8);
    default: return scalar::quantize(x, n, scale, zp, bits, out, out_u8);
  }
}

int64_t affine_quantize_act(Isa isa, const float* x, int64_t rows, int64_t inner, const AffineRows& a, float scale,
                            int32_t zp, int bits, void* out, bool out_u8) {
  switch (isa) {
    case Isa::amx: return amx::affine_quantize(x, rows, inner, a, scale, zp, bits, out, out_u8);
    case Isa::avx512_vnni: return avx512_vnni::affine_quantize(x, rows, inner, a, scale, zp, bits, out, out_u8);
    case Isa::avx2: return avx2::affine_quantize(x, rows, inner, a, scale, zp, bits, out, out_u8);
    default: return scalar::affine_quantize(x, rows, inner, a, scale, zp, bits, out, out_u8);
  }
}

}  // namespace dwq::cpu

// AMX microkernel of the integer GEMM engine (qgemm.h), for Xeons with AMX-INT8 (Sapphire Rapids and
// later): tdpbusd multiplies a 16 x 64 tile of u8 activations by a 16 x 64 tile of s8 shifted
// weights (16 columns x 4 k-values per row: exactly a 16-column slice of the packed blob's 256-byte
// k-group rows, so the blob is read as it is) into 16 x 16 int32, 1,024 products per cycle against
// AVX-512 VNNI's 128. One call: 16 rows x 64 columns in four accumulator tiles (tmm0-3), the
// activation tile in tmm4, the weight tiles through tmm5-7. The activation rows are packed with a
// stride that is a multiple of 64 bytes, zero past K (DWQ_ISA_A_ALIGN), so a last partial k block
// reads zeros there; its weight rows past the block's k groups come from a zero-padded copy (they
// would be the next block's bytes, or past the blob's end). Everything else (packing, the fused
// epilogue) is the AVX-512 build's. On Linux a process must ask the kernel for the tile state
// first (qgemm_common.cpp, isa_supported). Only the code after the includes is built for AMX.
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/isa_region.h"
#include "common/arith.h"
#include "cpu/qgemm.h"

// Everything above is generic x86-64 (see isa_region.h for why the region opens only here).
DWQ_ISA_REGION_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,popcnt,amx-tile,amx-int8")

namespace dwq::cpu::amx {

constexpr int kMR = 16;
#define DWQ_ISA_A_ALIGN 64

int row_tile() { return kMR; }  // (plan_qgemm's rows per item are a multiple of it: isa_row_tile)

namespace {

constexpr int kGroupsPerBlock = 16;       // k groups (of 4) per 64-byte k block: a weight tile's rows
constexpr int64_t kGroupBytes = kBlockN * 4;  // one k group of a 64-column block in the blob

// The weight rows of a last partial k block, zero-padded to a whole tile, for the block at `src`
// (kept while the next calls read the same rows: every row tile of an item meets the same block).
struct TailRows {
  alignas(64) int8_t rows[kGroupsPerBlock * kGroupBytes];
  const int8_t* src = nullptr;
  int64_t groups = 0;
  const int8_t* get(const int8_t* from, int64_t n) {
    if (from != src || n != groups) {
      std::memcpy(rows, from, static_cast<size_t>(n * kGroupBytes));
      std::memset(rows + n * kGroupBytes, 0, static_cast<size_t>((kGroupsPerBlock - n) * kGroupBytes));
      src = from;
      groups = n;
    }
    return rows;
  }
};

thread_local TailRows tail_rows;

}  // namespace

// The tile configuration of every call of run() on this thread: eight 16-row x 64-byte tiles.
// Configured at its start and released at its end, never between calls: other code on the thread
// (oneDNN inside torch) configures tiles its own way. The kept tail rows are dropped too: a weight
// blob freed after a call may be replaced by another at the same address.
#define DWQ_ISA_SCOPE 1
struct IsaScope {
  IsaScope() {
    struct alignas(64) {
      uint8_t palette, start_row, reserved[14];
      uint16_t colsb[16];
      uint8_t rows[16];
    } cfg = {};
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    tail_rows.src = nullptr;
  }
  ~IsaScope() { _tile_release(); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;
};

// The four accumulator tiles tmm0-3 (16 rows x 64 int32 columns): cleared, then stored to C.
static inline __attribute__((always_inline)) void zero_acc() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}
static inline __attribute__((always_inline)) void store_acc(int32_t* C) {
  _tile_stored(0, C, kBlockN * 4);
  _tile_stored(1, C + 16, kBlockN * 4);
  _tile_stored(2, C + 32, kBlockN * 4);
  _tile_stored(3, C + 48, kBlockN * 4);
}

// One 64-deep k block: 16 activation rows of 64 bytes at a (row stride lda) times the four
// 16-column weight tiles of the blob's k block at b (rows of 256 bytes), into tmm0-3.
static inline __attribute__((always_inline)) void kblock(const uint8_t* a, int64_t lda, const int8_t* b) {
  _tile_loadd(4, a, lda);
  _tile_loadd(5, b, kGroupBytes);
  _tile_dpbusd(0, 4, 5);
  _tile_loadd(6, b + 64, kGroupBytes);
  _tile_dpbusd(1, 4, 6);
  _tile_loadd(7, b + 128, kGroupBytes);
  _tile_dpbusd(2, 4, 7);
  _tile_loadd(5, b + 192, kGroupBytes);
  _tile_dpbusd(3, 4, 5);
}

// C[r][0..63] = sum_{k < 4*kg} A[r*lda + k] * B[(k/4)*256 + j*4 + k%4] for r < 16 (rows mr..15 are
// computed from the buffer's spare rows and ignored by the driver). lda: a multiple of 64, the rows
// zero from 4*kg to the next multiple of 64.
static void ukernel(int /*mr*/, const uint8_t* A, int64_t lda, const int8_t* B, int64_t kg, int32_t* C) {
  zero_acc();
  const int64_t blocks = kg / kGroupsPerBlock, left = kg % kGroupsPerBlock;
  for (int64_t kb = 0; kb <= blocks; ++kb) {
    const int8_t* b = B + kb * kGroupsPerBlock * kGroupBytes;
    if (kb == blocks) {
      if (left == 0) break;
      b = tail_rows.get(b, left);
    }
    kblock(A + kb * 64, lda, b);
  }
  store_acc(C);
}

// Implicit-GEMM tile of a stride-1 conv whose C is a multiple of 64 (qgemm_driver_pack.inc.h,
// padded_rows): row r of tap t's k block b is the 64 bytes at P + toff[t] + 64 b + r * C, up to 16
// pixels of one output row in a zero-point-padded copy of the input, so each (tap, block) is one
// strided tile load, against the blob's k block t * (C / 64) + b (the weight's k order is
// tap-major, channel-minor). Rows past mr read the copy's spare bytes; their sums are ignored.
#define DWQ_ISA_PADDED 1
__attribute__((noinline)) static void ukernel_padded(int, const uint8_t* P, const int64_t* toff, int64_t ntaps,
                                                     int64_t C, const int8_t* B, int32_t* Cout) {
  zero_acc();
  for (int64_t t = 0; t < ntaps; ++t)
    for (int64_t c = 0; c < C; c += 64, B += kGroupsPerBlock * kGroupBytes) kblock(P + toff[t] + c, C, B);
  store_acc(Cout);
}

// Which stride-1 convs (64 | C, 2..64 taps) take ukernel_padded. A tile cannot span two output rows
// (their windows are not one stride apart), so where OW is not a multiple of 16 some tiles are
// partly empty while im2col rows fill whole ones; that pays only where packing is a large share of
// the work: 64 input channels and tiles at least 3/4 full (against im2col at 8 bits, ResNet-50 and
// PreActResNet18 shapes: 1.07-1.39x for 64 channels at OW 56, 32, 28, 14, 1.05x at 12; 0.82x for
// 256 channels at 14, 0.97-1.00x for 128 at 56 and 28; whole tiles 1.07-1.23x at 128 and 256;
// benchmarks/README.md). 1x1 kernels are a copy either way (0.93-1.00x): im2col. Limbs on the same
// shapes (16 bits against im2col, 2 threads: 64 channels at OW 32 and 56 1.30x and 1.14x, 128 at
// 16 1.19x; where the 8-bit rule says no, it lost too: 128 at 28 0.88x, 256 at 14 0.63x).
static bool padded_pays(int64_t C, int64_t OW, bool /*limbs*/, bool /*sums*/) {
  const int64_t row_tiles = (OW + kMR - 1) / kMR;
  return OW % kMR == 0 || (C == 64 && 4 * OW >= 3 * kMR * row_tiles);
}

// Pairs of whole padded tiles (DWQ_ISA_PAIR): rows 0..15 of Cout from P0, rows 16..31 from P1,
// computed as two 32-column halves in 2 x 2 accumulator tiles, so that per (tap, k block) and half
// two activation and two weight tile loads feed four products, where two ukernel_padded calls load
// ten tiles for eight: the weights of a 128-channel 3x3 conv (72 KiB per 64 columns) no longer fit
// L1 and are streamed from L2 half as often. The same pairing for ukernel's im2col rows measured
// slower (GEMM 1024^3, 4-bit, one thread: 1.35 against 1.23-1.28 ms): not used.
#define DWQ_ISA_PAIR 1
// One k block of one half: the two activation tiles against the half's two 16-column weight tiles.
static inline __attribute__((always_inline)) void kblock_pair(const uint8_t* a0, const uint8_t* a1, int64_t lda,
                                                              const int8_t* b) {
  _tile_loadd(4, a0, lda);
  _tile_loadd(6, b, kGroupBytes);
  _tile_dpbusd(0, 4, 6);
  _tile_loadd(7, b + 64, kGroupBytes);
  _tile_dpbusd(1, 4, 7);
  _tile_loadd(5, a1, lda);
  _tile_dpbusd(2, 5, 6);
  _tile_dpbusd(3, 5, 7);
}
static inline __attribute__((always_inline)) void store_pair_half(int32_t* C, int half) {
  int32_t* o = C + 32 * half;
  _tile_stored(0, o, kBlockN * 4);
  _tile_stored(1, o + 16, kBlockN * 4);
  _tile_stored(2, o + 16 * kBlockN, kBlockN * 4);
  _tile_stored(3, o + 16 * kBlockN + 16, kBlockN * 4);
}

// ukernel_padded's contract for two tiles: P0's into rows 0..15 of Cout, P1's into rows 16..31.
__attribute__((noinline)) static void ukernel_padded_pair(const uint8_t* P0, const uint8_t* P1, const int64_t* toff,
                                                          int64_t ntaps, int64_t C, const int8_t* B, int32_t* Cout) {
  for (int half = 0; half < 2; ++half) {
    zero_acc();
    const int8_t* b = B + 128 * half;
    for (int64_t t = 0; t < ntaps; ++t)
      for (int64_t c = 0; c < C; c += 64, b += kGroupsPerBlock * kGroupBytes)
        kblock_pair(P0 + toff[t] + c, P1 + toff[t] + c, C, b);
    store_pair_half(Cout, half);
  }
}

#include "cpu/qgemm_avx512_parts.inc.h"
#include "cpu/qgemm_driver.inc.h"

}  // namespace dwq::cpu::amx

DWQ_ISA_REGION_END

// Host entry points of the tensor-core kernels (qgemm_mma.cu, qgemm_wgmma.cu), for the bindings in
// qgemm.cu. Torch-free; the caller owns the memory and picks the stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/qgemm_params.h"

namespace dwq::cuda {

// The tensor-core GEMM kernels: mma.sync (sm_80 and newer), wgmma (sm_90a, Hopper; operands by
// cp.async from every thread), wgmma_tma (the same tiles, warp-specialized: a producer warpgroup
// feeds them by TMA, and by cp.async for an implicit conv's activations) and wgmma_pp (the TMA
// kernel with ping-pong consumers: each warpgroup its own tile, one's epilogue beside the other's
// MMAs; 8-bit; limbs run wgmma_tma's tiles).
enum class Engine { kMma, kWgmma, kWgmmaTma, kDp4a, kWgmmaPp };
// kDp4a: the CUDA-core kernel (qgemm_dp4a.cuh) that every engine runs a matrix product of at most
// this many rows on (a tensor-core tile would be mostly padding).
int dp4a_max_rows();

// K per grid z-slice for which the kernel's int32 partials are exact: 65,536 for one limb each,
// 32,768 when x or w has two 8-bit limbs (see qgemm_mma.cuh); the same for every engine.
int64_t mma_k_chunk(bool limb);
// Output tile (rows x columns, by N: every engine narrows it for a narrow N) per CTA, and the multiple of K
// that a z-slice must be.
int gemm_block_m(Engine engine, bool limb, int64_t N);
int gemm_block_n(Engine engine, bool limb, int64_t N);
int gemm_k_align(Engine engine);
// Multiprocessors of `device` (queried once per device; 1 if the query fails).
int sm_count(int device);

// Launches qgemm_mma_kernel over ceil(M/BM) x ceil(N/BN) x ceil(K/p.k_chunk) CTAs. limb: x or w has
// two limbs (p.lx, p.lw); conv: implicit conv mode (one limb each). Returns the launch error.
cudaError_t launch_qgemm_mma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream);

// The same contract on qgemm_dp4a_kernel (matrix mode; A rows 4-byte aligned).
cudaError_t launch_qgemm_dp4a(const MmaParams& p, bool limb, cudaStream_t stream);

// Whether this build holds the sm_90a wgmma kernel (built with 9.0a in TORCH_CUDA_ARCH_LIST) and the
// device runs it (compute capability 9.0).
bool wgmma_supported(int device);
// The same contract as launch_qgemm_mma on qgemm_wgmma_kernel; p.b is the K-major copy that
// launch_repack_kmajor wrote (p.ldb, p.b_plane).
cudaError_t launch_qgemm_wgmma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream);
// Whether the TMA kernel can read p's operands through tensor maps: 16-byte aligned bases and rows,
// rows at least K long and limb planes that do not overlap (A in matrix mode only).
bool wgmma_tma_fits(const MmaParams& p, bool conv);
// launch_qgemm_wgmma's contract on qgemm_wgmma_tma_kernel, for operands that wgmma_tma_fits;
// cudaErrorInvalidValue if the driver cannot encode the tensor maps. pingpong: one limb each runs the
// ping-pong tiles (WgCfg<1, 1, BN, true>: 128 x 64 or 128 x 128 per warpgroup); limbs run the
// cooperative ones either way.
cudaError_t launch_qgemm_wgmma_tma(const MmaParams& p, bool limb, bool conv, bool pingpong, cudaStream_t stream);
// The blob's limb planes ([lw][Npad/64][Kp/4][64][4]) -> out [lw][N][ldb] K-major, k >= Kp zero.
cudaError_t launch_repack_kmajor(const int8_t* planes, int64_t N, int64_t Npad, int64_t Kp, int lw, int8_t* out,
                                 int64_t ldb, cudaStream_t stream);

// out from the int64 split-K sums in e.ws (e.kind is the final output kind).
cudaError_t launch_splitk_epilogue(const EpiParams& e, int64_t M, int64_t N, cudaStream_t stream);

}  // namespace dwq::cuda

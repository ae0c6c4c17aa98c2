// Launcher of the warp-specialized TMA wgmma kernel (qgemm_wgmma_tma.cuh) and the tensor maps it
// reads. Its own translation unit, so that its sm_90a instantiations compile beside the others.
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include "cuda/align.h"
#include "cuda/launch_smem.cuh"
#include "cuda/qgemm_launch.h"
#include "cuda/qgemm_wgmma_tma.cuh"

namespace dwq::cuda {
namespace {

// cuTensorMapEncodeTiled from the driver that the runtime already loaded (no -lcuda at link time).
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return PFN_cuTensorMapEncodeTiled_v12000{nullptr};
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// The tensor map of byte operand `base` with geometry g (byte_box), 128-byte swizzled (the layout
// of sw128 / sw128_desc), zero fill.
bool byte_map(CUtensorMap* map, const void* base, const TmaBox& g) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = encode_tiled();
  if (encode == nullptr) return false;
  const cuuint32_t step[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, const_cast<void*>(base), g.dim, g.stride, g.box, step,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// SMs of the current device (the binding's guard set it): the persistent grid's size (one CTA per
// SM fits the shared memory).
int current_sm_count() {
  int device = 0;
  if (cudaGetDevice(&device) == cudaSuccess) return sm_count(device);
  (void)cudaGetLastError();  // not this op's launch error for the next check to report
  return 1;
}

// The tensor maps, the persistent grid and the launch (PROBE: benchmarks/cuda/wgmma_probe.cu's
// variants of the kernel, which this file is included by).
template <class Cfg, bool CONV, int PROBE = 0>
cudaError_t launch_tma(const MmaParams& p, cudaStream_t stream) {
  CUtensorMap ma{}, mb;  // conv: the kernel copies A itself (ma unused)
  if ((!CONV && !byte_map(&ma, p.a, a_box<Cfg>(p))) || !byte_map(&mb, p.b, b_box<Cfg>(p)))
    return cudaErrorInvalidValue;
  const dim3 grid = wg_persistent_grid<Cfg>(p, current_sm_count());
  return launch_smem(qgemm_wgmma_tma_kernel<Cfg, CONV, PROBE>, grid, Cfg::THREADS + 128, Cfg::SMEM, stream, p, ma,
                     mb);
}

template <class Cfg, bool CONV>
struct Launch {
  static cudaError_t run(const MmaParams& p, cudaStream_t stream) { return launch_tma<Cfg, CONV>(p, stream); }
};

}  // namespace

bool wgmma_tma_fits(const MmaParams& p, bool conv) {
  // The tensor maps' global strides (rows, limb planes) must be multiples of 16 bytes.
  const bool b_ok = aligned16(p.b) && p.ldb % 16 == 0 && p.ldb >= p.K &&
                    (p.lw == 1 || (p.b_plane >= p.N * p.ldb && p.b_plane % 16 == 0));
  if (conv) return b_ok;  // A: the implicit-conv contract of MmaParams, copied by cp.async
  return b_ok && aligned16(p.a) && p.lda % 16 == 0 && p.lda >= p.K &&
         (p.lx == 1 || (p.a_plane >= p.M * p.lda && p.a_plane % 16 == 0));
}

cudaError_t launch_qgemm_wgmma_tma(const MmaParams& p, bool limb, bool conv, bool pingpong, cudaStream_t stream) {
  if (pingpong && !limb) return wg_dispatch_pp<Launch>(p, conv, stream);
  return wg_dispatch<Launch>(p, limb, conv, stream);
}

}  // namespace dwq::cuda

// Launchers of the Hopper wgmma kernel (qgemm_wgmma.cuh) and the K-major repack of the blob's
// weight planes it reads. Its own translation unit: the sm_90a kernels compile beside qgemm.cu and
// qgemm_mma.cu.
#include <algorithm>

#include "cuda/launch_smem.cuh"
#include "cuda/qgemm_launch.h"
#include "cuda/qgemm_repack.cuh"
#include "cuda/qgemm_wgmma.cuh"

namespace dwq::cuda {
namespace {

template <class Cfg, bool CONV>
struct Launch {
  static cudaError_t run(const MmaParams& p, cudaStream_t stream) {
    dim3 grid;
    if (!tile_grid<Cfg>(p, &grid)) return cudaErrorInvalidConfiguration;
    return launch_smem(qgemm_wgmma_kernel<Cfg, CONV>, grid, Cfg::THREADS, Cfg::SMEM, stream, p);
  }
};

}  // namespace

bool wgmma_supported(int device) {
#ifdef DWQ_BUILT_SM90A
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();  // not this op's launch error for the next check to report
    return false;
  }
  return major == 9 && minor == 0;  // sm_90a code runs on compute capability 9.0 only
#else
  (void)device;
  return false;
#endif
}

cudaError_t launch_qgemm_wgmma(const MmaParams& p, bool limb, bool conv, cudaStream_t stream) {
  return wg_dispatch<Launch, true>(p, limb, conv, stream);
}

cudaError_t launch_repack_kmajor(const int8_t* planes, int64_t N, int64_t Npad, int64_t Kp, int lw, int8_t* out,
                                 int64_t ldb, cudaStream_t stream) {
  const int64_t tiles = int64_t(lw) * ((N + 63) / 64) * ((ldb + 127) / 128);
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(tiles, 65535 * 16));
  repack_kmajor_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(planes, N, Npad, Kp, lw, out, ldb);
  return cudaGetLastError();
}

}  // namespace dwq::cuda

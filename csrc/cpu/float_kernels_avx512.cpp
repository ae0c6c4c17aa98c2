// The float kernels (float_kernels.inc.h) for AVX-512 (16 floats a vector), chosen with the AVX-512 VNNI integer kernels (one Isa level).
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <limits>
#include <type_traits>

#include "common/arith.h"
#include "cpu/float_io.h"
#include "cpu/float_kernels.h"
#include "cpu/isa_region.h"

// Everything above is generic x86-64 (see isa_region.h for why the region opens only here).
DWQ_ISA_REGION_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
namespace dwq::cpu::avx512_vnni {

#define DWQ_F16C
#define DWQ_VEC_BYTES 64
#include "cpu/float_kernels.inc.h"
#undef DWQ_VEC_BYTES
#undef DWQ_F16C

DWQ_FLOAT_KERNEL_INSTANTIATIONS

}  // namespace dwq::cpu::avx512_vnni
DWQ_ISA_REGION_END

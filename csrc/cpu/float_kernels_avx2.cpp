// The float kernels (float_kernels.inc.h) for AVX2 (8 floats a vector, F16C conversions).
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
DWQ_ISA_REGION_BEGIN("avx2,fma,f16c")
namespace dwq::cpu::avx2 {

#define DWQ_F16C
#define DWQ_VEC_BYTES 32
#include "cpu/float_kernels.inc.h"
#undef DWQ_VEC_BYTES
#undef DWQ_F16C

DWQ_FLOAT_KERNEL_INSTANTIATIONS

}  // namespace dwq::cpu::avx2
DWQ_ISA_REGION_END

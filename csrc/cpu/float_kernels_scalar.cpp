// The float kernels (float_kernels.inc.h) for generic x86-64 (SSE2).
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/arith.h"
#include "cpu/float_io.h"
#include "cpu/float_kernels.h"

namespace dwq::cpu::scalar {

#define DWQ_VEC_BYTES 16
#include "cpu/float_kernels.inc.h"
#undef DWQ_VEC_BYTES

DWQ_FLOAT_KERNEL_INSTANTIATIONS

}  // namespace dwq::cpu::scalar


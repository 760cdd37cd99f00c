// The avx512 kernel variant: kernels_impl.h compiled with -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma
// (CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include <immintrin.h>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace avx512 {
#define FASTRNN_KERNEL_ISA "avx512"
#include "isa_avx512.h"
#include "kernels_impl.h"
}  // namespace avx512
}  // namespace fastrnn

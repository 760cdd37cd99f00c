// The avx2 kernel variant: kernels_impl.h compiled with -mavx2 -mfma (CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include <immintrin.h>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace avx2 {
#define FASTRNN_KERNEL_ISA "avx2"
#include "isa_avx2.h"
#include "kernels_impl.h"
}  // namespace avx2
}  // namespace fastrnn

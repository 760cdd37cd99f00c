// The avx512 variant's 16-lane code on AVX2+FMA instructions (-mavx2 -mfma), for tests on CPUs without
// AVX-512: isa_avx512.h with the portable forms of its masked moves.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include <immintrin.h>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace avx512_emulated {
#define FASTRNN_KERNEL_ISA "avx512-emulated"
#include "isa_avx512.h"
#include "kernels_impl.h"
}  // namespace avx512_emulated
}  // namespace fastrnn

// The portable kernel variant: kernels_impl.h compiled for the baseline instruction set.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace portable {
#define FASTRNN_KERNEL_ISA "portable"
#include "isa_portable.h"
#include "kernels_impl.h"
}  // namespace portable
}  // namespace fastrnn

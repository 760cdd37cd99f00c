// The portable kernel variant: kernels_impl.h compiled for the baseline instruction set.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace portable {
#define FASTRNN_KERNEL_ISA Isa::portable
#include "kernels_impl.h"
}  // namespace portable
}  // namespace fastrnn

// The one dispatch point: which kernel variant runs, decided once per process from the CPU's
// features and FASTRNN_ISA (set it to "portable" to force the portable variant).
#include <cstdlib>
#include <cstring>

#include "fastrnn/kernels.h"

namespace fastrnn {
namespace portable {
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
}  // namespace portable
#if defined(FASTRNN_HAVE_AVX2)
namespace avx2 {
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
}  // namespace avx2
#endif

bool isa_available(Isa isa) {
    switch (isa) {
        case Isa::portable:
            return true;
        case Isa::avx2:
#if defined(FASTRNN_HAVE_AVX2)
            // libgcc's check includes the operating system's support for the AVX state.
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
            return false;
#endif
    }
    return false;
}

// FASTRNN_ISA has one value, "portable".
static bool portable_requested() {
    const char* requested = std::getenv("FASTRNN_ISA");
    return requested && std::strcmp(requested, "portable") == 0;
}

Isa best_isa() {
    static const Isa chosen = [] {
        if (portable_requested()) return Isa::portable;
        return isa_available(Isa::avx2) ? Isa::avx2 : Isa::portable;
    }();
    return chosen;
}

const char* ignored_isa_request() {
    const char* requested = std::getenv("FASTRNN_ISA");
    return requested && !portable_requested() ? requested : nullptr;
}

const char* isa_name(Isa isa) { return isa == Isa::avx2 ? "avx2" : "portable"; }

template <> const KernelTable<float>& kernels<float>(Isa isa) {
#if defined(FASTRNN_HAVE_AVX2)
    if (isa == Isa::avx2) return avx2::table_f32;
#endif
    (void)isa;
    return portable::table_f32;
}

template <> const KernelTable<double>& kernels<double>(Isa isa) {
#if defined(FASTRNN_HAVE_AVX2)
    if (isa == Isa::avx2) return avx2::table_f64;
#endif
    (void)isa;
    return portable::table_f64;
}

}  // namespace fastrnn

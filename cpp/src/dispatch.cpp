// The one dispatch point: the table of kernel variants this build has, what each needs from the
// CPU, and which one runs, decided once per process from the CPU's features and FASTRNN_ISA.
#include <cstdlib>
#include <cstring>
#include <string>

#include "fastrnn/kernels.h"

namespace fastrnn {

// Each variant's tables, defined in its kernels_<name>.cpp (built when CMake defines
// FASTRNN_HAVE_<NAME>).
#define FASTRNN_DECLARE_TABLES(space)             \
    namespace space {                             \
    extern const KernelTable<float> table_f32;    \
    extern const KernelTable<double> table_f64;   \
    }
FASTRNN_DECLARE_TABLES(portable)
#if defined(FASTRNN_HAVE_AVX2)
FASTRNN_DECLARE_TABLES(avx2)
#endif
#if defined(FASTRNN_HAVE_AVX512)
FASTRNN_DECLARE_TABLES(avx512)
FASTRNN_DECLARE_TABLES(avx512_emulated)
#endif
#undef FASTRNN_DECLARE_TABLES

namespace {

bool always() { return true; }

// libgcc's checks include the operating system's support for the registers' state (XCR0).
[[maybe_unused]] bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
[[maybe_unused]] bool has_avx512() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && has_avx2();
}

const IsaVariant kVariants[] = {
#if defined(FASTRNN_HAVE_AVX512)
    {"avx512", &has_avx512, false, &avx512::table_f32, &avx512::table_f64},
#endif
#if defined(FASTRNN_HAVE_AVX2)
    {"avx2", &has_avx2, false, &avx2::table_f32, &avx2::table_f64},
#endif
    {"portable", &always, false, &portable::table_f32, &portable::table_f64},
#if defined(FASTRNN_HAVE_AVX512)
    {"avx512-emulated", &has_avx2, true, &avx512_emulated::table_f32, &avx512_emulated::table_f64},
#endif
};

struct Choice {
    const IsaVariant* variant;
    std::string ignored;   // why FASTRNN_ISA was not followed, empty if it was or is unset
};

Choice choose() {
    const IsaVariant* best = nullptr;
    for (const IsaVariant& variant : kVariants)
        if (!best && !variant.tests_only && variant.available()) best = &variant;
    const char* requested = std::getenv("FASTRNN_ISA");
    if (!requested) return {best, ""};
    const IsaVariant* named = find_isa(requested);
    if (named && !named->tests_only && named->available()) return {named, ""};
    std::string known;
    for (const IsaVariant& variant : kVariants)
        if (!variant.tests_only) known += std::string(known.empty() ? "'" : ", '") + variant.name + "'";
    const std::string reason = !named || named->tests_only ? "expected one of " + known
                                                           : "this CPU cannot run the " + std::string(requested) + " kernels";
    return {best, "FASTRNN_ISA='" + std::string(requested) + "' ignored (" + reason + "); using " + best->name};
}

const Choice& choice() {
    static const Choice chosen = choose();
    return chosen;
}

}  // namespace

const IsaVariant* isa_variants() { return kVariants; }

int isa_variant_count() { return static_cast<int>(sizeof kVariants / sizeof kVariants[0]); }

const IsaVariant* find_isa(const char* name) {
    for (const IsaVariant& variant : kVariants)
        if (std::strcmp(variant.name, name) == 0) return &variant;
    return nullptr;
}

const IsaVariant& chosen_isa() { return *choice().variant; }

const char* ignored_isa_request() { return choice().ignored.empty() ? nullptr : choice().ignored.c_str(); }

template <> const KernelTable<float>& kernels<float>(const IsaVariant& variant) { return *variant.f32; }
template <> const KernelTable<double>& kernels<double>(const IsaVariant& variant) { return *variant.f64; }

}  // namespace fastrnn

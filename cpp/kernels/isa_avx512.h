// AVX-512 (F, VL, BW, DQ) with FMA: 64-byte vectors (16 floats, 8 doubles), 32 registers, and
// mask registers that make a row's last, partial vector as cheap as a whole one.
//
// Included inside namespace fastrnn::avx512 by kernels_avx512.cpp (compiled with the AVX-512
// flags), before kernels_impl.h. kernels_avx512_emulated.cpp compiles the same 16-lane code
// for AVX2 instructions, so that machines without AVX-512 test it too; there the masked moves
// below are their portable forms.

constexpr int kVectorBytes = 64;
// Rows of the product micro-kernel's tile: 16 accumulators (8 rows x 2 vectors) keep both FMA
// pipes busy, and 8 divides the usual batch sizes (32, 64, 128) into whole tiles.
constexpr int kTileRows = 8;
// Bytes of A's rows a product keeps in L2 (1 MB per core on the servers this targets) while
// every 256-deep panel of B (32 KB) passes through L1 (48 KB).
constexpr Index kRowBlockBytes = 256 * 1024;

#include "simd.h"

#if defined(__AVX512F__)
inline __mmask16 lane_mask16(Index count) { return static_cast<__mmask16>((1u << count) - 1); }
inline __mmask8 lane_mask8(Index count) { return static_cast<__mmask8>((1u << count) - 1); }

template <> inline Vec<float> load_partial<float>(const float* source, Index count) {
    return (Vec<float>)_mm512_maskz_loadu_ps(lane_mask16(count), source);
}
template <> inline Vec<double> load_partial<double>(const double* source, Index count) {
    return (Vec<double>)_mm512_maskz_loadu_pd(lane_mask8(count), source);
}
template <> inline void store_partial<float>(float* destination, Vec<float> v, Index count) {
    _mm512_mask_storeu_ps(destination, lane_mask16(count), (__m512)v);
}
template <> inline void store_partial<double>(double* destination, Vec<double> v, Index count) {
    _mm512_mask_storeu_pd(destination, lane_mask8(count), (__m512d)v);
}
#else
template <class T> inline Vec<T> load_partial(const T* source, Index count) {
    return generic_load_partial(source, count);
}
template <class T> inline void store_partial(T* destination, Vec<T> v, Index count) {
    generic_store_partial(destination, v, count);
}
#endif

template <class T> inline Vec<T> sum_each(const Vec<T>* v) { return generic_sum_each<T>(v); }

// AVX2 with FMA: 32-byte vectors, 16 registers.
//
// Included inside namespace fastrnn::avx2 by kernels_avx2.cpp (compiled with -mavx2 -mfma),
// before kernels_impl.h.

constexpr int kVectorBytes = 32;
// Rows of the product micro-kernel's tile: 12 accumulators (6 rows x 2 vectors), 2 panel
// vectors and 1 broadcast of the 16 registers.
constexpr int kTileRows = 6;
// Bytes of A's rows a product keeps in L2 while every panel of B passes through L1.
constexpr Index kRowBlockBytes = 128 * 1024;

#include "simd.h"

// A masked load: the mask is the window of a table of 8 ones then 8 zeros that starts `count`
// ones before its end.
alignas(64) static const std::int32_t kLaneMask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
alignas(64) static const std::int64_t kLaneMask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

template <> inline Vec<float> load_partial<float>(const float* source, Index count) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask32 + 8 - count));
    return (Vec<float>)_mm256_maskload_ps(source, mask);
}

template <> inline Vec<double> load_partial<double>(const double* source, Index count) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask64 + 4 - count));
    return (Vec<double>)_mm256_maskload_pd(source, mask);
}

// Fixed-size moves: AVX2's masked store is slow on AMD cores.
template <class T> inline void store_partial(T* destination, Vec<T> v, Index count) {
    generic_store_partial(destination, v, count);
}

// hadd pairs neighbours: two rounds leave each vector's 128-bit halves summed, one per lane of
// each half; adding the two halves finishes.
template <> inline Vec<float> sum_each<float>(const Vec<float>* v) {
    const __m256 pairs01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]);
    const __m256 pairs23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
    const __m256 pairs45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]);
    const __m256 pairs67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
    const __m256 quads0123 = _mm256_hadd_ps(pairs01, pairs23);
    const __m256 quads4567 = _mm256_hadd_ps(pairs45, pairs67);
    const __m256 low = _mm256_permute2f128_ps(quads0123, quads4567, 0x20);
    const __m256 high = _mm256_permute2f128_ps(quads0123, quads4567, 0x31);
    return (Vec<float>)_mm256_add_ps(low, high);
}

template <> inline Vec<double> sum_each<double>(const Vec<double>* v) {
    const __m256d pairs01 = _mm256_hadd_pd((__m256d)v[0], (__m256d)v[1]);
    const __m256d pairs23 = _mm256_hadd_pd((__m256d)v[2], (__m256d)v[3]);
    const __m256d low = _mm256_permute2f128_pd(pairs01, pairs23, 0x20);
    const __m256d high = _mm256_permute2f128_pd(pairs01, pairs23, 0x31);
    return (Vec<double>)_mm256_add_pd(low, high);
}

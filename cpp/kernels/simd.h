// The vector type of the instruction set this translation unit is compiled for, and the few
// operations the kernels need. GCC/Clang vector extensions: the same source becomes AVX2+FMA
// code in kernels_avx2.cpp and SSE2/NEON code in kernels_portable.cpp.
//
// Included inside namespace fastrnn::<isa> by kernels_impl.h; needs <cstring> and <cstdint>
// (and <immintrin.h> for AVX2).

#if defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <class T> struct Simd;

template <> struct Simd<float> {
    typedef float Vec __attribute__((vector_size(kVectorBytes)));
    typedef std::int32_t IntVec __attribute__((vector_size(kVectorBytes)));
    static constexpr int lanes = kVectorBytes / 4;
};

template <> struct Simd<double> {
    typedef double Vec __attribute__((vector_size(kVectorBytes)));
    typedef std::int64_t IntVec __attribute__((vector_size(kVectorBytes)));
    static constexpr int lanes = kVectorBytes / 8;
};

template <class T> using Vec = typename Simd<T>::Vec;

template <class T> inline Vec<T> load(const T* source) {
    Vec<T> v;
    std::memcpy(&v, source, sizeof v);   // unaligned load
    return v;
}

template <class T> inline void store(T* destination, Vec<T> v) {
    std::memcpy(destination, &v, sizeof v);
}

// value - (+0) is exactly value for every input, so this folds to a single broadcast.
template <class T> inline Vec<T> broadcast(T value) {
    return value - Vec<T>{};
}

template <class To, class From> inline To bit_cast(From value) {
    static_assert(sizeof(To) == sizeof(From), "bit_cast needs equal sizes");
    To result;
    std::memcpy(&result, &value, sizeof result);
    return result;
}

template <class T> inline T min_of(T a, T b) { return b < a ? b : a; }
template <class T> inline T max_of(T a, T b) { return a < b ? b : a; }

// The first `count` lanes (1 <= count <= lanes) of source, zeros above: a masked load, which
// never touches memory past the last lane asked for.
#if defined(__AVX2__)
alignas(64) static const std::int32_t kLaneMask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
alignas(64) static const std::int64_t kLaneMask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

inline Vec<float> load_partial(const float* source, Index count) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask32 + 8 - count));
    return (Vec<float>)_mm256_maskload_ps(source, mask);
}

inline Vec<double> load_partial(const double* source, Index count) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask64 + 4 - count));
    return (Vec<double>)_mm256_maskload_pd(source, mask);
}
#else
template <class T> inline Vec<T> load_partial(const T* source, Index count) {
    T lanes[Simd<T>::lanes] = {};
    for (Index i = 0; i < count; ++i) lanes[i] = source[i];
    return load(lanes);
}
#endif

// A row's vector at column j: whole, or its first `count` lanes at the row's end.
template <class T> inline Vec<T> load_lanes(const T* source, Index count) {
    return count == Simd<T>::lanes ? load(source) : load_partial(source, count);
}

// Stores the first `count` lanes of v as a few fixed-size moves (AVX2's masked store is slow
// on AMD cores), touching nothing past them.
template <class T> inline void store_partial(T* destination, Vec<T> v, Index count) {
    constexpr int lanes = Simd<T>::lanes;
    if (count == lanes) {
        store(destination, v);
        return;
    }
    alignas(64) T values[lanes];
    store(values, v);
    Index i = 0;
    if (lanes > 4 && (count & 4)) {
        std::memcpy(destination, values, 4 * sizeof(T));
        i = 4;
    }
    if (lanes > 2 && (count & 2)) {
        std::memcpy(destination + i, values + i, 2 * sizeof(T));
        i += 2;
    }
    if (count & 1) destination[i] = values[i];
}

// The horizontal sum of each of `lanes` vectors v[0..lanes), as one vector: result[j] = sum of
// v[j]'s lanes.
template <class T> inline Vec<T> sum_each(const Vec<T>* v) {
    Vec<T> sums{};
    for (int j = 0; j < Simd<T>::lanes; ++j)
        for (int lane = 0; lane < Simd<T>::lanes; ++lane) sums[j] += v[j][lane];
    return sums;
}

#if defined(__AVX2__)
template <> inline Vec<float> sum_each<float>(const Vec<float>* v) {
    // hadd pairs neighbours: two rounds leave each vector's 128-bit halves summed, one per lane
    // of each half; adding the two halves finishes.
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
#endif

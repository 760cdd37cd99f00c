// The vector type of the instruction set this translation unit is compiled for, and the few
// operations the kernels need. GCC/Clang vector extensions: the same source becomes AVX2+FMA
// code in kernels_avx2.cpp and SSE2/NEON code in kernels_portable.cpp.
//
// Included inside namespace fastrnn::<isa> by kernels_impl.h; needs <cstring> and <cstdint>.

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

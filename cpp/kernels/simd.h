// The vector type of the instruction set this translation unit is compiled for, and the
// operations the kernels need that every instruction set writes the same way. GCC/Clang vector
// extensions: the same source becomes AVX-512, AVX2+FMA or SSE2/NEON code.
//
// Included by the instruction set's own header (isa_<name>.h), inside namespace
// fastrnn::<isa>, once it has set kVectorBytes; that header then adds the operations it does
// its own way (load_partial, store_partial, sum_each). Needs <cstring>, <cstdint>, <utility>.

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

// What each instruction set's header (isa_<name>.h) defines its own way, using the generic_
// forms below or not:
// the first `count` lanes (1 <= count <= lanes) of source, zeros above, touching no memory past
// the last lane asked for;
template <class T> Vec<T> load_partial(const T* source, Index count);
// the first `count` lanes of v stored (1 <= count <= lanes), nothing past them touched;
template <class T> void store_partial(T* destination, Vec<T> v, Index count);
// the horizontal sum of each of `lanes` vectors v[0..lanes), as one vector: result[j] = the sum
// of v[j]'s lanes.
template <class T> Vec<T> sum_each(const Vec<T>* v);

// A row's vector at column j: whole, or its first `count` lanes at the row's end.
template <class T> inline Vec<T> load_lanes(const T* source, Index count) {
    return count == Simd<T>::lanes ? load(source) : load_partial(source, count);
}

// Portable forms of the operations above.

template <class T> inline Vec<T> generic_load_partial(const T* source, Index count) {
    T lanes[Simd<T>::lanes] = {};
    for (Index i = 0; i < count; ++i) lanes[i] = source[i];
    return load(lanes);
}

// As fixed-size moves of halving sizes.
template <class T> inline void generic_store_partial(T* destination, Vec<T> v, Index count) {
    if (count == Simd<T>::lanes) return store(destination, v);
    alignas(64) T values[Simd<T>::lanes];
    store(values, v);
    Index i = 0;
    for (Index size = Simd<T>::lanes / 2; size >= 1; size /= 2) {
        if (count & size) {
            std::memcpy(destination + i, values + i, size * sizeof(T));
            i += size;
        }
    }
}

// One level of sum_each's tree and of transpose_lanes: lane i of `low` is a[i] where bit Half of
// i is clear, b[i - Half] where it is set; lane i of `high` is a[i + Half] where clear, b[i] where set.
template <class T> struct LanePair {
    Vec<T> low, high;
};
template <class T, int Half, std::size_t... Lane>
inline LanePair<T> interleave_blocks(Vec<T> a, Vec<T> b, std::index_sequence<Lane...>) {
    constexpr int lanes = Simd<T>::lanes;
    return {__builtin_shufflevector(a, b, ((Lane & Half) ? lanes + Lane - Half : Lane)...),
            __builtin_shufflevector(a, b, ((Lane & Half) ? lanes + Lane : Lane + Half)...)};
}

template <class T, int Half> inline Vec<T> fold_halves(Vec<T> a, Vec<T> b) {
    const LanePair<T> pair = interleave_blocks<T, Half>(a, b, std::make_index_sequence<Simd<T>::lanes>{});
    return pair.low + pair.high;
}

template <class T, int Half> inline void fold_level(Vec<T>* v) {
    for (int k = 0; k < Half; ++k)
        v[k] = fold_halves<T, Half>(v[k], v[k + Half]);
    if constexpr (Half > 1) fold_level<T, Half / 2>(v);
}

// A tree of lanes - 1 folds, each level halving the vectors in play.
template <class T> inline Vec<T> generic_sum_each(const Vec<T>* v) {
    constexpr int lanes = Simd<T>::lanes;
    static_assert((lanes & (lanes - 1)) == 0, "sum_each folds halves: lanes must be a power of two");
    Vec<T> work[lanes];
    for (int j = 0; j < lanes; ++j) work[j] = v[j];
    fold_level<T, lanes / 2>(work);
    return work[0];
}

// v[i][j] becomes v[j][i] for the `lanes` vectors v[0..lanes): log2(lanes) levels of
// interleave_blocks, each on pairs of vectors Half apart.
template <class T, int Half = Simd<T>::lanes / 2> inline void transpose_lanes(Vec<T>* v) {
#pragma GCC unroll 16
    for (int i = 0; i < Simd<T>::lanes; ++i) {
        if (i & Half) continue;
        const LanePair<T> pair = interleave_blocks<T, Half>(v[i], v[i + Half], std::make_index_sequence<Simd<T>::lanes>{});
        v[i] = pair.low;
        v[i + Half] = pair.high;
    }
    if constexpr (Half > 1) transpose_lanes<T, Half / 2>(v);
}

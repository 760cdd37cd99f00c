// Operations on rows of row-major matrices, shared by the recurrent layers and Linear: adding
// rows, column sums, and the product x w^T + bias (the input projection, linear_forward).
//
// Included inside namespace fastrnn::<isa> after gemm.h and parallel.h.

// Products x w^T of at most this many rows (T*B of an input projection) run as dot products on
// w: reading w once per row costs less than packing it.
constexpr Index kDotRows = 16;

// target[r, j] += source[r, j] for r < rows, j < columns (row strides target_ld, source_ld; a
// source_ld of 0 adds one row to every row).
template <class T>
inline void add_rows(T* target, Index target_ld, const T* source, Index source_ld, Index rows, Index columns) {
    constexpr Index lanes = Simd<T>::lanes;
    for (Index r = 0; r < rows; ++r) {
        for (Index j = 0; j < columns; j += lanes) {
            const Index n = min_of(lanes, columns - j);
            T* out = target + r * target_ld + j;
            store_partial(out, load_lanes(out, n) + load_lanes(source + r * source_ld + j, n), n);
        }
    }
}

// y[m, n] (row stride ldy) = x[m, k] w[n, k]^T + bias (bias may be null; w has row stride ldw):
// the input projection and linear_forward. A few rows (generation) run as dot products on w as
// it is, in parts over the outputs; more run as a packed product, in parts over the rows.
template <class T> struct LinearRows {
    T* y;
    Index ldy;
    const T* x;
    const T* w;
    Index ldw;
    const T* bias;
    Index m, n, k;

    bool dot() const { return m <= kDotRows; }
    Parts parts(int threads) const {
        return dot() ? Parts(n, Simd<T>::lanes, max_parts(threads, kPartsPerThread))
                     : Parts(m, kTileRows, max_parts(threads, kProductPartsPerThread));
    }
    // Part `range` of parts(): outputs with dot(), else rows.
    void run(Range range, T* scratch) const {
        if (dot()) {
            const Index count = range.end - range.begin;
            dot_rows(y + range.begin, ldy, x, k, m, w + range.begin * ldw, ldw, count, k);
            if (bias) add_rows(y + range.begin, ldy, bias + range.begin, 0, m, count);
            return;
        }
        gemm_rows(ProductOutput<T>{y, ldy, false, bias}, MatrixView<T>{x, k, 1}, MatrixView<T>{w, 1, ldw}, range.begin,
                  range.end, n, k, scratch);
    }
};

// sums[j] (+)= sum over rows [0, row_count) of rows[row * ld + j], for j in [begin, end): added
// row by row into sums[j] (accumulate) or into zero.
template <class T>
inline void add_column_sums(T* sums, const T* rows, Index ld, Index row_count, Index begin, Index end,
                            bool accumulate) {
    constexpr Index lanes = Simd<T>::lanes;
    for (Index j = begin; j < end; j += lanes) {
        const Index n = min_of(lanes, end - j);
        Vec<T> total = accumulate ? load_lanes(sums + j, n) : Vec<T>{};
        for (Index row = 0; row < row_count; ++row) total += load_lanes(rows + row * ld + j, n);
        store_partial(sums + j, total, n);
    }
}

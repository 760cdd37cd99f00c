// Packed matrix product for the recurrent kernels: C (+)= A * B with B packed into panels of
// panel_width<T>() columns, a register-blocked micro-kernel of kTileRows x panel_width<T>(), and
// cache blocking (depth_block<T>() for L1, row_block<T>() for L2).
//
// Packed B layout: panel p holds columns [p*width, (p+1)*width) (width = panel_width<T>()) as
// `depth` rows of width contiguous values; panels follow each other; lanes past the last column
// are zero. Weights are packed once per forward/backward call, never per time step. Products
// with only a row tile or two read whole panels of a row-major B in place instead.
//
// The tile's rows (kTileRows) and the L2 budget of a block of A (kRowBlockBytes) are the
// instruction set's (isa_<name>.h).
//
// Included inside namespace fastrnn::<isa> after the instruction set's header.

template <class T> constexpr int panel_width() { return 2 * Simd<T>::lanes; }
template <class T> constexpr Index depth_block() { return 256; }
// Rows of A kept in L2 while every panel of B passes through L1.
template <class T> constexpr Index row_block() {
    return (kRowBlockBytes / (depth_block<T>() * Index(sizeof(T)))) / kTileRows * kTileRows;
}

template <class T> inline Index panel_count(Index columns) {
    return (columns + panel_width<T>() - 1) / panel_width<T>();
}

// A strided read-only matrix: element (i, j) at data[i * row_stride + j * col_stride].
template <class T> struct MatrixView {
    const T* data;
    Index row_stride;
    Index col_stride;
    const T& operator()(Index i, Index j) const { return data[i * row_stride + j * col_stride]; }
};

// Rows of a [T*B, ...] sequence matrix that belong to padded time steps (t >= lengths[b]); they
// are read as zeros so whatever the caller left there (even NaN) cannot reach a gradient.
struct PaddedRows {
    const std::int64_t* lengths = nullptr;   // [B] or null: no padding
    Index batch = 1;
    bool padded(Index row) const { return lengths && row / batch >= lengths[row % batch]; }
};

// Packs source [depth, columns] into consecutive panels of `depth` rows starting at packed;
// lanes past the last column are zero. Source rows depth_begin + k that `padding` marks are
// packed as zeros. The source's rows are contiguous (col_stride 1: x, the states, dgates) or its
// columns are (row_stride 1: W_ih^T, W_hh^T as the layers hold them, transposed block by block in
// registers). Every panel row is written whole with vector moves (a row-wise zero fill of the
// lanes past the last column would become a string store per row, slow to start).
template <class T>
void pack_b(T* packed, MatrixView<T> source, Index depth, Index columns, PaddedRows padding = {},
            Index depth_begin = 0) {
    constexpr int lanes = Simd<T>::lanes, width = panel_width<T>();
    for (Index first = 0; first < columns; first += width) {
        const Index count = min_of<Index>(width, columns - first);
        T* panel = packed + first * depth;
        if (source.col_stride == 1) {
            const Index low = min_of<Index>(lanes, count), high = count - low;
            for (Index k = 0; k < depth; ++k) {
                T* out = panel + k * width;
                const T* in = &source(k, first);
                const bool padded = padding.padded(depth_begin + k);
                store(out, padded ? Vec<T>{} : load_lanes(in, low));
                store(out + lanes, padded || high == 0 ? Vec<T>{} : load_lanes(in + lanes, high));
            }
            continue;
        }
        const T* column = source.data + first * source.col_stride;   // row_stride is 1
        for (Index k = 0; k < depth; k += lanes) {
            const Index rows = min_of<Index>(lanes, depth - k);
            for (int half = 0; half < width; half += lanes) {
                Vec<T> block[lanes];   // in registers: every loop over it is unrolled
#pragma GCC unroll 16
                for (int c = 0; c < lanes; ++c)
                    block[c] = half + c < count ? load_lanes(column + (half + c) * source.col_stride + k, rows) : Vec<T>{};
                transpose_lanes<T>(block);
                for (Index r = 0; r < rows; ++r)
                    store(panel + (k + r) * width + half, padding.padded(depth_begin + k + r) ? Vec<T>{} : block[r]);
            }
        }
    }
}

// One panel of B as the micro-kernel reads it: row k of the panel's width columns at
// data + k * stride (stride = the width when packed, B's row stride when read in place).
template <class T> struct Panel {
    const T* data;
    Index stride;
    Panel rows_from(Index k) const { return {data + k * stride, stride}; }
};
template <class T> inline Panel<T> packed_panel(const T* data) { return {data, panel_width<T>()}; }

// How the micro-kernel reads A(i, k): ALayout::column at a[i + k * stride] (packed micro-panels,
// or a transposed matrix such as dgates^T), ALayout::row at a[i * stride + k] (a row-major matrix).
enum class ALayout { column, row };

// Where a product writes C and how its sums start: rows of c with stride ldc, C += A*B with
// accumulate, else C = bias + A*B (bias: a row vector added to every row, or null for zero).
// For a micro-kernel, c's rows are whole panel widths.
template <class T> struct ProductOutput {
    T* c;
    Index ldc;
    bool accumulate;
    const T* bias;
};

// c[Rows, Vectors * lanes] = start + A[Rows, depth] * panel[depth, Vectors * lanes]: the whole
// panel width (Vectors = 2), or its first vector (Vectors = 1) for a last panel that narrow.
template <class T, int Rows, ALayout Layout, int Vectors>
__attribute__((always_inline)) inline void micro_kernel(Index depth, const T* a, Index a_stride, Panel<T> panel,
                                                        const ProductOutput<T>& target) {
    constexpr int lanes = Simd<T>::lanes;
    // The loops below unroll 8 rows (and 2 vectors, 8 partial sums): more would leave a loop
    // rolled and its accumulators in memory (12-row tiles ran 1.3-1.6x slower so).
    static_assert(Rows <= 8 && Vectors <= 2, "the micro-kernel's loops unroll at most 8 rows and 2 vectors");
    // Locals, so the stores below cannot make the compiler reload the target.
    T* const c = target.c;
    const Index ldc = target.ldc;
    const T* const start = target.accumulate ? c : target.bias;
    const Index start_stride = target.accumulate ? ldc : 0;
    // Fewer than six accumulators cannot hide the FMA latency: the depth is then split into
    // interleaved partial sums, added in a fixed order at the end.
    constexpr int tile_vectors = Rows * Vectors;
    constexpr int split = tile_vectors >= 6 ? 1 : (8 + tile_vectors - 1) / tile_vectors;
    Vec<T> acc[split][Rows][Vectors];
    // Every loop over rows, vectors and partial sums unrolled: the accumulators then live in
    // registers (a loop would let the compiler zero them with a memset on the stack and reload them).
#pragma GCC unroll 8
    for (int s = 0; s < split; ++s) {
#pragma GCC unroll 8
        for (int i = 0; i < Rows; ++i) {
#pragma GCC unroll 2
            for (int v = 0; v < Vectors; ++v)
                acc[s][i][v] = s == 0 && start ? load(start + i * start_stride + v * lanes) : Vec<T>{};
        }
    }
    auto update = [&](Index k, Vec<T> (*sums)[Vectors]) __attribute__((always_inline)) {
        Vec<T> b[Vectors];
#pragma GCC unroll 2
        for (int v = 0; v < Vectors; ++v) b[v] = load(panel.data + k * panel.stride + v * lanes);
#pragma GCC unroll 8
        for (int i = 0; i < Rows; ++i) {
            const T value = Layout == ALayout::column ? a[k * a_stride + i] : a[i * a_stride + k];
            const Vec<T> a_ik = broadcast(value);
#pragma GCC unroll 2
            for (int v = 0; v < Vectors; ++v) sums[i][v] += a_ik * b[v];
        }
    };
    Index k = 0;
    for (; k + split <= depth; k += split) {
#pragma GCC unroll 8
        for (int s = 0; s < split; ++s) update(k + s, acc[s]);
    }
    for (; k < depth; ++k) update(k, acc[0]);
#pragma GCC unroll 8
    for (int i = 0; i < Rows; ++i) {
#pragma GCC unroll 2
        for (int v = 0; v < Vectors; ++v) {
#pragma GCC unroll 8
            for (int s = 1; s < split; ++s) acc[0][i][v] += acc[s][i][v];
            store(c + i * ldc + v * lanes, acc[0][i][v]);
        }
    }
}

// micro_kernel for a run-time row count 1..kTileRows.
template <class T, ALayout Layout, int Vectors = 2, int Rows = kTileRows>
inline void micro_tile(Index rows, Index depth, const T* a, Index a_stride, Panel<T> panel,
                       const ProductOutput<T>& target) {
    static_assert(Rows >= 1, "a tile has at least one row");
    if constexpr (Rows > 1) {
        if (rows < Rows) return micro_tile<T, Layout, Vectors, Rows - 1>(rows, depth, a, a_stride, panel, target);
    }
    micro_kernel<T, Rows, Layout, Vectors>(depth, a, a_stride, panel, target);
}

// A scratch tile that starts from zero.
template <class T> inline ProductOutput<T> fresh_tile(T* tile) { return {tile, panel_width<T>(), false, nullptr}; }

// The tile for the first `rows` rows of a strided A, in whichever layout it has.
template <class T, int Vectors>
inline void micro_tile_view(Index rows, Index depth, MatrixView<T> a, Panel<T> panel, const ProductOutput<T>& target) {
    if (a.col_stride == 1) {
        micro_tile<T, ALayout::row, Vectors>(rows, depth, a.data, a.row_stride, panel, target);
    } else {
        micro_tile<T, ALayout::column, Vectors>(rows, depth, a.data, a.col_stride, panel, target);
    }
}

// Packs rows [row_begin, row_begin + rows) and depth [depth_begin, depth_begin + depth) of A
// into micro-panels of kTileRows rows: element (i, k) of micro-panel q at
// packed[q * depth * kTileRows + k * kTileRows + i].
template <class T>
void pack_a(T* packed, MatrixView<T> a, Index row_begin, Index rows, Index depth_begin, Index depth) {
    for (Index q = 0; q * kTileRows < rows; ++q) {
        const Index panel_rows = min_of<Index>(kTileRows, rows - q * kTileRows);
        T* out = packed + q * depth * kTileRows;
        const Index first_row = row_begin + q * kTileRows;
        for (Index k = 0; k < depth; ++k)
            for (Index i = 0; i < panel_rows; ++i)
                out[k * kTileRows + i] = a(first_row + i, depth_begin + k);
    }
}

// c[0, columns) = bias + tile_row, or c += tile_row with accumulate (tile rows are full width).
template <class T>
inline void write_tile_row(T* c, const T* tile_row, Index columns, bool accumulate, const T* bias) {
    constexpr int lanes = Simd<T>::lanes;
    for (Index j = 0; j < columns; j += lanes) {
        const Index n = min_of<Index>(lanes, columns - j);
        Vec<T> v = load(tile_row + j);
        if (accumulate) {
            v += load_lanes(c + j, n);
        } else if (bias) {
            v += load_lanes(bias + j, n);
        }
        store_partial(c + j, v, n);
    }
}

// Scratch one thread needs for gemm_rows with at most `columns` columns.
template <class T> inline Index gemm_scratch_size(Index columns) {
    return row_block<T>() * depth_block<T>() +
           panel_count<T>(columns) * panel_width<T>() * depth_block<T>();
}

// Packing A into micro-panels pays when the panels of B reuse it and the block would not stay
// in L1 between panels; otherwise the micro-kernel reads A in place.
constexpr Index kPanelsWorthPackingA = 3;
constexpr Index kL1BytesForA = 16 * 1024;

// With a row tile or two, packing B costs more than the contiguous reads it buys: whole panels
// of a row-major B are then read in place, and only the last, narrower one is packed.
constexpr Index kRowsReadingBInPlace = 2 * kTileRows;

// Rows [row_begin, row_end) of C = A[M, depth] * B[depth, columns]. B is packed block by
// block into the caller's private scratch, so threads that split the rows of C share nothing
// and need no barrier. Every C element is summed in the same order whatever the row range and
// whether B is packed: any split over threads gives identical bits.
template <class T>
void gemm_rows(const ProductOutput<T>& out, MatrixView<T> a, MatrixView<T> b, Index row_begin,
               Index row_end, Index columns, Index depth, T* scratch, PaddedRows b_padding = {}) {
    constexpr int width = panel_width<T>();
    if (row_begin >= row_end) return;
    const Index panels = panel_count<T>(columns);
    const bool b_in_place = b.col_stride == 1 && !b_padding.lengths && row_end - row_begin <= kRowsReadingBInPlace;
    const Index panels_in_place = b_in_place ? columns / width : 0;
    T* a_pack = scratch;
    T* b_pack = scratch + row_block<T>() * depth_block<T>();
    alignas(64) T tile[kTileRows * width];
    for (Index depth_begin = 0; depth_begin < depth; depth_begin += depth_block<T>()) {
        const Index block_depth = min_of(depth_block<T>(), depth - depth_begin);
        const bool first_block = depth_begin == 0;
        const Index packed_begin = panels_in_place * width;
        const MatrixView<T> b_block{b.data + depth_begin * b.row_stride + packed_begin * b.col_stride, b.row_stride,
                                    b.col_stride};
        pack_b(b_pack, b_block, block_depth, columns - packed_begin, b_padding, depth_begin);
        for (Index block_row = row_begin; block_row < row_end; block_row += row_block<T>()) {
            const Index block_rows = min_of(row_block<T>(), row_end - block_row);
            const bool pack_a_block = panels >= kPanelsWorthPackingA &&
                                      block_rows * block_depth * Index(sizeof(T)) > kL1BytesForA;
            if (pack_a_block) pack_a(a_pack, a, block_row, block_rows, depth_begin, block_depth);
            for (Index p = 0; p < panels; ++p) {
                const Panel<T> panel = p < panels_in_place
                                           ? Panel<T>{b.data + depth_begin * b.row_stride + p * width, b.row_stride}
                                           : packed_panel(b_pack + (p - panels_in_place) * block_depth * width);
                const Index first_column = p * width;
                const Index tile_columns = min_of<Index>(width, columns - first_column);
                const T* bias = out.bias ? out.bias + first_column : nullptr;
                for (Index i = 0; i < block_rows; i += kTileRows) {
                    const Index tile_rows = min_of<Index>(kTileRows, block_rows - i);
                    // Whole panels accumulate straight into C; the last, narrower one goes
                    // through a scratch tile.
                    const bool whole = tile_columns == width;
                    const bool accumulate = !first_block || out.accumulate;
                    const ProductOutput<T> target =
                        whole ? ProductOutput<T>{out.c + (block_row + i) * out.ldc + first_column, out.ldc, accumulate,
                                              accumulate ? nullptr : bias}
                              : fresh_tile(tile);
                    // Micro-panels of packed A are column-major with column stride kTileRows.
                    const MatrixView<T> a_tile = pack_a_block ? MatrixView<T>{a_pack + i * block_depth, 1, kTileRows}
                                                              : MatrixView<T>{&a(block_row + i, depth_begin),
                                                                              a.row_stride, a.col_stride};
                    if (tile_columns <= Simd<T>::lanes) {
                        micro_tile_view<T, 1>(tile_rows, block_depth, a_tile, panel, target);
                    } else {
                        micro_tile_view<T, 2>(tile_rows, block_depth, a_tile, panel, target);
                    }
                    if (whole) continue;
                    for (Index r = 0; r < tile_rows; ++r)
                        write_tile_row(out.c + (block_row + i + r) * out.ldc + first_column, tile + r * width,
                                       tile_columns, accumulate, bias);
                }
            }
        }
    }
}

// Products for a handful of rows, where packing would cost more than it saves (a generation
// step): out[i, n] = sum_k a[i, k] * w[n, k] for rows i < rows, straight from the row-major
// weights w, `lanes` weight rows at a time, each group of weight rows read from memory once
// for all rows of a. out has row stride ldo.
template <class T>
void dot_rows(T* out, Index ldo, const T* a, Index lda, Index rows, const T* w, Index ldw, Index count, Index depth) {
    constexpr int lanes = Simd<T>::lanes;
    const Index tail = depth % lanes, body = depth - tail;
    for (Index n = 0; n < count; n += lanes) {
        const Index group = min_of<Index>(lanes, count - n);
        const T* weights[lanes];
        for (int j = 0; j < lanes; ++j) weights[j] = w + (n + min_of<Index>(j, group - 1)) * ldw;  // past the end: repeat the last row
        for (Index i = 0; i < rows; ++i) {
            const T* x = a + i * lda;
            Vec<T> sums[lanes] = {};
            for (Index k = 0; k < body; k += lanes) {
                const Vec<T> xv = load(x + k);
                for (int j = 0; j < lanes; ++j) sums[j] += xv * load(weights[j] + k);
            }
            if (tail) {
                const Vec<T> xv = load_partial(x + body, tail);
                for (int j = 0; j < lanes; ++j) sums[j] += xv * load_partial(weights[j] + body, tail);
            }
            store_partial(out + i * ldo + n, sum_each<T>(sums), group);
        }
    }
}

// out[j] (+)= sum_k a[k] * w[k, j] for j < Vectors * lanes (the last vector: its first `tail`
// lanes), with w read in place: each row's run of columns at once, sums in registers.
template <class T, int Vectors>
__attribute__((always_inline)) inline void gemv_chunk(T* out, const T* a, const T* w, Index ldw, Index tail,
                                                      Index depth, bool accumulate) {
    constexpr Index lanes = Simd<T>::lanes;
    Vec<T> sums[Vectors];
#pragma GCC unroll 8
    for (int v = 0; v < Vectors; ++v)
        sums[v] = accumulate ? load_lanes(out + v * lanes, v == Vectors - 1 ? tail : lanes) : Vec<T>{};
    for (Index k = 0; k < depth; ++k) {
        const Vec<T> a_k = broadcast(a[k]);
        const T* row = w + k * ldw;
#pragma GCC unroll 8
        for (int v = 0; v < Vectors - 1; ++v) sums[v] += a_k * load(row + v * lanes);
        sums[Vectors - 1] += a_k * load_lanes(row + (Vectors - 1) * lanes, tail);
    }
#pragma GCC unroll 8
    for (int v = 0; v < Vectors; ++v) store_partial(out + v * lanes, sums[v], v == Vectors - 1 ? tail : lanes);
}

// out[j] (+)= sum_k a[k] * w[k, j] for j < count: one row of a product whose other side is a
// row-major w (row stride ldw), read in place. Unlike the panels of a packed product, each w row
// is read as one run of up to kGemvVectors vectors, so a row stride that is not a multiple of the
// cache line costs no extra lines. Every out[j] is summed over k in order, whatever the chunks.
constexpr int kGemvVectors = 8;

template <class T>
void gemv_row(T* out, const T* a, const T* w, Index ldw, Index count, Index depth, bool accumulate) {
    constexpr Index lanes = Simd<T>::lanes, chunk = kGemvVectors * lanes;
    for (Index j = 0; j < count; j += chunk) {
        const Index columns = min_of(chunk, count - j), vectors = (columns + lanes - 1) / lanes;
        const Index tail = columns - (vectors - 1) * lanes;
        T* o = out + j;
        const T* wj = w + j;
        switch (vectors) {
            case 1: gemv_chunk<T, 1>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 2: gemv_chunk<T, 2>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 3: gemv_chunk<T, 3>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 4: gemv_chunk<T, 4>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 5: gemv_chunk<T, 5>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 6: gemv_chunk<T, 6>(o, a, wj, ldw, tail, depth, accumulate); break;
            case 7: gemv_chunk<T, 7>(o, a, wj, ldw, tail, depth, accumulate); break;
            default: gemv_chunk<T, 8>(o, a, wj, ldw, tail, depth, accumulate); break;
        }
    }
}

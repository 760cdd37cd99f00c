// What a cell kind provides to the sequence driver (sequence.h), and what its steps see. The
// driver runs the time loop, the products and the weight gradients of any cell; each cell's
// header in this directory holds everything specific to it, as static members of one struct:
//
//   gate_count                 G, gate blocks of H rows in W_ih, W_hh and the biases, PyTorch's order
//   forward_step(f, phase)     the elementwise forward step on one tile (ForwardTile)
//   backward_step(b, phase)    its backward (BackwardTile)
// and, where the defaults of CellDefaults (pre-activations W_ih x + b_ih + W_hh h_{t-1} + b_hh,
// one product per step, state h alone) do not fit:
//   state_parts                1 (h), or 2 (h, then the cell state c)
//   kept_values                [B, H] buffers kept per step besides gates and states: 0 or 1,
//   kept_name                    named as the reference names it (see StoredPart in kernels.h)
//   phases                     time-loop phases per step: 2 when a product needs the step's own results
//   forward_product(phase)     the gate blocks of W_hh forward phase `phase` multiplies, and by what
//   backward_segments(...)     the depth segments of backward phase `phase`'s product with W_hh
//   separate_bias_blocks       trailing gate blocks whose b_hh the step adds itself
//   own_hh_blocks              trailing gate blocks of dW_hh that are not dgates^T h_{t-1},
//   own_hh_operands(...)         and the operands of their product
//   hh_bias_gradient(...)      columns of db_hh
// A new cell kind is a header here plus its registration (registry.h says where).
//
// A cell's step works on one tile of rows x hidden units of one direction at one time step, with
// every pointer already offset to the tile's first row and unit. Cells read and write whole
// vectors; load_lanes/store_partial cover the last, narrower vector of a row.
//
// Included inside namespace fastrnn::<isa> after gemm.h, parallel.h and rows.h.

template <class T> struct ForwardTile {
    Index rows, units, hidden;      // hidden: distance between gate blocks of a `gates` row
    const T* recurrent;             // [G][kTileRows][panel width]: the phase's products (W_hh h_prev
    Index gate_stride;              //   for phase 0), gate g at g*gate_stride
    T* gates;                       // [rows, gates_ld]: in: input projection + biases (gate g at
    Index gates_ld;                 //   column g*hidden); out when store_gates: activations
    bool store_gates;
    const T* h_prev;                // [rows, state_ld]
    T* h_next;                      // [rows, state_ld]
    Index state_ld;
    const T* c_prev;                // two state parts: the cell state, [rows, state_ld]
    T* c_next;                      // two state parts: [rows, state_ld]
    T* kept;                        // kept_values: the step's kept values, [rows, state_ld]
    const T* separate_bias;         // separate_bias_blocks: their b_hh for these units (block b at b*hidden)
    T* y;                           // [rows, y_ld]: the layer output for this direction
    Index y_ld;
    const std::int64_t* lengths;    // [rows] or null: row r is past its end when t >= lengths[r]
    Index t;

    bool active(Index r) const { return !lengths || t < lengths[r]; }
};

template <class T> struct BackwardTile {
    Index rows, units, hidden;
    const T* product;               // [rows, product_ld], whole vectors: phase 0: dL/dh_t from later
    Index product_ld;               //   steps (not dy); later phases: their own product
    const T* dy;                    // [rows, dy_ld]
    Index dy_ld;
    T* gates;                       // [rows, gates_ld]: in: activations; out: dL/d(pre-activations)
    Index gates_ld;
    const T* h_prev;                // [rows, state_ld]
    Index state_ld;
    const T* c_prev;                // two state parts
    const T* c_next;                // two state parts
    T* dc;                          // two state parts: in dL/dc_t, out dL/dc_{t-1}; [rows, state_ld]
    T* dh_partial;                  // out: the part of dL/dh_{t-1} not coming through W_hh
    T* kept;                        // kept_values: in as forward left them; the cell may leave
                                    //   gradients there for its weight gradients
    const std::int64_t* lengths;
    Index t;

    bool active(Index r) const { return !lengths || t < lengths[r]; }
};

// Carries a padded step (t >= length): the state passes through and the output is zero.
template <class T>
inline void forward_padded_row(const ForwardTile<T>& f, Index r) {
    std::memcpy(f.h_next + r * f.state_ld, f.h_prev + r * f.state_ld, f.units * sizeof(T));
    if (f.c_next)
        std::memcpy(f.c_next + r * f.state_ld, f.c_prev + r * f.state_ld, f.units * sizeof(T));
    std::memset(f.y + r * f.y_ld, 0, f.units * sizeof(T));
}

// The gradient of a padded step passes straight through; its gate gradients are zero.
template <class T>
inline void backward_padded_row(const BackwardTile<T>& b, Index r, Index gates) {
    std::memcpy(b.dh_partial + r * b.state_ld, b.product + r * b.product_ld, b.units * sizeof(T));
    for (Index g = 0; g < gates; ++g)
        std::memset(b.gates + r * b.gates_ld + g * b.hidden, 0, b.units * sizeof(T));
}

// Calls chunk(r, j, n) for each vector of each row of a tile (n lanes from unit j; n < lanes
// only at the row's end), and padded(r) instead for rows past their sequence's end.
template <class T, class Tile, class Padded, class Chunk>
inline void for_each_vector(const Tile& tile, Padded&& padded, Chunk&& chunk) {
    constexpr Index lanes = Simd<T>::lanes;
    for (Index r = 0; r < tile.rows; ++r) {
        if (!tile.active(r)) {
            padded(r);
            continue;
        }
        for (Index j = 0; j < tile.units; j += lanes) chunk(r, j, min_of(lanes, tile.units - j));
    }
}

// The recurrent product of one forward phase: gate blocks [first_gate, end_gate) of W_hh times
// h_{t-1}, or (of_kept) times the kept values an earlier phase of the same step wrote.
struct ForwardProduct {
    Index first_gate, end_gate;
    bool of_kept;
};

// One depth segment of a product: rows of a (row stride lda) times panel rows [panel_offset,
// panel_offset + depth) of W_hh (panel rows = W_hh rows, i.e. gate rows).
template <class T> struct Segment {
    const T* a;
    Index lda, depth, panel_offset;
};

// The operands of a weight-gradient product dW[rows, H] (+)= a b, summed over all T*B rows of a
// sequence: a views gradients as [rows, T*B] (a transposed [T*B, rows]), b is [T*B, H].
// Cell::own_hh_operands(dgates, gates_ld, h_prev, kept, hidden) gives them for its own rows of
// dW_hh from a direction's whole buffers: dgates [T*B, gates_ld] (its first gate block at
// column 0), the states feeding the T steps h_prev [T*B, H], the kept values [T*B, H].
template <class T> struct ProductOperands {
    MatrixView<T> a, b;
};

// The defaults, for a cell whose pre-activations are W_ih x + b_ih + W_hh h_{t-1} + b_hh with
// one product per step; a cell derives from CellDefaults<itself> and redefines what differs.
template <class Cell> struct CellDefaults {
    static constexpr int state_parts = 1;
    static constexpr int kept_values = 0;
    static constexpr const char* kept_name = nullptr;
    static constexpr int phases = 1;
    static constexpr int separate_bias_blocks = 0;
    static constexpr int own_hh_blocks = 0;

    static constexpr ForwardProduct forward_product(int) { return {0, Cell::gate_count, false}; }

    // The depth segments of backward phase `phase`'s product, written to `segments`; returns
    // their count (at most 2). Phase 0's product is dL/dh_{t-1} = dgates W_hh from the gate
    // gradients of the later step (the one before in the backward loop); a later phase's uses
    // the gradients the phase before left at this step. dgates and kept point to that step's
    // rows (row strides gates_ld and hidden).
    template <class T>
    static int backward_segments(int, const T* dgates, Index gates_ld, const T*, Index hidden, Segment<T>* segments) {
        segments[0] = {dgates, gates_ld, Cell::gate_count * hidden, 0};
        return 1;
    }

    // db_hh columns `columns`, summed (onto db_hh with accumulate) over `rows` rows of the gate
    // gradients dgates (row stride gates_ld) or of the kept values (row stride hidden).
    template <class T>
    static void hh_bias_gradient(T* db_hh, const T* dgates, Index gates_ld, const T*, Index, Index rows, Range columns,
                                 bool accumulate) {
        add_column_sums(db_hh, dgates, gates_ld, rows, columns.begin, columns.end, accumulate);
    }
};

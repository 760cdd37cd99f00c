// What a cell's elementwise step sees: one tile of rows x hidden units of one direction at one
// time step, with every pointer already offset to the tile's first row and unit. Cells read and
// write whole vectors; load_lanes/store_partial cover the last, narrower vector of a row.
//
// Included inside namespace fastrnn::<isa> after gemm.h.

template <class T> struct ForwardTile {
    Index rows, units, hidden;      // hidden: distance between gate blocks of a `gates` row
    const T* recurrent;             // [G][kTileRows][panel width]: W_hh h_prev, gate g at g*gate_stride
    Index gate_stride;
    T* gates;                       // [rows, gates_ld]: in: input projection + biases (gate g at
    Index gates_ld;                 //   column g*hidden); out when store_gates: activations
    bool store_gates;
    const T* h_prev;                // [rows, state_ld]
    T* h_next;                      // [rows, state_ld]
    Index state_ld;
    const T* c_prev;                // lstm: [rows, state_ld]
    T* c_next;                      // lstm: [rows, state_ld]
    T* extra;                       // gru: [rows, state_ld], W_hn h + b_hn or r*h_prev
    const T* bias_hn;               // gru with linear_before_reset: b_hn for these units
    T* y;                           // [rows, y_ld]: the layer output for this direction
    Index y_ld;
    const std::int64_t* lengths;    // [rows] or null: row r is past its end when t >= lengths[r]
    Index t;

    bool active(Index r) const { return !lengths || t < lengths[r]; }
};

template <class T> struct BackwardTile {
    Index rows, units, hidden;
    const T* product;               // [rows, product_ld], whole vectors: dL/dh_t from later steps
    Index product_ld;               //   (not dy); in the GRU's reset phase dL/d(r*h_{t-1}) instead
    const T* dy;                    // [rows, dy_ld]
    Index dy_ld;
    T* gates;                       // [rows, gates_ld]: in: activations; out: dL/d(pre-activations)
    Index gates_ld;
    const T* h_prev;                // [rows, state_ld]
    const T* h_next;                // [rows, state_ld] (rnn: h_t)
    Index state_ld;
    const T* c_prev;                // lstm
    const T* c_next;                // lstm
    T* dc;                          // lstm: in dL/dc_t, out dL/dc_{t-1}; [rows, state_ld]
    T* dh_partial;                  // out: the part of dL/dh_{t-1} not coming through W_hh
    T* extra;                       // gru: in hn (or r*h); out dn*r for linear_before_reset
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

// Vanilla RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.
// Forward and backward elementwise steps on one tile; the driver supplies the products.
//
// Included inside namespace fastrnn::<isa> after tile.h.

template <bool Relu> struct RnnCell {
    static constexpr int gate_count = 1;
    static constexpr bool single_phase = true;
    template <class T> static void forward_step(const ForwardTile<T>& f, bool) { forward_tile(f); }
    template <class T> static void backward_step(const BackwardTile<T>& b, bool) { backward_tile(b); }

    template <class T> static Vec<T> activate(Vec<T> pre) {
        return Relu ? vector_relu<T>(pre) : vector_tanh<T>(pre);
    }

    // act'(pre) from the activation's output h.
    template <class T> static Vec<T> derivative(Vec<T> h) {
        if (Relu) return h > T(0) ? broadcast<T>(1) : Vec<T>{};
        return T(1) - h * h;
    }

    template <class T> static void forward_tile(const ForwardTile<T>& f) {
        constexpr int lanes = Simd<T>::lanes;
        for (Index r = 0; r < f.rows; ++r) {
            if (!f.active(r)) {
                forward_padded_row(f, r);
                continue;
            }
            T* gates = f.gates + r * f.gates_ld;
            const T* recurrent = f.recurrent + r * panel_width<T>();
            for (Index j = 0; j < f.units; j += lanes) {
                const Index n = min_of<Index>(lanes, f.units - j);
                const Vec<T> h = activate<T>(load_lanes(gates + j, n) + load(recurrent + j));
                store_partial(f.h_next + r * f.state_ld + j, h, n);
                store_partial(f.y + r * f.y_ld + j, h, n);
                if (f.store_gates) store_partial(gates + j, h, n);
            }
        }
    }

    template <class T> static void backward_tile(const BackwardTile<T>& b) {
        constexpr int lanes = Simd<T>::lanes;
        for (Index r = 0; r < b.rows; ++r) {
            if (!b.active(r)) {
                backward_padded_row(b, r, gate_count);
                continue;
            }
            T* gates = b.gates + r * b.gates_ld;
            for (Index j = 0; j < b.units; j += lanes) {
                const Index n = min_of<Index>(lanes, b.units - j);
                const Vec<T> dh = load(b.product + r * panel_width<T>() + j) + load_lanes(b.dy + r * b.dy_ld + j, n);
                store_partial(gates + j, dh * derivative<T>(load_lanes(gates + j, n)), n);
                store_partial(b.dh_partial + r * b.state_ld + j, Vec<T>{}, n);
            }
        }
    }
};

// Vanilla RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu. Everything else is
// the defaults of cell.h.
//
// Included inside namespace fastrnn::<isa> after cell.h.

template <bool Relu> struct RnnCell : CellDefaults<RnnCell<Relu>> {
    static constexpr int gate_count = 1;

    template <class T> static Vec<T> activate(Vec<T> pre) {
        return Relu ? vector_relu<T>(pre) : vector_tanh<T>(pre);
    }

    // act'(pre) from the activation's output h.
    template <class T> static Vec<T> derivative(Vec<T> h) {
        if (Relu) return h > T(0) ? broadcast<T>(1) : Vec<T>{};
        return T(1) - h * h;
    }

    template <class T> static void forward_step(const ForwardTile<T>& f, int) {
        for_each_vector<T>(f, [&](Index r) { forward_padded_row(f, r); }, [&](Index r, Index j, Index n) {
            T* gates = f.gates + r * f.gates_ld + j;
            const Vec<T> h = activate<T>(load_lanes(gates, n) + load(f.recurrent + r * panel_width<T>() + j));
            store_partial(f.h_next + r * f.state_ld + j, h, n);
            store_partial(f.y + r * f.y_ld + j, h, n);
            if (f.store_gates) store_partial(gates, h, n);
        });
    }

    template <class T> static void backward_step(const BackwardTile<T>& b, int) {
        for_each_vector<T>(b, [&](Index r) { backward_padded_row(b, r, gate_count); }, [&](Index r, Index j, Index n) {
            T* gates = b.gates + r * b.gates_ld + j;
            const Vec<T> dh = load(b.product + r * b.product_ld + j) + load_lanes(b.dy + r * b.dy_ld + j, n);
            store_partial(gates, dh * derivative<T>(load_lanes(gates, n)), n);
            store_partial(b.dh_partial + r * b.state_ld + j, Vec<T>{}, n);
        });
    }
};

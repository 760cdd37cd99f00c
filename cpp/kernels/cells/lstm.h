// LSTM, PyTorch gate order i, f, g, o:
//   i = σ(.), f = σ(.), g = tanh(.), o = σ(.) of W_ih x + b_ih + W_hh h + b_hh
//   c' = f*c + i*g,  h' = o*tanh(c')
// Two state parts, h and c; otherwise the defaults of cell.h.
//
// Included inside namespace fastrnn::<isa> after cell.h.

struct LstmCell : CellDefaults<LstmCell> {
    static constexpr int gate_count = 4;
    static constexpr int state_parts = 2;

    template <class T> static void forward_step(const ForwardTile<T>& f, int) {
        const Index H = f.hidden;
        for_each_vector<T>(f, [&](Index r) { forward_padded_row(f, r); }, [&](Index r, Index j, Index n) {
            T* gates = f.gates + r * f.gates_ld + j;
            const T* recurrent = f.recurrent + r * panel_width<T>() + j;
            auto pre = [&](int gate) { return load_lanes(gates + gate * H, n) + load(recurrent + gate * f.gate_stride); };
            const Vec<T> i = vector_sigmoid<T>(pre(0));
            const Vec<T> fg = vector_sigmoid<T>(pre(1));
            const Vec<T> g = vector_tanh<T>(pre(2));
            const Vec<T> o = vector_sigmoid<T>(pre(3));
            const Index state = r * f.state_ld + j;
            const Vec<T> c = fg * load_lanes(f.c_prev + state, n) + i * g;
            const Vec<T> h = o * vector_tanh<T>(c);
            store_partial(f.c_next + state, c, n);
            store_partial(f.h_next + state, h, n);
            store_partial(f.y + r * f.y_ld + j, h, n);
            if (f.store_gates) {
                store_partial(gates, i, n);
                store_partial(gates + H, fg, n);
                store_partial(gates + 2 * H, g, n);
                store_partial(gates + 3 * H, o, n);
            }
        });
    }

    template <class T> static void backward_step(const BackwardTile<T>& b, int) {
        const Index H = b.hidden;
        // A padded row's dc passes through unchanged (dc is updated in place).
        for_each_vector<T>(b, [&](Index r) { backward_padded_row(b, r, gate_count); }, [&](Index r, Index j, Index n) {
            T* gates = b.gates + r * b.gates_ld + j;
            const Index state = r * b.state_ld + j;
            const Vec<T> i = load_lanes(gates, n);
            const Vec<T> fg = load_lanes(gates + H, n);
            const Vec<T> g = load_lanes(gates + 2 * H, n);
            const Vec<T> o = load_lanes(gates + 3 * H, n);
            const Vec<T> dh = load(b.product + r * b.product_ld + j) + load_lanes(b.dy + r * b.dy_ld + j, n);
            const Vec<T> tanh_c = vector_tanh<T>(load_lanes(b.c_next + state, n));
            // dL/dc_t collects the path through h_t = o*tanh(c_t) and the carry from t+1.
            const Vec<T> dc = load_lanes(b.dc + state, n) + dh * o * (T(1) - tanh_c * tanh_c);
            const Vec<T> one = broadcast<T>(1);
            store_partial(gates, dc * g * i * (one - i), n);
            store_partial(gates + H, dc * load_lanes(b.c_prev + state, n) * fg * (one - fg), n);
            store_partial(gates + 2 * H, dc * i * (one - g * g), n);
            store_partial(gates + 3 * H, dh * tanh_c * o * (one - o), n);
            store_partial(b.dc + state, dc * fg, n);
            store_partial(b.dh_partial + state, Vec<T>{}, n);
        });
    }
};

// LSTM, PyTorch gate order i, f, g, o:
//   i = σ(.), f = σ(.), g = tanh(.), o = σ(.) of W_ih x + b_ih + W_hh h + b_hh
//   c' = f*c + i*g,  h' = o*tanh(c')
// Forward and backward elementwise steps on one tile; the driver supplies the products.
//
// Included inside namespace fastrnn::<isa> after tile.h.

struct LstmCell {
    static constexpr int gate_count = 4;
    static constexpr bool single_phase = true;
    template <class T> static void forward_step(const ForwardTile<T>& f, bool) { forward_tile(f); }
    template <class T> static void backward_step(const BackwardTile<T>& b, bool) { backward_tile(b); }

    template <class T> static void forward_tile(const ForwardTile<T>& f) {
        constexpr int lanes = Simd<T>::lanes;
        const Index H = f.hidden;
        for (Index r = 0; r < f.rows; ++r) {
            if (!f.active(r)) {
                forward_padded_row(f, r);
                continue;
            }
            T* gates = f.gates + r * f.gates_ld;
            const T* recurrent = f.recurrent + r * panel_width<T>();
            const T* c_prev = f.c_prev + r * f.state_ld;
            T* c_next = f.c_next + r * f.state_ld;
            T* h_next = f.h_next + r * f.state_ld;
            T* y = f.y + r * f.y_ld;
            for (Index j = 0; j < f.units; j += lanes) {
                const Index n = min_of<Index>(lanes, f.units - j);
                auto pre = [&](int gate) {
                    return load_lanes(gates + gate * H + j, n) + load(recurrent + gate * f.gate_stride + j);
                };
                const Vec<T> i = vector_sigmoid<T>(pre(0));
                const Vec<T> fg = vector_sigmoid<T>(pre(1));
                const Vec<T> g = vector_tanh<T>(pre(2));
                const Vec<T> o = vector_sigmoid<T>(pre(3));
                const Vec<T> c = fg * load_lanes(c_prev + j, n) + i * g;
                const Vec<T> h = o * vector_tanh<T>(c);
                store_partial(c_next + j, c, n);
                store_partial(h_next + j, h, n);
                store_partial(y + j, h, n);
                if (f.store_gates) {
                    store_partial(gates + j, i, n);
                    store_partial(gates + H + j, fg, n);
                    store_partial(gates + 2 * H + j, g, n);
                    store_partial(gates + 3 * H + j, o, n);
                }
            }
        }
    }

    template <class T> static void backward_tile(const BackwardTile<T>& b) {
        constexpr int lanes = Simd<T>::lanes;
        const Index H = b.hidden;
        for (Index r = 0; r < b.rows; ++r) {
            if (!b.active(r)) {
                backward_padded_row(b, r, gate_count);   // dc passes through unchanged
                continue;
            }
            T* gates = b.gates + r * b.gates_ld;
            const T* dh_next = b.product + r * panel_width<T>();
            const T* dy = b.dy + r * b.dy_ld;
            const T* c_prev = b.c_prev + r * b.state_ld;
            const T* c_next = b.c_next + r * b.state_ld;
            T* dc = b.dc + r * b.state_ld;
            T* dh_partial = b.dh_partial + r * b.state_ld;
            for (Index j = 0; j < b.units; j += lanes) {
                const Index n = min_of<Index>(lanes, b.units - j);
                const Vec<T> i = load_lanes(gates + j, n);
                const Vec<T> fg = load_lanes(gates + H + j, n);
                const Vec<T> g = load_lanes(gates + 2 * H + j, n);
                const Vec<T> o = load_lanes(gates + 3 * H + j, n);
                const Vec<T> dh = load(dh_next + j) + load_lanes(dy + j, n);
                const Vec<T> tanh_c = vector_tanh<T>(load_lanes(c_next + j, n));
                // dL/dc_t collects the path through h_t = o*tanh(c_t) and the carry from t+1.
                const Vec<T> dc_t = load_lanes(dc + j, n) + dh * o * (T(1) - tanh_c * tanh_c);
                const Vec<T> one = broadcast<T>(1);
                store_partial(gates + j, dc_t * g * i * (one - i), n);
                store_partial(gates + H + j, dc_t * load_lanes(c_prev + j, n) * fg * (one - fg), n);
                store_partial(gates + 2 * H + j, dc_t * i * (one - g * g), n);
                store_partial(gates + 3 * H + j, dh * tanh_c * o * (one - o), n);
                store_partial(dc + j, dc_t * fg, n);
                store_partial(dh_partial + j, Vec<T>{}, n);
            }
        }
    }
};

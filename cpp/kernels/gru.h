// GRU, PyTorch gate order r, z, n:
//   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   linear_before_reset (PyTorch/cuDNN):   n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
//   otherwise (Cho et al., Keras default): n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
//   h' = (1-z)*n + z*h
// With linear_before_reset one product per step suffices. Otherwise the n product needs r*h,
// so each step has two phases: the "reset" phase (r, z, r*h) and the "candidate" phase (n, h').
// Backward mirrors that: the candidate phase's gradient, then dL/d(r*h) = dn W_hn, then the
// reset phase's.
//
// Included inside namespace fastrnn::<isa> after tile.h.

template <bool LinearBeforeReset> struct GruCell {
    static constexpr int gate_count = 3;
    static constexpr bool single_phase = LinearBeforeReset;

    template <class T> static void forward_step(const ForwardTile<T>& f, bool candidate_phase) {
        if constexpr (LinearBeforeReset) {
            forward_tile(f);
        } else if (candidate_phase) {
            forward_candidate(f);
        } else {
            forward_reset(f);
        }
    }

    template <class T> static void backward_step(const BackwardTile<T>& b, bool reset_phase) {
        if (reset_phase) {
            backward_reset(b);
        } else {
            backward_tile(b);
        }
    }

    // linear_before_reset: the whole step. extra receives W_hn h + b_hn (kept for backward).
    template <class T> static void forward_tile(const ForwardTile<T>& f) {
        static_assert(LinearBeforeReset, "the two-phase GRU uses forward_reset/forward_candidate");
        constexpr int lanes = Simd<T>::lanes;
        const Index H = f.hidden;
        for (Index r = 0; r < f.rows; ++r) {
            if (!f.active(r)) {
                forward_padded_row(f, r);
                continue;
            }
            T* gates = f.gates + r * f.gates_ld;
            const T* recurrent = f.recurrent + r * panel_width<T>();
            const T* h_prev = f.h_prev + r * f.state_ld;
            for (Index j = 0; j < f.units; j += lanes) {
                const Index n = min_of<Index>(lanes, f.units - j);
                const Vec<T> reset = vector_sigmoid<T>(load_lanes(gates + j, n) + load(recurrent + j));
                const Vec<T> update =
                    vector_sigmoid<T>(load_lanes(gates + H + j, n) + load(recurrent + f.gate_stride + j));
                const Vec<T> hn = load(recurrent + 2 * f.gate_stride + j) + load_lanes(f.bias_hn + j, n);
                const Vec<T> candidate = vector_tanh<T>(load_lanes(gates + 2 * H + j, n) + reset * hn);
                const Vec<T> h = (T(1) - update) * candidate + update * load_lanes(h_prev + j, n);
                store_partial(f.h_next + r * f.state_ld + j, h, n);
                store_partial(f.y + r * f.y_ld + j, h, n);
                if (f.store_gates) {
                    store_partial(gates + j, reset, n);
                    store_partial(gates + H + j, update, n);
                    store_partial(gates + 2 * H + j, candidate, n);
                    store_partial(f.extra + r * f.state_ld + j, hn, n);
                }
            }
        }
    }

    // Two-phase GRU, reset phase: r and z (kept in gates, the candidate phase needs z), r*h.
    template <class T> static void forward_reset(const ForwardTile<T>& f) {
        constexpr int lanes = Simd<T>::lanes;
        const Index H = f.hidden;
        for (Index r = 0; r < f.rows; ++r) {
            T* gates = f.gates + r * f.gates_ld;
            const T* recurrent = f.recurrent + r * panel_width<T>();
            const T* h_prev = f.h_prev + r * f.state_ld;
            for (Index j = 0; j < f.units; j += lanes) {
                const Index n = min_of<Index>(lanes, f.units - j);
                const Vec<T> reset = vector_sigmoid<T>(load_lanes(gates + j, n) + load(recurrent + j));
                const Vec<T> update =
                    vector_sigmoid<T>(load_lanes(gates + H + j, n) + load(recurrent + f.gate_stride + j));
                store_partial(gates + j, reset, n);
                store_partial(gates + H + j, update, n);
                store_partial(f.extra + r * f.state_ld + j, reset * load_lanes(h_prev + j, n), n);
            }
        }
    }

    // Two-phase GRU, candidate phase: n from W_hn (r*h), then h'.
    template <class T> static void forward_candidate(const ForwardTile<T>& f) {
        constexpr int lanes = Simd<T>::lanes;
        const Index H = f.hidden;
        for (Index r = 0; r < f.rows; ++r) {
            if (!f.active(r)) {
                forward_padded_row(f, r);
                continue;
            }
            T* gates = f.gates + r * f.gates_ld;
            const T* recurrent = f.recurrent + r * panel_width<T>();
            const T* h_prev = f.h_prev + r * f.state_ld;
            for (Index j = 0; j < f.units; j += lanes) {
                const Index n = min_of<Index>(lanes, f.units - j);
                const Vec<T> update = load_lanes(gates + H + j, n);
                const Vec<T> candidate =
                    vector_tanh<T>(load_lanes(gates + 2 * H + j, n) + load(recurrent + 2 * f.gate_stride + j));
                const Vec<T> h = (T(1) - update) * candidate + update * load_lanes(h_prev + j, n);
                store_partial(f.h_next + r * f.state_ld + j, h, n);
                store_partial(f.y + r * f.y_ld + j, h, n);
                store_partial(gates + 2 * H + j, candidate, n);
            }
        }
    }

    // Gradients of the candidate step h' = (1-z)*n + z*h: dz and dn pre-activations, and
    // dh_partial = dh*z. linear_before_reset finishes the step here (dr from hn, extra = dn*r);
    // the two-phase GRU leaves r in gates for backward_reset.
    template <class T> static void backward_tile(const BackwardTile<T>& b) {
        constexpr int lanes = Simd<T>::lanes;
        const Index H = b.hidden;
        for (Index r = 0; r < b.rows; ++r) {
            if (!b.active(r)) {
                backward_padded_row(b, r, gate_count);
                if (LinearBeforeReset) std::memset(b.extra + r * b.state_ld, 0, b.units * sizeof(T));
                continue;
            }
            T* gates = b.gates + r * b.gates_ld;
            const T* h_prev = b.h_prev + r * b.state_ld;
            T* extra = b.extra + r * b.state_ld;
            for (Index j = 0; j < b.units; j += lanes) {
                const Index n = min_of<Index>(lanes, b.units - j);
                const Vec<T> reset = load_lanes(gates + j, n);
                const Vec<T> update = load_lanes(gates + H + j, n);
                const Vec<T> candidate = load_lanes(gates + 2 * H + j, n);
                const Vec<T> dh = load(b.product + r * panel_width<T>() + j) + load_lanes(b.dy + r * b.dy_ld + j, n);
                const Vec<T> one = broadcast<T>(1);
                const Vec<T> d_candidate = dh * (one - update) * (one - candidate * candidate);
                const Vec<T> d_update = dh * (load_lanes(h_prev + j, n) - candidate) * update * (one - update);
                store_partial(gates + H + j, d_update, n);
                store_partial(gates + 2 * H + j, d_candidate, n);
                store_partial(b.dh_partial + r * b.state_ld + j, dh * update, n);
                if (LinearBeforeReset) {
                    const Vec<T> hn = load_lanes(extra + j, n);
                    store_partial(gates + j, d_candidate * hn * reset * (one - reset), n);
                    store_partial(extra + j, d_candidate * reset, n);
                }
            }
        }
    }

    // Two-phase GRU: given product = dL/d(r*h_{t-1}), the reset gate's gradient and the r*...
    // path's share of dL/dh_{t-1}.
    template <class T> static void backward_reset(const BackwardTile<T>& b) {
        constexpr int lanes = Simd<T>::lanes;
        for (Index r = 0; r < b.rows; ++r) {
            if (!b.active(r)) continue;   // backward_tile zeroed this row's gate gradients
            T* gates = b.gates + r * b.gates_ld;
            const T* h_prev = b.h_prev + r * b.state_ld;
            T* dh_partial = b.dh_partial + r * b.state_ld;
            for (Index j = 0; j < b.units; j += lanes) {
                const Index n = min_of<Index>(lanes, b.units - j);
                const Vec<T> reset = load_lanes(gates + j, n);
                const Vec<T> d_reset_h = load(b.product + r * panel_width<T>() + j);
                store_partial(gates + j, d_reset_h * load_lanes(h_prev + j, n) * reset * (T(1) - reset), n);
                store_partial(dh_partial + j, load_lanes(dh_partial + j, n) + d_reset_h * reset, n);
            }
        }
    }
};

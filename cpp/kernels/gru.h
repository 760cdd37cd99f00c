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
        if (!candidate_phase) {
            forward_gates(f);
        } else {
            forward_candidate(f);
        }
    }

    template <class T> static void backward_step(const BackwardTile<T>& b, bool reset_phase) {
        if (reset_phase) {
            backward_reset(b);
        } else {
            backward_tile(b);
        }
    }

    // h' = (1-z)*n + z*h_prev, written to the state and the output.
    template <class T>
    static void store_update(const ForwardTile<T>& f, Index r, Index j, Index n, Vec<T> update, Vec<T> candidate) {
        const Vec<T> h = (T(1) - update) * candidate + update * load_lanes(f.h_prev + r * f.state_ld + j, n);
        store_partial(f.h_next + r * f.state_ld + j, h, n);
        store_partial(f.y + r * f.y_ld + j, h, n);
    }

    // r and z; then with linear_before_reset the whole step (extra = W_hn h + b_hn, kept for
    // backward), otherwise r*h_prev into extra for the candidate phase (r and z stay in gates:
    // the candidate phase needs z, backward both).
    template <class T> static void forward_gates(const ForwardTile<T>& f) {
        const Index H = f.hidden;
        auto padded = [&](Index r) {
            if (LinearBeforeReset) forward_padded_row(f, r);   // the candidate phase carries the others
        };
        for_each_vector<T>(f, padded, [&](Index r, Index j, Index n) {
            T* gates = f.gates + r * f.gates_ld + j;
            const T* recurrent = f.recurrent + r * panel_width<T>() + j;
            T* extra = f.extra + r * f.state_ld + j;
            const Vec<T> reset = vector_sigmoid<T>(load_lanes(gates, n) + load(recurrent));
            const Vec<T> update = vector_sigmoid<T>(load_lanes(gates + H, n) + load(recurrent + f.gate_stride));
            if (!LinearBeforeReset) {
                store_partial(gates, reset, n);
                store_partial(gates + H, update, n);
                store_partial(extra, reset * load_lanes(f.h_prev + r * f.state_ld + j, n), n);
                return;
            }
            const Vec<T> hn = load(recurrent + 2 * f.gate_stride) + load_lanes(f.bias_hn + j, n);
            const Vec<T> candidate = vector_tanh<T>(load_lanes(gates + 2 * H, n) + reset * hn);
            store_update(f, r, j, n, update, candidate);
            if (f.store_gates) {
                store_partial(gates, reset, n);
                store_partial(gates + H, update, n);
                store_partial(gates + 2 * H, candidate, n);
                store_partial(extra, hn, n);
            }
        });
    }

    // Two-phase GRU, candidate phase: n from W_hn (r*h), then h'.
    template <class T> static void forward_candidate(const ForwardTile<T>& f) {
        const Index H = f.hidden;
        for_each_vector<T>(f, [&](Index r) { forward_padded_row(f, r); }, [&](Index r, Index j, Index n) {
            T* gates = f.gates + r * f.gates_ld + j;
            const Vec<T> pre = load_lanes(gates + 2 * H, n) + load(f.recurrent + r * panel_width<T>() + 2 * f.gate_stride + j);
            const Vec<T> candidate = vector_tanh<T>(pre);
            store_update(f, r, j, n, load_lanes(gates + H, n), candidate);
            store_partial(gates + 2 * H, candidate, n);
        });
    }

    // Gradients of the candidate step h' = (1-z)*n + z*h: dz and dn pre-activations, and
    // dh_partial = dh*z. linear_before_reset finishes the step here (dr from hn, extra = dn*r);
    // the two-phase GRU leaves r in gates for backward_reset.
    template <class T> static void backward_tile(const BackwardTile<T>& b) {
        const Index H = b.hidden;
        auto padded = [&](Index r) {
            backward_padded_row(b, r, gate_count);
            if (LinearBeforeReset) std::memset(b.extra + r * b.state_ld, 0, b.units * sizeof(T));
        };
        for_each_vector<T>(b, padded, [&](Index r, Index j, Index n) {
            T* gates = b.gates + r * b.gates_ld + j;
            T* extra = b.extra + r * b.state_ld + j;
            const Vec<T> reset = load_lanes(gates, n);
            const Vec<T> update = load_lanes(gates + H, n);
            const Vec<T> candidate = load_lanes(gates + 2 * H, n);
            const Vec<T> dh = load(b.product + r * b.product_ld + j) + load_lanes(b.dy + r * b.dy_ld + j, n);
            const Vec<T> one = broadcast<T>(1);
            const Vec<T> d_candidate = dh * (one - update) * (one - candidate * candidate);
            const Vec<T> d_update = dh * (load_lanes(b.h_prev + r * b.state_ld + j, n) - candidate) * update * (one - update);
            store_partial(gates + H, d_update, n);
            store_partial(gates + 2 * H, d_candidate, n);
            store_partial(b.dh_partial + r * b.state_ld + j, dh * update, n);
            if (LinearBeforeReset) {
                store_partial(gates, d_candidate * load_lanes(extra, n) * reset * (one - reset), n);
                store_partial(extra, d_candidate * reset, n);
            }
        });
    }

    // Two-phase GRU: given product = dL/d(r*h_{t-1}), the reset gate's gradient and the r*...
    // path's share of dL/dh_{t-1}. backward_tile already zeroed a padded row's gradients.
    template <class T> static void backward_reset(const BackwardTile<T>& b) {
        for_each_vector<T>(b, [](Index) {}, [&](Index r, Index j, Index n) {
            T* gates = b.gates + r * b.gates_ld + j;
            T* dh_partial = b.dh_partial + r * b.state_ld + j;
            const Vec<T> reset = load_lanes(gates, n);
            const Vec<T> d_reset_h = load(b.product + r * b.product_ld + j);
            store_partial(gates, d_reset_h * load_lanes(b.h_prev + r * b.state_ld + j, n) * reset * (T(1) - reset), n);
            store_partial(dh_partial, load_lanes(dh_partial, n) + d_reset_h * reset, n);
        });
    }
};

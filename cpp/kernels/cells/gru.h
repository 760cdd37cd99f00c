// GRU, PyTorch gate order r, z, n:
//   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   linear_before_reset (PyTorch/cuDNN):   n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
//   otherwise (Cho et al., Keras default): n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
//   h' = (1-z)*n + z*h
// With linear_before_reset one product per step suffices. Otherwise the n product needs r*h,
// so each step has two phases: the gates phase (r, z, r*h) and the candidate phase (n, h').
// Backward mirrors that: the candidate phase's gradient, then dL/d(r*h) = dn W_hn, then the
// reset gate's.
// One value per unit is kept per step (the tiles' `kept`): hn = W_hn h + b_hn with
// linear_before_reset, which backward replaces with d_hn = dL/dhn = dn*r; otherwise
// reset_h = r*h. Both change the n block of dW_hh, and d_hn that of db_hh.
//
// Included inside namespace fastrnn::<isa> after cell.h.

template <bool LinearBeforeReset> struct GruCell : CellDefaults<GruCell<LinearBeforeReset>> {
    static constexpr int gate_count = 3;
    static constexpr int kept_values = 1;
    static constexpr const char* kept_name = LinearBeforeReset ? "hn" : "reset_h";
    static constexpr int phases = LinearBeforeReset ? 1 : 2;
    // b_hn sits inside r*(W_hn h + b_hn) with linear_before_reset: the step adds it.
    static constexpr int separate_bias_blocks = LinearBeforeReset ? 1 : 0;
    // dW_hn: d_hn^T h (linear_before_reset) or dn^T reset_h.
    static constexpr int own_hh_blocks = 1;

    // Phase 0: r, z (and n with linear_before_reset) from h; the candidate phase: n from reset_h.
    static constexpr ForwardProduct forward_product(int phase) {
        if (LinearBeforeReset) return {0, 3, false};
        return phase == 0 ? ForwardProduct{0, 2, false} : ForwardProduct{2, 3, true};
    }

    // Phase 0: dL/dh_{t-1} from dr and dz of the later step through W_h{r,z}, and its d_hn through
    // W_hn with linear_before_reset (without, the reset phase covers the n block). The reset
    // phase: dL/d(reset_h) = dn W_hn from this step's dn.
    template <class T>
    static int backward_segments(int phase, const T* dgates, Index gates_ld, const T* kept, Index hidden,
                                 Segment<T>* segments) {
        const Index H = hidden;
        if (phase == 1) {
            segments[0] = {dgates + 2 * H, gates_ld, H, 2 * H};
            return 1;
        }
        segments[0] = {dgates, gates_ld, 2 * H, 0};
        if (!LinearBeforeReset) return 1;
        segments[1] = {kept, H, H, 2 * H};
        return 2;
    }

    template <class T>
    static ProductOperands<T> own_hh_operands(const T* dgates, Index gates_ld, const T* h_prev, const T* kept,
                                              Index hidden) {
        const Index H = hidden;
        if (LinearBeforeReset) return {MatrixView<T>{kept, 1, H}, MatrixView<T>{h_prev, H, 1}};
        return {MatrixView<T>{dgates + 2 * H, 1, gates_ld}, MatrixView<T>{kept, H, 1}};
    }

    // With linear_before_reset, db_hn sums d_hn, not dn.
    template <class T>
    static void hh_bias_gradient(T* db_hh, const T* dgates, Index gates_ld, const T* kept, Index hidden, Index rows,
                                 Range columns, bool accumulate) {
        if (!LinearBeforeReset) {
            CellDefaults<GruCell>::hh_bias_gradient(db_hh, dgates, gates_ld, kept, hidden, rows, columns, accumulate);
            return;
        }
        const Index H = hidden;
        add_column_sums(db_hh, dgates, gates_ld, rows, columns.begin, min_of(columns.end, 2 * H), accumulate);
        add_column_sums(db_hh + 2 * H, kept, H, rows, max_of<Index>(columns.begin - 2 * H, 0), columns.end - 2 * H,
                        accumulate);
    }

    template <class T> static void forward_step(const ForwardTile<T>& f, int phase) {
        if (phase == 0) {
            forward_gates(f);
        } else {
            forward_candidate(f);
        }
    }

    template <class T> static void backward_step(const BackwardTile<T>& b, int phase) {
        if (phase == 0) {
            backward_candidate(b);
        } else {
            backward_reset(b);
        }
    }

    // h' = (1-z)*n + z*h_prev, written to the state and the output.
    template <class T>
    static void store_update(const ForwardTile<T>& f, Index r, Index j, Index n, Vec<T> update, Vec<T> candidate) {
        const Vec<T> h = (T(1) - update) * candidate + update * load_lanes(f.h_prev + r * f.state_ld + j, n);
        store_partial(f.h_next + r * f.state_ld + j, h, n);
        store_partial(f.y + r * f.y_ld + j, h, n);
    }

    // r and z; then with linear_before_reset the whole step (hn kept for backward), otherwise
    // reset_h for the candidate phase (r and z stay in gates: the candidate phase needs z,
    // backward both).
    template <class T> static void forward_gates(const ForwardTile<T>& f) {
        const Index H = f.hidden;
        auto padded = [&](Index r) {
            if (LinearBeforeReset) forward_padded_row(f, r);   // the candidate phase carries the others
        };
        for_each_vector<T>(f, padded, [&](Index r, Index j, Index n) {
            T* gates = f.gates + r * f.gates_ld + j;
            const T* recurrent = f.recurrent + r * panel_width<T>() + j;
            T* kept = f.kept + r * f.state_ld + j;
            const Vec<T> reset = vector_sigmoid<T>(load_lanes(gates, n) + load(recurrent));
            const Vec<T> update = vector_sigmoid<T>(load_lanes(gates + H, n) + load(recurrent + f.gate_stride));
            if (!LinearBeforeReset) {
                store_partial(gates, reset, n);
                store_partial(gates + H, update, n);
                const Vec<T> reset_h = reset * load_lanes(f.h_prev + r * f.state_ld + j, n);
                store_partial(kept, reset_h, n);
                return;
            }
            const Vec<T> hn = load(recurrent + 2 * f.gate_stride) + load_lanes(f.separate_bias + j, n);
            const Vec<T> candidate = vector_tanh<T>(load_lanes(gates + 2 * H, n) + reset * hn);
            store_update(f, r, j, n, update, candidate);
            if (f.store_gates) {
                store_partial(gates, reset, n);
                store_partial(gates + H, update, n);
                store_partial(gates + 2 * H, candidate, n);
                store_partial(kept, hn, n);
            }
        });
    }

    // Two-phase GRU, candidate phase: n from W_hn reset_h, then h'.
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
    // dh_partial = dh*z. linear_before_reset finishes the step here (dr from hn, which d_hn
    // replaces); the two-phase GRU leaves r in gates for backward_reset.
    template <class T> static void backward_candidate(const BackwardTile<T>& b) {
        const Index H = b.hidden;
        auto padded = [&](Index r) {
            backward_padded_row(b, r, gate_count);
            if (LinearBeforeReset) std::memset(b.kept + r * b.state_ld, 0, b.units * sizeof(T));   // d_hn
        };
        for_each_vector<T>(b, padded, [&](Index r, Index j, Index n) {
            T* gates = b.gates + r * b.gates_ld + j;
            T* kept = b.kept + r * b.state_ld + j;
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
                const Vec<T> hn = load_lanes(kept, n);
                store_partial(gates, d_candidate * hn * reset * (one - reset), n);
                const Vec<T> d_hn = d_candidate * reset;
                store_partial(kept, d_hn, n);
            }
        });
    }

    // Two-phase GRU: given product = dL/d(reset_h), the reset gate's gradient and the reset_h
    // path's share of dL/dh_{t-1}. backward_candidate already zeroed a padded row's gradients.
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

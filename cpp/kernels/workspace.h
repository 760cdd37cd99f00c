// The shape of one stacked-layer call and where its buffers live: the activations a training
// forward keeps for backward, and the scratch of forward and backward. Sizes are in elements;
// every buffer starts on a 64-byte line.
//
// Layouts (all row-major, time-major): gates [T, B, D*G*H] (direction d at column d*G*H)
// holds the input projection, then the activations (training), then the gradients w.r.t.
// the pre-activations (backward). The hidden states of direction d live in `states`, slot
// i holding the state before time i (forward direction) or before time i-1 (reverse), so that
// the states feeding the T steps are always T consecutive slots.
//
// Included inside namespace fastrnn::<isa> after gemm.h.

// count values of T rounded up to a whole number of 64-byte lines.
template <class T> inline Index aligned(Index count) {
    constexpr Index line = 64 / static_cast<Index>(sizeof(T));
    return (count + line - 1) / line * line;
}

// Bump allocation inside a workspace, in elements, 64-byte aligned.
template <class T> struct Carve {
    Index used = 0;
    Index take(Index count) {
        const Index at = used;
        used += aligned<T>(count);
        return at;
    }
};

struct Dims {
    StackConfig config;
    Index steps, batch, hidden, gate_count, directions, layers, panels;

    Dims(const StackConfig& c, Index T, Index B, Index width)
        : config(c), steps(T), batch(B), hidden(c.hidden_size), gate_count(c.gates()),
          directions(c.directions), layers(c.num_layers), panels((c.hidden_size + width - 1) / width) {}

    Index rows() const { return steps * batch; }
    Index gate_rows() const { return gate_count * hidden; }             // G*H
    Index gates_ld() const { return directions * gate_count * hidden; } // D*G*H
    Index output_ld() const { return directions * hidden; }             // D*H
    Index input_size(Index layer) const { return config.layer_input_size(layer); }
    Index widest_product() const {
        Index widest = max_of(gate_rows(), config.input_size);
        return max_of(widest, output_ld());
    }
    // Time processed by direction d at iteration s of the forward loop.
    Index forward_time(Index direction, Index s) const { return direction == 0 ? s : steps - 1 - s; }
    Index state_before(Index direction, Index t) const { return direction == 0 ? t : t + 1; }
    Index state_after(Index direction, Index t) const { return direction == 0 ? t + 1 : t; }
};

// Activations a training-mode forward keeps for backward, per layer and direction: the gates,
// then each direction's T+1 slots of each state part and its kept values; then the outputs of
// the layers below the top. parts() names and places those of a layer and direction for readers
// (StoredPart; the layer outputs are not among them).
template <class Cell, class T> struct StoredLayout {
    static constexpr const char* state_names[2] = {"h", "c"};   // state part 0, 1
    static_assert(1 + Cell::kept_values + Cell::state_parts <= kMaxStoredParts, "StoredPart list too short");

    Index gates_size, states_size, kept_size, layer_size, direction_size, outputs_begin, output_size, total;

    explicit StoredLayout(const Dims& d) {
        gates_size = aligned<T>(d.rows() * d.gates_ld());
        states_size = aligned<T>((d.steps + 1) * d.batch * d.hidden);
        kept_size = Cell::kept_values * aligned<T>(d.rows() * d.hidden);
        direction_size = states_size * Cell::state_parts + kept_size;
        layer_size = gates_size + d.directions * direction_size;
        outputs_begin = d.layers * layer_size;
        output_size = aligned<T>(d.rows() * d.output_ld());
        total = outputs_begin + (d.layers - 1) * output_size;
    }
    Index gates(Index layer) const { return layer * layer_size; }
    // State part `part` (0: h, 1: c).
    Index states(Index layer, Index direction, int part) const {
        return layer * layer_size + gates_size + direction * direction_size + part * states_size;
    }
    Index kept(Index layer, Index direction) const { return states(layer, direction, Cell::state_parts); }
    Index output(Index layer) const { return outputs_begin + layer * output_size; }

    // The parts of one layer and direction as kernels.h's StoredPart describes them, in the
    // reference's order (acts, then states); returns their count.
    int parts(const Dims& d, Index layer, Index direction, StoredPart* out) const {
        const Index BH = d.batch * d.hidden;
        int count = 0;
        out[count++] = {"gates", gates(layer) + direction * d.gate_rows(), d.batch * d.gates_ld(), d.gates_ld(),
                        d.gate_rows()};
        if (Cell::kept_values > 0) out[count++] = {Cell::kept_name, kept(layer, direction), BH, d.hidden, d.hidden};
        // The state after step t is in slot state_after(direction, t) = t + state_after(direction, 0).
        for (int part = 0; part < Cell::state_parts; ++part)
            out[count++] = {state_names[part], states(layer, direction, part) + d.state_after(direction, 0) * BH, BH,
                            d.hidden, d.hidden};
        return count;
    }
};

template <class Cell, class T> struct ForwardScratchLayout {
    // Inference only: the projection, two slots per state part and direction, one of kept values
    // per direction, and ping-pong layer outputs.
    Index projection = 0, states = 0, kept = 0, outputs = 0, output_size = 0, state_size = 0;
    Index packed = 0, packed_size = 0, bias = 0, separate_bias = 0, separate_bias_size = 0, gemm = 0, gemm_size = 0,
          total = 0;

    ForwardScratchLayout(const Dims& d, bool training, bool dot, int threads) {
        Carve<T> carve;
        if (!training) {
            projection = carve.take(d.rows() * d.gates_ld());
            state_size = aligned<T>(d.batch * d.hidden);
            states = carve.take(Cell::state_parts * 2 * d.directions * state_size);
            kept = carve.take(Cell::kept_values * d.directions * state_size);
            output_size = aligned<T>(d.rows() * d.output_ld());
            if (d.layers > 1) outputs = carve.take(2 * output_size);
        }
        packed_size = dot ? 0 : aligned<T>(d.gate_count * d.panels * panel_width<T>() * d.hidden);
        packed = carve.take(d.directions * packed_size);
        bias = carve.take(d.directions * d.gate_rows());
        separate_bias_size = Cell::separate_bias_blocks * d.hidden;
        separate_bias = carve.take(d.directions * separate_bias_size);
        gemm_size = aligned<T>(gemm_scratch_size<T>(d.widest_product()));
        gemm = carve.take(threads * gemm_size);
        total = carve.used;
    }
};

template <class Cell, class T> struct BackwardScratchLayout {
    Index packed, packed_size, products, products_ld, products_size, carry_size, dh_partial, dc, gradients,
        gradient_size, gemm, gemm_size, total;

    // dot: the batch's recurrent products run as gemv_row on W_hh in place (see BackwardRun),
    // into `products`; otherwise W_hh is packed. dc: the carry of the cell state's gradient.
    BackwardScratchLayout(const Dims& d, int threads, bool dot) {
        Carve<T> carve;
        packed_size = dot ? 0 : aligned<T>(d.panels * panel_width<T>() * d.gate_rows());
        packed = carve.take(d.directions * packed_size);
        products_ld = d.panels * panel_width<T>();
        products_size = dot ? aligned<T>(d.directions * d.batch * products_ld) : 0;
        products = carve.take(threads * products_size);
        carry_size = aligned<T>(d.batch * d.hidden);
        dh_partial = carve.take(d.directions * carry_size);
        dc = carve.take((Cell::state_parts - 1) * d.directions * carry_size);
        gradient_size = aligned<T>(d.rows() * d.output_ld());
        gradients = carve.take(min_of<Index>(d.layers - 1, 2) * gradient_size);
        gemm_size = aligned<T>(gemm_scratch_size<T>(d.widest_product()));
        gemm = carve.take(threads * gemm_size);
        total = carve.used;
    }
    // dL/d(output of layer), for layers below the top (whose gradient is the caller's dy).
    Index gradient(Index layer) const { return gradients + (layer % 2) * gradient_size; }
};

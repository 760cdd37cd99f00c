// Stacked, bidirectional recurrent layers over whole sequences, for any cell of rnn.h, lstm.h
// or gru.h. Per layer: the input projection of all time steps as one product; per time step
// one product with W_hh whose output tiles go straight through the cell's elementwise step;
// in backward only dh_{t-1} = dgates_t W_hh stays on the sequential path, and the weight
// gradients and dx are single products over all T*B rows after the time loop.
// One parallel run per call; its threads split each time step's tiles and meet at a barrier.
//
// Layouts (all row-major, time-major): gates [T, B, D*G*H] (direction d at column d*G*H)
// holds the input projection, then the activations (training), then the gradients w.r.t.
// the pre-activations (backward). The hidden states of direction d live in `states`, slot
// i holding the state before time i (forward direction) or before time i-1 (reverse), so that
// the states feeding the T steps are always T consecutive slots.
//
// Included inside namespace fastrnn::<isa> after the cell headers.

// Batch sizes up to this run the recurrent product as dot products on the unpacked W_hh:
// packing would cost as much as the whole call when the next call (generation) repeats it.
constexpr Index kDotBatch = 2;
// Input projections of at most this many rows (T*B) likewise: reading W_ih once per row costs
// less than packing it.
constexpr Index kDotRows = 16;
// Below this many flops per time step, a second thread costs more in barriers than it saves.
constexpr double kParallelStepFlops = 50e3;

inline bool use_dot_recurrent(Index batch) { return batch <= kDotBatch; }

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

// [begin, end) of part `part` of `parts` of [0, count), in whole granules.
struct Range {
    Index begin, end;
};
inline Range split_range(Index count, int part, int parts, Index granule) {
    const Index granules = (count + granule - 1) / granule;
    const Index begin = granules * part / parts * granule;
    const Index end = granules * (part + 1) / parts * granule;
    return {min_of(begin, count), min_of(end, count)};
}

// One thread of a parallel run: its index and the number of threads that joined the run.
struct Worker {
    int thread, team;
    Range share(Index count, Index granule) const { return split_range(count, thread, team, granule); }
    void barrier() const { parallel_barrier(team); }
};

struct Dims {
    StackConfig config;
    Index steps, batch, hidden, gates, directions, layers, panels;
    bool lstm, gru;

    Dims(const StackConfig& c, Index T, Index B, Index width)
        : config(c), steps(T), batch(B), hidden(c.hidden_size), gates(c.gates()),
          directions(c.directions), layers(c.num_layers), panels((c.hidden_size + width - 1) / width),
          lstm(c.kind == CellKind::lstm), gru(c.kind == CellKind::gru) {}

    Index rows() const { return steps * batch; }
    Index gate_rows() const { return gates * hidden; }                  // G*H
    Index gates_ld() const { return directions * gates * hidden; }      // D*G*H
    Index output_ld() const { return directions * hidden; }             // D*H
    Index input_size(Index layer) const { return config.layer_input_size(layer); }
    Index widest_product() const {
        Index widest = max_of(gate_rows(), config.input_size);
        return max_of(widest, output_ld());
    }
    // Time processed by direction d at iteration s of the forward loop.
    Index time(Index direction, Index s) const { return direction == 0 ? s : steps - 1 - s; }
    Index state_before(Index direction, Index t) const { return direction == 0 ? t : t + 1; }
    Index state_after(Index direction, Index t) const { return direction == 0 ? t + 1 : t; }
};

// Activations a training-mode forward keeps for backward, per layer and direction.
template <class T> struct StoredLayout {
    Index gates_size, states_size, extra_size, layer_size, direction_size, outputs_begin, output_size, total;

    explicit StoredLayout(const Dims& d) {
        gates_size = aligned<T>(d.rows() * d.gates_ld());
        states_size = aligned<T>((d.steps + 1) * d.batch * d.hidden);
        extra_size = d.gru ? aligned<T>(d.rows() * d.hidden) : 0;
        direction_size = states_size * (d.lstm ? 2 : 1) + extra_size;
        layer_size = gates_size + d.directions * direction_size;
        outputs_begin = d.layers * layer_size;
        output_size = aligned<T>(d.rows() * d.output_ld());
        total = outputs_begin + (d.layers - 1) * output_size;
    }
    Index gates(Index layer) const { return layer * layer_size; }
    Index states(Index layer, Index direction) const {
        return layer * layer_size + gates_size + direction * direction_size;
    }
    Index cells(Index layer, Index direction) const { return states(layer, direction) + states_size; }
    Index extra(Index layer, Index direction) const {
        return states(layer, direction) + direction_size - extra_size;
    }
    Index output(Index layer) const { return outputs_begin + layer * output_size; }
};

template <class T> struct ForwardScratchLayout {
    // Inference only: the projection, two state slots per direction, and ping-pong layer outputs.
    Index projection = 0, states = 0, cells = 0, extra = 0, outputs = 0, output_size = 0, state_size = 0;
    Index packed = 0, packed_size = 0, bias = 0, bias_hn = 0, gemm = 0, gemm_size = 0, total = 0;

    ForwardScratchLayout(const Dims& d, bool training, bool dot, int threads) {
        Carve<T> carve;
        if (!training) {
            projection = carve.take(d.rows() * d.gates_ld());
            state_size = aligned<T>(d.batch * d.hidden);
            states = carve.take(2 * d.directions * state_size);
            if (d.lstm) cells = carve.take(2 * d.directions * state_size);
            if (d.gru) extra = carve.take(d.directions * state_size);
            output_size = aligned<T>(d.rows() * d.output_ld());
            if (d.layers > 1) outputs = carve.take(2 * output_size);
        }
        packed_size = dot ? 0 : aligned<T>(d.gates * d.panels * panel_width<T>() * d.hidden);
        packed = carve.take(d.directions * packed_size);
        bias = carve.take(d.directions * d.gate_rows());
        bias_hn = carve.take(d.directions * d.hidden);
        gemm_size = aligned<T>(gemm_scratch_size<T>(d.widest_product()));
        gemm = carve.take(threads * gemm_size);
        total = carve.used;
    }
};

template <class T> struct BackwardScratchLayout {
    Index packed, packed_size, products, products_ld, products_size, carry_size, dh_partial, dc, gradients,
        gradient_size, gemm, gemm_size, total;

    // dot: the batch's recurrent products run as gemv_row on W_hh in place (see BackwardRun),
    // into `products`; otherwise W_hh is packed.
    BackwardScratchLayout(const Dims& d, int threads, bool dot) {
        Carve<T> carve;
        packed_size = dot ? 0 : aligned<T>(d.panels * panel_width<T>() * d.gate_rows());
        packed = carve.take(d.directions * packed_size);
        products_ld = d.panels * panel_width<T>();
        products_size = dot ? aligned<T>(d.directions * d.batch * products_ld) : 0;
        products = carve.take(threads * products_size);
        carry_size = aligned<T>(d.batch * d.hidden);
        dh_partial = carve.take(d.directions * carry_size);
        dc = carve.take(d.directions * carry_size);
        gradient_size = aligned<T>(d.rows() * d.output_ld());
        gradients = carve.take(min_of<Index>(d.layers - 1, 2) * gradient_size);
        gemm_size = aligned<T>(gemm_scratch_size<T>(d.widest_product()));
        gemm = carve.take(threads * gemm_size);
        total = carve.used;
    }
    // dL/d(output of layer), for layers below the top (whose gradient is the caller's dy).
    Index gradient(Index layer) const { return gradients + (layer % 2) * gradient_size; }
};

// Multiply-adds x 2 of a forward pass (backward is about twice that): the input projections and
// recurrent products of every layer and direction.
inline double forward_flops(const Dims& d) {
    double flops = 0;
    for (Index layer = 0; layer < d.layers; ++layer)
        flops += 2.0 * double(d.rows()) * double(d.gate_rows()) * double(d.input_size(layer) + d.hidden) * double(d.directions);
    return flops;
}

// A second thread pays when one time step's recurrent product is big enough to share: the
// threads meet at a barrier after every step, however many steps there are.
inline int useful_threads_for(const StackConfig& config, Index /*steps*/, Index batch, int available) {
    const double step_flops = 2.0 * double(batch) * double(config.gates()) * double(config.hidden_size) *
                              double(config.hidden_size) * double(config.directions);
    return step_flops < kParallelStepFlops ? 1 : available;
}

// Sum of tile products over depth segments: tile = sum_s A_s[rows, depth_s] * panel rows
// [offset_s, offset_s + depth_s).
template <class T> struct Segment {
    const T* a;
    Index lda, depth, panel_offset;
};

template <class T>
inline void segment_product(Index rows, const Segment<T>* segments, int count, Panel<T> panel, T* tile) {
    for (int s = 0; s < count; ++s)
        micro_tile<T, ALayout::row>(rows, segments[s].depth, segments[s].a, segments[s].lda,
                                    panel.rows_from(segments[s].panel_offset),
                                    ProductOutput<T>{tile, panel_width<T>(), s > 0, nullptr});
}

// Calls tile(direction, unit_panel, row_begin, row_end) for this thread's share of one time
// step. Rows are cut into chunks (of whole kTileRows tiles, as even as they go) only when there
// are too few unit panels to share out; items run chunk by chunk, so each thread takes whole
// chunks across all panels (panels differ in width, chunks hardly at all).
template <class Tile> inline void for_step_tiles(const Dims& dims, const Worker& worker, Tile&& tile) {
    const Index per_chunk = dims.directions * dims.panels;
    const Index chunks = worker.team > 1 && per_chunk < 2 * worker.team ? (2 * worker.team + per_chunk - 1) / per_chunk : 1;
    const Range items = worker.share(chunks * per_chunk, 1);
    for (Index item = items.begin; item < items.end; ++item) {
        const Index chunk = item / per_chunk, direction = item % per_chunk / dims.panels, u = item % dims.panels;
        const Range rows = split_range(dims.batch, int(chunk), int(chunks), kTileRows);
        if (rows.begin < rows.end) tile(direction, u, rows.begin, rows.end);
    }
}

// target[r, j] += source[r, j] for r < rows, j < columns (row strides target_ld, source_ld; a
// source_ld of 0 adds one row to every row).
template <class T>
inline void add_rows(T* target, Index target_ld, const T* source, Index source_ld, Index rows, Index columns) {
    constexpr Index lanes = Simd<T>::lanes;
    for (Index r = 0; r < rows; ++r) {
        for (Index j = 0; j < columns; j += lanes) {
            const Index n = min_of(lanes, columns - j);
            T* out = target + r * target_ld + j;
            store_partial(out, load_lanes(out, n) + load_lanes(source + r * source_ld + j, n), n);
        }
    }
}

// y[m, n] (row stride ldy) = x[m, k] w[n, k]^T + bias (bias may be null; w has row stride ldw):
// the input projection and linear_forward. A few rows (generation) run as dot products on w as
// it is, outputs split over the threads; more run as a packed product split by rows.
template <class T>
inline void linear_rows(const Worker& worker, T* y, Index ldy, const T* x, const T* w, Index ldw, const T* bias,
                        Index m, Index n, Index k, T* scratch) {
    if (m <= kDotRows) {
        const Range outputs = worker.share(n, Simd<T>::lanes);
        const Index count = outputs.end - outputs.begin;
        dot_rows(y + outputs.begin, ldy, x, k, m, w + outputs.begin * ldw, ldw, count, k);
        if (bias) add_rows(y + outputs.begin, ldy, bias + outputs.begin, 0, m, count);
        return;
    }
    const Range rows = worker.share(m, kTileRows);
    gemm_rows(ProductOutput<T>{y, ldy, false, bias}, MatrixView<T>{x, k, 1}, MatrixView<T>{w, 1, ldw}, rows.begin,
              rows.end, n, k, scratch);
}

// sums[j] (+)= sum over rows [0, row_count) of rows[row * ld + j], for j in [begin, end): added
// row by row into sums[j] (accumulate) or into zero.
template <class T>
inline void add_column_sums(T* sums, const T* rows, Index ld, Index row_count, Index begin, Index end,
                            bool accumulate) {
    constexpr Index lanes = Simd<T>::lanes;
    for (Index j = begin; j < end; j += lanes) {
        const Index n = min_of(lanes, end - j);
        Vec<T> total = accumulate ? load_lanes(sums + j, n) : Vec<T>{};
        for (Index row = 0; row < row_count; ++row) total += load_lanes(rows + row * ld + j, n);
        store_partial(sums + j, total, n);
    }
}

template <class Cell, class T> struct ForwardRun {
    static constexpr bool two_phase = !Cell::single_phase;
    const ForwardArgs<T>& args;
    Dims dims;
    bool dot;
    StoredLayout<T> stored;
    ForwardScratchLayout<T> scratch;

    ForwardRun(const ForwardArgs<T>& a, const Dims& d)
        : args(a), dims(d), dot(use_dot_recurrent(d.batch)), stored(d), scratch(d, a.training, dot, a.threads) {}

    static void body(void* context, int thread, int team) {
        static_cast<ForwardRun*>(context)->run(Worker{thread, team});
    }

    T* gates(Index layer) const {
        return args.training ? args.stored + stored.gates(layer) : args.scratch + scratch.projection;
    }
    T* states(Index layer, Index direction) const {
        return args.training ? args.stored + stored.states(layer, direction)
                             : args.scratch + scratch.states + 2 * direction * scratch.state_size;
    }
    T* cells(Index layer, Index direction) const {
        return args.training ? args.stored + stored.cells(layer, direction)
                             : args.scratch + scratch.cells + 2 * direction * scratch.state_size;
    }
    // State slot i of a direction: all T+1 in training, two alternating ones in inference.
    Index slot(Index i) const { return (args.training ? i : i % 2) * dims.batch * dims.hidden; }
    T* extra(Index layer, Index direction, Index t) const {
        return args.training ? args.stored + stored.extra(layer, direction) + t * dims.batch * dims.hidden
                             : args.scratch + scratch.extra + direction * scratch.state_size;
    }
    const T* layer_input(Index layer) const { return layer == 0 ? args.x : layer_output(layer - 1); }
    T* layer_output(Index layer) const {
        if (layer == dims.layers - 1) return args.y;
        return args.training ? args.stored + stored.output(layer)
                             : args.scratch + scratch.outputs + (layer % 2) * scratch.output_size;
    }
    T* gemm_scratch(int thread) const { return args.scratch + scratch.gemm + thread * scratch.gemm_size; }
    ParamOffsets offsets(Index layer, Index direction) const {
        return param_offsets(dims.config, layer, direction);
    }

    void run(const Worker& worker) {
        for (Index layer = 0; layer < dims.layers; ++layer) {
            prepare_layer(layer, worker);
            worker.barrier();
            project_inputs(layer, worker);
            worker.barrier();
            for (Index s = 0; s < dims.steps; ++s) {
                step(layer, s, worker, false);
                worker.barrier();
                if (two_phase) {
                    step(layer, s, worker, true);
                    worker.barrier();
                }
            }
            finish_layer(layer, worker);
            worker.barrier();
        }
    }

    // Packs W_hh^T gate by gate (panel (g, u) covers units [u*width, (u+1)*width) of gate g),
    // sums the biases the projection adds, and sets the initial states.
    void prepare_layer(Index layer, const Worker& worker) {
        const Index H = dims.hidden, G = dims.gates, P = dims.panels;
        constexpr int width = panel_width<T>();
        if (!dot) {
            const Range panels = worker.share(dims.directions * G * P, 1);
            for (Index index = panels.begin; index < panels.end; ++index) {
                const Index direction = index / (G * P), g = index / P % G, u = index % P;
                const ParamOffsets o = offsets(layer, direction);
                const T* w_hh = args.weights + o.weight_hh;
                const Index first = u * width, count = min_of<Index>(width, H - first);
                pack_b(args.scratch + scratch.packed + direction * scratch.packed_size + (g * P + u) * width * H,
                       MatrixView<T>{w_hh + (g * H + first) * o.hh_stride, 1, o.hh_stride}, H, count);
            }
        }
        if (worker.thread != 0) return;
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            T* bias = args.scratch + scratch.bias + direction * dims.gate_rows();
            T* bias_hn = args.scratch + scratch.bias_hn + direction * H;
            for (Index j = 0; j < dims.gate_rows(); ++j) {
                // The PyTorch GRU keeps b_hn inside r*(W_hn h + b_hn): the step adds it.
                const bool inside_reset = dims.gru && dims.config.linear_before_reset && j >= 2 * H;
                bias[j] = o.bias_ih < 0 ? T(0)
                                        : args.weights[o.bias_ih + j] + (inside_reset ? T(0) : args.weights[o.bias_hh + j]);
            }
            for (Index j = 0; j < H; ++j)
                bias_hn[j] = o.bias_hh < 0 || !dims.gru ? T(0) : args.weights[o.bias_hh + 2 * H + j];
            const Index first_state = dims.state_before(direction, dims.time(direction, 0));
            const Index state_values = dims.batch * H;
            const Index source = (layer * dims.directions + direction) * state_values;
            copy_or_zero(states(layer, direction) + slot(first_state), args.h0 ? args.h0 + source : nullptr, state_values);
            if (dims.lstm)
                copy_or_zero(cells(layer, direction) + slot(first_state), args.c0 ? args.c0 + source : nullptr,
                             state_values);
        }
    }

    static void copy_or_zero(T* destination, const T* source, Index count) {
        if (source) {
            std::memcpy(destination, source, count * sizeof(T));
        } else {
            std::memset(destination, 0, count * sizeof(T));
        }
    }

    // gates[t, b, d*G*H + j] = (W_ih x)[j] + biases, for all T*B rows at once.
    void project_inputs(Index layer, const Worker& worker) {
        const Index rows = dims.rows(), input_size = dims.input_size(layer), GH = dims.gate_rows();
        const T* input = layer_input(layer);
        T* gates_buffer = gates(layer);
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            const T* bias = args.scratch + scratch.bias + direction * GH;
            linear_rows(worker, gates_buffer + direction * GH, dims.gates_ld(), input, args.weights + o.weight_ih,
                        o.ih_stride, bias, rows, GH, input_size, gemm_scratch(worker.thread));
        }
    }

    // One time step of every direction (or, for the two-phase GRU, one of its phases).
    void step(Index layer, Index s, const Worker& worker, bool candidate_phase) {
        for_step_tiles(dims, worker, [&](Index direction, Index u, Index row_begin, Index row_end) {
            step_item(layer, direction, s, u, row_begin, row_end, candidate_phase);
        });
    }

    void step_item(Index layer, Index direction, Index s, Index u, Index row_begin, Index row_end,
                   bool candidate_phase) {
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, P = dims.panels, B = dims.batch;
        const Index t = dims.time(direction, s);
        const Index unit0 = u * width, units = min_of<Index>(width, H - unit0);
        const ParamOffsets o = offsets(layer, direction);
        const T* w_hh = args.weights + o.weight_hh;
        const T* packed = args.scratch + scratch.packed + direction * scratch.packed_size;
        T* state = states(layer, direction);
        T* cell = dims.lstm ? cells(layer, direction) : nullptr;
        const T* h_prev = state + slot(dims.state_before(direction, t));
        T* extra_t = dims.gru ? extra(layer, direction, t) : nullptr;
        // The two-phase GRU's candidate product multiplies r*h_{t-1}, not h_{t-1}.
        const T* a = candidate_phase ? extra_t : h_prev;
        const Index first_gate = candidate_phase ? 2 : 0;
        const Index gate_end = two_phase && !candidate_phase ? 2 : dims.gates;
        const Index gate_stride = kTileRows * width;
        // The cell reads whole vectors of the tile; dot_rows leaves the lanes past `units` unset.
        alignas(64) T tile[4 * kTileRows * width];
        if (dot && units < width) std::memset(tile, 0, sizeof tile);

        ForwardTile<T> f{};
        f.units = units;
        f.hidden = H;
        f.recurrent = tile;
        f.gate_stride = gate_stride;
        f.gates_ld = dims.gates_ld();
        f.store_gates = args.training;
        f.state_ld = H;
        f.bias_hn = args.scratch + scratch.bias_hn + direction * H + unit0;
        f.y_ld = dims.output_ld();
        f.t = t;
        for (Index row = row_begin; row < row_end; row += kTileRows) {
            const Index rows = min_of<Index>(kTileRows, row_end - row);
            for (Index g = first_gate; g < gate_end; ++g) {
                if (dot) {
                    dot_rows(tile + g * gate_stride, width, a + row * H, H, rows, w_hh + (g * H + unit0) * o.hh_stride,
                             o.hh_stride, units, H);
                } else {
                    micro_tile<T, ALayout::row>(rows, H, a + row * H, H, packed_panel(packed + (g * P + u) * H * width),
                                                fresh_tile(tile + g * gate_stride));
                }
            }
            f.rows = rows;
            f.gates = gates(layer) + (t * B + row) * dims.gates_ld() + direction * dims.gate_rows() + unit0;
            f.h_prev = h_prev + row * H + unit0;
            f.h_next = state + slot(dims.state_after(direction, t)) + row * H + unit0;
            f.c_prev = cell ? cell + slot(dims.state_before(direction, t)) + row * H + unit0 : nullptr;
            f.c_next = cell ? cell + slot(dims.state_after(direction, t)) + row * H + unit0 : nullptr;
            f.extra = extra_t ? extra_t + row * H + unit0 : nullptr;
            f.y = layer_output(layer) + (t * B + row) * dims.output_ld() + direction * H + unit0;
            f.lengths = args.lengths ? args.lengths + row : nullptr;
            Cell::forward_step(f, candidate_phase);
        }
    }

    // Final states out, and dropout on the output feeding the next layer.
    void finish_layer(Index layer, const Worker& worker) {
        const Index state_values = dims.batch * dims.hidden;
        if (worker.thread == 0) {
            for (Index direction = 0; direction < dims.directions; ++direction) {
                const Index last = slot(dims.state_after(direction, dims.time(direction, dims.steps - 1)));
                const Index target = (layer * dims.directions + direction) * state_values;
                std::memcpy(args.hn + target, states(layer, direction) + last, state_values * sizeof(T));
                if (dims.lstm) std::memcpy(args.cn + target, cells(layer, direction) + last, state_values * sizeof(T));
            }
        }
        if (args.training && args.dropout > 0 && layer < dims.layers - 1) {
            const Index count = dims.rows() * dims.output_ld();
            const Range range = worker.share(count, 64);
            apply_dropout(layer_output(layer) + range.begin, range.end - range.begin, range.begin, args.dropout,
                          args.dropout_seed, layer);
        }
    }
};

template <class Cell, class T> struct BackwardRun {
    static constexpr bool two_phase = !Cell::single_phase;
    const BackwardArgs<T>& args;
    Dims dims;
    StoredLayout<T> stored;
    // A batch of a row or two runs each step's product dgates W_hh as gemv_row on W_hh in place:
    // packing it would cost more than the short sequences of such models gain from it.
    bool dot;
    BackwardScratchLayout<T> scratch;

    BackwardRun(const BackwardArgs<T>& a, const Dims& d)
        : args(a), dims(d), stored(d), dot(use_dot_recurrent(d.batch)), scratch(d, a.threads, dot) {}

    static void body(void* context, int thread, int team) {
        static_cast<BackwardRun*>(context)->run(Worker{thread, team});
    }

    T* gates(Index layer) const { return args.stored + stored.gates(layer); }
    const T* states(Index layer, Index direction) const { return args.stored + stored.states(layer, direction); }
    const T* cells(Index layer, Index direction) const { return args.stored + stored.cells(layer, direction); }
    T* extra(Index layer, Index direction) const { return args.stored + stored.extra(layer, direction); }
    Index slot(Index i) const { return i * dims.batch * dims.hidden; }
    const T* layer_input(Index layer) const {
        return layer == 0 ? args.x : args.stored + stored.output(layer - 1);
    }
    const T* output_gradient(Index layer) const {
        return layer == dims.layers - 1 ? args.dy : args.scratch + scratch.gradient(layer);
    }
    T* dh_partial(Index direction) const { return args.scratch + scratch.dh_partial + direction * scratch.carry_size; }
    T* dc(Index direction) const { return args.scratch + scratch.dc + direction * scratch.carry_size; }
    T* packed(Index direction) const { return args.scratch + scratch.packed + direction * scratch.packed_size; }
    T* gemm_scratch(int thread) const { return args.scratch + scratch.gemm + thread * scratch.gemm_size; }
    ParamOffsets offsets(Index layer, Index direction) const {
        return param_offsets(dims.config, layer, direction);
    }

    void run(const Worker& worker) {
        // The iteration after the last step only computes dh0.
        const Index iterations = dims.steps + (args.dh0 ? 1 : 0);
        for (Index layer = dims.layers - 1; layer >= 0; --layer) {
            prepare_layer(layer, worker);
            worker.barrier();
            for (Index s = 0; s < iterations; ++s) {
                step(layer, s, worker, false);
                worker.barrier();
                if (two_phase && s < dims.steps) {
                    step(layer, s, worker, true);
                    worker.barrier();
                }
            }
            weight_gradients(layer, worker);
            input_gradient(layer, worker);
            worker.barrier();
        }
    }

    // Packs W_hh [G*H, H] into panels of hidden units for dh_{t-1} = dgates_t W_hh (unless dot),
    // and sets dc.
    void prepare_layer(Index layer, const Worker& worker) {
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, P = dims.panels, GH = dims.gate_rows();
        const Range panels = worker.share(dot ? 0 : dims.directions * P, 1);
        for (Index index = panels.begin; index < panels.end; ++index) {
            const Index direction = index / P, u = index % P;
            const ParamOffsets o = offsets(layer, direction);
            const Index first = u * width, count = min_of<Index>(width, H - first);
            const MatrixView<T> columns{args.weights + o.weight_hh + first, o.hh_stride, 1};
            pack_b(packed(direction) + first * GH, columns, GH, count);
        }
        if (worker.thread != 0 || !dims.lstm) return;
        const Index state_values = dims.batch * H;
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const Index source = (layer * dims.directions + direction) * state_values;
            if (args.dcn) {
                std::memcpy(dc(direction), args.dcn + source, state_values * sizeof(T));
            } else {
                std::memset(dc(direction), 0, state_values * sizeof(T));
            }
        }
    }

    // Iteration s of the backward time loop: dL/dh for the step processed at s (the caller's
    // dhn at s = 0, else dgates of step s-1 times W_hh plus dh_partial), then the cell's
    // backward step; at s = T that gradient is dh0. In the two-phase GRU's reset phase: the
    // product dL/d(r*h) = dn W_hn and the reset gate's gradient.
    void step(Index layer, Index s, const Worker& worker, bool reset_phase) {
        if (!dot) {
            for_step_tiles(dims, worker, [&](Index direction, Index u, Index row_begin, Index row_end) {
                step_item(layer, direction, s, u, row_begin, row_end, reset_phase, nullptr);
            });
            return;
        }
        // This thread's panels of each direction (a run of them; the batch is one chunk): one
        // gemv_row pass over their units for each row, then the cells panel by panel.
        constexpr int width = panel_width<T>();
        const Index P = dims.panels, H = dims.hidden, B = dims.batch;
        const Range items = worker.share(dims.directions * P, 1);
        for (Index item = items.begin; item < items.end;) {
            const Index direction = item / P, first = item % P, end = min_of(P, first + items.end - item);
            T* products = args.scratch + scratch.products + worker.thread * scratch.products_size +
                          direction * B * scratch.products_ld;
            if (reset_phase || s > 0) {   // s = 0 starts from dhn
                const Index unit0 = first * width, units = min_of(end * width, H) - unit0;
                const ParamOffsets o = offsets(layer, direction);
                const T* w_hh = args.weights + o.weight_hh + unit0;
                Segment<T> segments[2];
                const int count = product_segments(layer, direction, s, 0, reset_phase, segments);
                for (Index r = 0; r < B; ++r)
                    for (int g = 0; g < count; ++g)
                        gemv_row(products + r * scratch.products_ld + unit0, segments[g].a + r * segments[g].lda,
                                 w_hh + segments[g].panel_offset * o.hh_stride, o.hh_stride, units, segments[g].depth,
                                 g > 0);
            }
            for (Index u = first; u < end; ++u) step_item(layer, direction, s, u, 0, B, reset_phase, products);
            item += end - first;
        }
    }

    // The depth segments of step s's product for rows from `row`: dn W_hn in the GRU's reset
    // phase, else dgates of step s-1 (s > 0) times W_hh, the GRU's n block from extra with
    // linear_before_reset. Returns their count.
    int product_segments(Index layer, Index direction, Index s, Index row, bool reset_phase, Segment<T>* segments) const {
        const Index H = dims.hidden, B = dims.batch, GH = dims.gate_rows(), ld = dims.gates_ld();
        T* gates_buffer = gates(layer) + direction * GH;
        if (reset_phase) {
            // dL/d(r*h_{t-1}) = dn_t W_hn
            segments[0] = {gates_buffer + (time(direction, s) * B + row) * ld + 2 * H, ld, H, 2 * H};
            return 1;
        }
        const Index t_prev = time(direction, s - 1);
        const T* dgates_prev = gates_buffer + (t_prev * B + row) * ld;
        if (!dims.gru) {
            segments[0] = {dgates_prev, ld, GH, 0};
            return 1;
        }
        segments[0] = {dgates_prev, ld, 2 * H, 0};
        if (!dims.config.linear_before_reset) return 1;
        // The n block of dL/d(W_hh h) is dn*r, kept in extra.
        segments[1] = {extra(layer, direction) + (t_prev * B + row) * H, H, H, 2 * H};
        return 2;
    }

    // Time processed by direction d at backward iteration s (the reverse of the forward order).
    Index time(Index direction, Index s) const { return direction == 0 ? dims.steps - 1 - s : s; }

    // Panel u of step s for rows [row_begin, row_end): dL/dh into a tile (its product computed
    // here, or already in `products` [B, products_ld] by unit when dot), then the cell's step.
    // Not inlined: inside run() the compiler spills the micro-kernel's accumulators.
    __attribute__((noinline)) void step_item(Index layer, Index direction, Index s, Index u, Index row_begin, Index row_end,
                   bool reset_phase, T* products) {
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, B = dims.batch, GH = dims.gate_rows(), ld = dims.gates_ld();
        const Index unit0 = u * width, units = min_of<Index>(width, H - unit0);
        const Index state_values = B * H;
        const Index stack_index = layer * dims.directions + direction;
        T* gates_buffer = gates(layer) + direction * GH;
        // The cell reads whole vectors of the tile; the dhn copy (s == 0) and gemv_row set only the
        // lanes below `units`, segment_product the full width.
        alignas(64) T local_tile[kTileRows * width];
        const Index tile_ld = products ? scratch.products_ld : width;
        if (s == 0 && units < width) {
            if (products) {
                for (Index r = 0; r < B; ++r)
                    std::memset(products + r * tile_ld + unit0 + units, 0, (width - units) * sizeof(T));
            } else {
                std::memset(local_tile, 0, sizeof local_tile);
            }
        }

        BackwardTile<T> b{};
        b.units = units;
        b.hidden = H;
        b.product_ld = tile_ld;
        b.dy_ld = dims.output_ld();
        b.gates_ld = ld;
        b.state_ld = H;
        for (Index row = row_begin; row < row_end; row += kTileRows) {
            const Index rows = min_of<Index>(kTileRows, row_end - row);
            const Index t = s < dims.steps ? time(direction, s) : -1;
            // With dot, the batch is one chunk of rows starting at 0.
            T* row_tile = products ? products + row * tile_ld + unit0 : local_tile;
            if (!reset_phase && s == 0) {
                for (Index r = 0; r < rows; ++r)
                    for (Index j = 0; j < units; ++j)
                        row_tile[r * tile_ld + j] =
                            args.dhn ? args.dhn[stack_index * state_values + (row + r) * H + unit0 + j] : T(0);
            } else if (!products) {
                Segment<T> segments[2];
                const int count = product_segments(layer, direction, s, row, reset_phase, segments);
                segment_product(rows, segments, count, packed_panel(packed(direction) + u * GH * width), row_tile);
            }
            if (!reset_phase && s > 0) add_rows(row_tile, tile_ld, dh_partial(direction) + row * H + unit0, H, rows, units);
            if (s == dims.steps) {
                T* dh0 = args.dh0 + stack_index * state_values + row * H + unit0;
                for (Index r = 0; r < rows; ++r)
                    std::memcpy(dh0 + r * H, row_tile + r * tile_ld, units * sizeof(T));
                continue;
            }
            const T* state = states(layer, direction);
            b.rows = rows;
            b.product = row_tile;
            b.dy = output_gradient(layer) + (t * B + row) * dims.output_ld() + direction * H + unit0;
            b.gates = gates_buffer + (t * B + row) * ld + unit0;
            b.h_prev = state + slot(dims.state_before(direction, t)) + row * H + unit0;
            b.h_next = state + slot(dims.state_after(direction, t)) + row * H + unit0;
            if (dims.lstm) {
                const T* cell = cells(layer, direction);
                b.c_prev = cell + slot(dims.state_before(direction, t)) + row * H + unit0;
                b.c_next = cell + slot(dims.state_after(direction, t)) + row * H + unit0;
            }
            b.dc = dc(direction) + row * H + unit0;
            b.dh_partial = dh_partial(direction) + row * H + unit0;
            b.extra = dims.gru ? extra(layer, direction) + (t * B + row) * H + unit0 : nullptr;
            b.lengths = args.lengths ? args.lengths + row : nullptr;
            b.t = t;
            Cell::backward_step(b, reset_phase);
        }
    }

    // dW_ih += dgates^T x, dW_hh += dgates_h^T h_prev, bias gradients: products over all T*B
    // rows, each split by output rows over the threads.
    void weight_gradients(Index layer, const Worker& worker) {
        const Index H = dims.hidden, B = dims.batch, GH = dims.gate_rows(), ld = dims.gates_ld();
        if (args.dc0 && worker.thread == 0) {
            // The cell-state carry is dL/dc0 once the time loop is done.
            const Index state_values = B * H;
            for (Index direction = 0; direction < dims.directions; ++direction)
                std::memcpy(args.dc0 + (layer * dims.directions + direction) * state_values, dc(direction),
                            state_values * sizeof(T));
        }
        const Index rows = dims.rows(), input_size = dims.input_size(layer);
        const PaddedRows padding{args.lengths, B};
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            T* dgates = gates(layer) + direction * GH;
            const MatrixView<T> dgates_t{dgates, 1, ld};   // [G*H, T*B]
            // States feeding the T steps are T consecutive slots (see the layout note above).
            const T* h_prev = states(layer, direction) + (direction == 0 ? 0 : slot(1));
            const MatrixView<T> h_prev_rows{h_prev, H, 1};
            const Range gate_rows = worker.share(GH, kTileRows);
            const bool accumulate = !args.overwrite_grads;
            gemm_rows(ProductOutput<T>{args.grads + o.weight_ih, o.ih_stride, accumulate, nullptr}, dgates_t,
                      MatrixView<T>{layer_input(layer), input_size, 1}, gate_rows.begin, gate_rows.end, input_size,
                      rows, gemm_scratch(worker.thread), padding);
            T* dw_hh = args.grads + o.weight_hh;
            if (dims.gru) {
                // r and z rows multiply h_{t-1}; the n rows are dn*r times h_{t-1} (linear before
                // reset) or dn times r*h_{t-1}.
                const Range rz = worker.share(2 * H, kTileRows);
                gemm_rows(ProductOutput<T>{dw_hh, o.hh_stride, accumulate, nullptr}, dgates_t, h_prev_rows, rz.begin,
                          rz.end, H, rows, gemm_scratch(worker.thread), padding);
                const Range n = worker.share(H, kTileRows);
                const bool lbr = dims.config.linear_before_reset;
                const MatrixView<T> a = lbr ? MatrixView<T>{extra(layer, direction), 1, H}
                                            : MatrixView<T>{dgates + 2 * H, 1, ld};
                const MatrixView<T> b = lbr ? h_prev_rows : MatrixView<T>{extra(layer, direction), H, 1};
                gemm_rows(ProductOutput<T>{dw_hh + 2 * H * o.hh_stride, o.hh_stride, accumulate, nullptr}, a, b,
                          n.begin, n.end, H, rows, gemm_scratch(worker.thread), padding);
            } else {
                gemm_rows(ProductOutput<T>{dw_hh, o.hh_stride, accumulate, nullptr}, dgates_t, h_prev_rows,
                          gate_rows.begin, gate_rows.end, H, rows, gemm_scratch(worker.thread), padding);
            }
            if (o.bias_ih >= 0) bias_gradients(layer, direction, o, worker);
        }
    }

    // Column sums of the gate gradients; columns split over the threads.
    void bias_gradients(Index layer, Index direction, const ParamOffsets& o, const Worker& worker) {
        const Index H = dims.hidden, GH = dims.gate_rows(), ld = dims.gates_ld();
        const T* dgates = gates(layer) + direction * GH;
        const Range columns = worker.share(GH, 16);
        T* db_ih = args.grads + o.bias_ih;
        T* db_hh = args.grads + o.bias_hh;
        const Index rows = dims.rows();
        const bool accumulate = !args.overwrite_grads;
        add_column_sums(db_ih, dgates, ld, rows, columns.begin, columns.end, accumulate);
        if (dims.gru && dims.config.linear_before_reset) {
            // The GRU's dL/d(b_hn) is dn*r (kept in extra), not dn.
            add_column_sums(db_hh, dgates, ld, rows, columns.begin, min_of(columns.end, 2 * H), accumulate);
            add_column_sums(db_hh + 2 * H, extra(layer, direction), H, rows, max_of<Index>(columns.begin - 2 * H, 0),
                            columns.end - 2 * H, accumulate);
        } else {
            add_column_sums(db_hh, dgates, ld, rows, columns.begin, columns.end, accumulate);
        }
    }

    // dx = sum_d dgates_d W_ih_d: the gradient of the layer below (with its dropout), or the
    // caller's dx for layer 0. Threads split the rows; with only a row tile or two, where each
    // would read all of W_ih, they split the columns instead.
    void input_gradient(Index layer, const Worker& worker) {
        T* dx = layer > 0 ? args.scratch + scratch.gradient(layer - 1) : args.dx;
        if (!dx) return;
        const Index GH = dims.gate_rows(), ld = dims.gates_ld(), input_size = dims.input_size(layer);
        const bool split_columns = dims.rows() <= kRowsReadingBInPlace;
        const Range rows = split_columns ? Range{0, dims.rows()} : worker.share(dims.rows(), kTileRows);
        const Range columns = split_columns ? worker.share(input_size, panel_width<T>()) : Range{0, input_size};
        if (columns.begin == columns.end) return;
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            const T* w_ih = args.weights + o.weight_ih;
            gemm_rows(ProductOutput<T>{dx + columns.begin, input_size, direction > 0, nullptr},
                      MatrixView<T>{gates(layer) + direction * GH, ld, 1},
                      MatrixView<T>{w_ih + columns.begin, o.ih_stride, 1}, rows.begin, rows.end,
                      columns.end - columns.begin, GH, gemm_scratch(worker.thread));
        }
        if (layer == 0 || args.dropout <= 0) return;
        for (Index row = rows.begin; row < rows.end; ++row) {
            const Index first = row * input_size + columns.begin;
            apply_dropout(dx + first, columns.end - columns.begin, first, args.dropout, args.dropout_seed, layer - 1);
        }
    }
};

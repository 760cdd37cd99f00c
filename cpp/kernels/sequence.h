// Stacked, bidirectional recurrent layers over whole sequences, for any cell: ForwardRun and
// BackwardRun take the cell's type (cells/cell.h says what it provides) and never ask which
// cell it is. Per layer: the input projection of all time steps as one product; per time step
// one product with W_hh whose output tiles go straight through the cell's elementwise step;
// in backward only dh_{t-1} = dgates_t W_hh stays on the sequential path, and the weight
// gradients and dx are single products over all T*B rows after the time loop.
// One parallel run per call (threads.h): a sequence of phases per layer, each cut into items
// that any thread may run (parallel.h); a phase starts once the previous one has finished.
// Buffers and their layouts: workspace.h.
//
// Included inside namespace fastrnn::<isa> after cells/, workspace.h and rows.h.

// Batch sizes up to this run the recurrent product as dot products on the unpacked W_hh:
// packing would cost as much as the whole call when the next call (generation) repeats it.
constexpr Index kDotBatch = 2;
// Below this many flops per time step, a second thread costs more in barriers than it saves.
constexpr double kParallelStepFlops = 50e3;

inline bool use_dot_recurrent(Index batch) { return batch <= kDotBatch; }

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
inline int useful_threads_for(const StackConfig& config, Index batch, int available) {
    const double step_flops = 2.0 * double(batch) * double(config.gates()) * double(config.hidden_size) *
                              double(config.hidden_size) * double(config.directions);
    return step_flops < kParallelStepFlops ? 1 : available;
}

// Sum of tile products over depth segments (cells/cell.h): tile = sum_s A_s[rows, depth_s] *
// panel rows [offset_s, offset_s + depth_s).
template <class T>
inline void segment_product(Index rows, const Segment<T>* segments, int count, Panel<T> panel, T* tile) {
    for (int s = 0; s < count; ++s)
        micro_tile<T, ALayout::row>(rows, segments[s].depth, segments[s].a, segments[s].lda,
                                    panel.rows_from(segments[s].panel_offset),
                                    ProductOutput<T>{tile, panel_width<T>(), s > 0, nullptr});
}

// The items of one time step: tiles of (row chunk, direction, unit panel), chunk by chunk, so
// that consecutive items (one thread's share, on an idle machine) take whole chunks across all
// panels. Rows are cut into chunks (of whole kTileRows tiles, as even as they go) only when
// there are too few unit panels to share out between the threads.
struct StepTiles {
    Index batch, panels, per_chunk, chunks;

    StepTiles(const Dims& dims, int threads)
        : batch(dims.batch), panels(dims.panels), per_chunk(dims.directions * dims.panels),
          chunks(threads > 1 && per_chunk < 2 * threads ? (2 * threads + per_chunk - 1) / per_chunk : 1) {}

    Index count() const { return chunks * per_chunk; }
    // Calls tile(direction, unit_panel, row_begin, row_end) for item `item`.
    template <class Tile> void run(Index item, Tile&& tile) const {
        const Index chunk = item / per_chunk, direction = item % per_chunk / panels, u = item % panels;
        const Range rows = split_range(batch, chunk, chunks, kTileRows);
        if (rows.begin < rows.end) tile(direction, u, rows.begin, rows.end);
    }
};

template <class Cell, class T> struct ForwardRun {
    const ForwardArgs<T>& args;
    Dims dims;
    bool dot;
    StoredLayout<Cell, T> stored;
    ForwardScratchLayout<Cell, T> scratch;
    StepTiles tiles;
    Parts dropout_parts;
    // Phases of a layer: prepare, project, the time steps (Cell::phases each), finish.
    Index step_phases, layer_phases;

    ForwardRun(const ForwardArgs<T>& a, const Dims& d)
        : args(a), dims(d), dot(use_dot_recurrent(d.batch)), stored(d), scratch(d, a.training, dot, a.threads),
          tiles(d, a.threads),
          dropout_parts(a.training && a.dropout > 0 ? d.rows() * d.output_ld() : 0, 64, max_parts(a.threads, kPartsPerThread)),
          step_phases(Cell::phases), layer_phases(3 + d.steps * step_phases) {}

    T* gates(Index layer) const {
        return args.training ? args.stored + stored.gates(layer) : args.scratch + scratch.projection;
    }
    // State part `part` (0: h, 1: c) of a direction.
    T* states(Index layer, Index direction, int part = 0) const {
        return args.training ? args.stored + stored.states(layer, direction, part)
                             : args.scratch + scratch.states + 2 * (part * dims.directions + direction) * scratch.state_size;
    }
    // State slot i of a direction: all T+1 in training, two alternating ones in inference.
    Index slot(Index i) const { return (args.training ? i : i % 2) * dims.batch * dims.hidden; }
    // The cell's kept values of step t: all T in training, one slot in inference.
    T* kept(Index layer, Index direction, Index t) const {
        return args.training ? args.stored + stored.kept(layer, direction) + t * dims.batch * dims.hidden
                             : args.scratch + scratch.kept + direction * scratch.state_size;
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

    LinearRows<T> projection(Index layer, Index direction) const {
        const Index GH = dims.gate_rows();
        const ParamOffsets o = offsets(layer, direction);
        return {gates(layer) + direction * GH, dims.gates_ld(), layer_input(layer), args.weights + o.weight_ih,
                o.ih_stride, args.scratch + scratch.bias + direction * GH, dims.rows(), GH, dims.input_size(layer)};
    }
    Index packed_panels() const { return dot ? 0 : dims.directions * dims.gate_count * dims.panels; }
    Index dropout_items(Index layer) const { return layer < dims.layers - 1 ? dropout_parts.parts : 0; }

    Index items(Index phase) const {
        if (phase >= dims.layers * layer_phases) return -1;
        const Index layer = phase / layer_phases, k = phase % layer_phases;
        if (k == 0) return packed_panels() + 1;
        if (k == 1) return dims.directions * projection(layer, 0).parts(args.threads).parts;
        if (k == layer_phases - 1) return 1 + dropout_items(layer);
        return tiles.count();
    }

    void run_item(Index phase, Index item, int thread) {
        const Index layer = phase / layer_phases, k = phase % layer_phases;
        if (k == 0) {
            if (item < packed_panels()) {
                pack_panel(layer, item);
            } else {
                set_biases_and_states(layer);
            }
        } else if (k == 1) {
            const Parts parts = projection(layer, 0).parts(args.threads);
            projection(layer, item / parts.parts).run(parts[item % parts.parts], gemm_scratch(thread));
        } else if (k == layer_phases - 1) {
            if (item == 0) {
                final_states(layer);
            } else {
                const Range range = dropout_parts[item - 1];
                apply_dropout(layer_output(layer) + range.begin, range.end - range.begin, range.begin, args.dropout,
                              args.dropout_seed, layer);
            }
        } else {
            const Index s = (k - 2) / step_phases;
            const int step_phase = static_cast<int>((k - 2) % step_phases);
            tiles.run(item, [&](Index direction, Index u, Index row_begin, Index row_end) {
                step_item(layer, direction, s, u, row_begin, row_end, step_phase);
            });
        }
    }

    // Packs panel `index` of W_hh^T, gate by gate (panel (g, u) covers units [u*width,
    // (u+1)*width) of gate g).
    void pack_panel(Index layer, Index index) {
        const Index H = dims.hidden, G = dims.gate_count, P = dims.panels;
        constexpr int width = panel_width<T>();
        const Index direction = index / (G * P), g = index / P % G, u = index % P;
        const ParamOffsets o = offsets(layer, direction);
        const T* w_hh = args.weights + o.weight_hh;
        const Index first = u * width, count = min_of<Index>(width, H - first);
        pack_b(args.scratch + scratch.packed + direction * scratch.packed_size + (g * P + u) * width * H,
               MatrixView<T>{w_hh + (g * H + first) * o.hh_stride, 1, o.hh_stride}, H, count);
    }

    // Sums the biases the projection adds (b_ih + b_hh, b_ih alone in the gate blocks whose b_hh
    // the cell adds itself: Cell::separate_bias_blocks), and sets the initial states.
    void set_biases_and_states(Index layer) {
        const Index H = dims.hidden, GH = dims.gate_rows();
        const Index separate_begin = GH - scratch.separate_bias_size;
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            T* bias = args.scratch + scratch.bias + direction * GH;
            T* separate_bias = args.scratch + scratch.separate_bias + direction * scratch.separate_bias_size;
            for (Index j = 0; j < GH; ++j) {
                const bool separate = j >= separate_begin;
                bias[j] = o.bias_ih < 0 ? T(0)
                                        : args.weights[o.bias_ih + j] + (separate ? T(0) : args.weights[o.bias_hh + j]);
            }
            for (Index j = 0; j < scratch.separate_bias_size; ++j)
                separate_bias[j] = o.bias_hh < 0 ? T(0) : args.weights[o.bias_hh + separate_begin + j];
            const Index first_state = dims.state_before(direction, dims.forward_time(direction, 0));
            const Index state_values = dims.batch * H;
            const Index source = (layer * dims.directions + direction) * state_values;
            const T* initial[2] = {args.h0, args.c0};
            for (int part = 0; part < Cell::state_parts; ++part)
                copy_or_zero(states(layer, direction, part) + slot(first_state),
                             initial[part] ? initial[part] + source : nullptr, state_values);
        }
    }

    static void copy_or_zero(T* destination, const T* source, Index count) {
        if (source) {
            std::memcpy(destination, source, count * sizeof(T));
        } else {
            std::memset(destination, 0, count * sizeof(T));
        }
    }

    void step_item(Index layer, Index direction, Index s, Index u, Index row_begin, Index row_end, int phase) {
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, P = dims.panels, B = dims.batch;
        const Index t = dims.forward_time(direction, s);
        const Index unit0 = u * width, units = min_of<Index>(width, H - unit0);
        const ParamOffsets o = offsets(layer, direction);
        const T* w_hh = args.weights + o.weight_hh;
        const T* packed = args.scratch + scratch.packed + direction * scratch.packed_size;
        T* state = states(layer, direction);
        T* cell_state = Cell::state_parts > 1 ? states(layer, direction, 1) : nullptr;
        const T* h_prev = state + slot(dims.state_before(direction, t));
        T* kept_t = Cell::kept_values > 0 ? kept(layer, direction, t) : nullptr;
        const ForwardProduct product = Cell::forward_product(phase);
        const T* a = product.of_kept ? kept_t : h_prev;
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
        f.separate_bias = Cell::separate_bias_blocks > 0
                              ? args.scratch + scratch.separate_bias + direction * scratch.separate_bias_size + unit0
                              : nullptr;
        f.y_ld = dims.output_ld();
        f.t = t;
        for (Index row = row_begin; row < row_end; row += kTileRows) {
            const Index rows = min_of<Index>(kTileRows, row_end - row);
            for (Index g = product.first_gate; g < product.end_gate; ++g) {
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
            f.c_prev = cell_state ? cell_state + slot(dims.state_before(direction, t)) + row * H + unit0 : nullptr;
            f.c_next = cell_state ? cell_state + slot(dims.state_after(direction, t)) + row * H + unit0 : nullptr;
            f.kept = kept_t ? kept_t + row * H + unit0 : nullptr;
            f.y = layer_output(layer) + (t * B + row) * dims.output_ld() + direction * H + unit0;
            f.lengths = args.lengths ? args.lengths + row : nullptr;
            Cell::forward_step(f, phase);
        }
    }

    // The layer's final states out.
    void final_states(Index layer) {
        const Index state_values = dims.batch * dims.hidden;
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const Index last = slot(dims.state_after(direction, dims.forward_time(direction, dims.steps - 1)));
            const Index target = (layer * dims.directions + direction) * state_values;
            T* out[2] = {args.hn, args.cn};
            for (int part = 0; part < Cell::state_parts; ++part)
                std::memcpy(out[part] + target, states(layer, direction, part) + last, state_values * sizeof(T));
        }
    }
};

template <class Cell, class T> struct BackwardRun {
    const BackwardArgs<T>& args;
    Dims dims;
    StoredLayout<Cell, T> stored;
    // A batch of a row or two runs each step's product dgates W_hh as gemv_row on W_hh in place:
    // packing it would cost more than the short sequences of such models gain from it.
    bool dot;
    BackwardScratchLayout<Cell, T> scratch;
    StepTiles tiles;
    // Phases of a layer: prepare, the time loop's iterations (Cell::phases each, and one more
    // for dh0 when asked for), gradients.
    Index step_phases, layer_phases;
    // The gradients phase, per direction: rows of dW_ih, of dW_hh (the cell's own rows,
    // Cell::own_hh_blocks, another product, separately: parts align to tiles in each product's
    // own rows, so that every element is summed the same way for any thread count), bias
    // columns; then dx.
    Parts ih_parts, hh_parts, own_hh_parts, bias_parts;
    // With only a row tile or two, where each part of dx would read all of W_ih, parts split
    // its columns instead of its rows.
    bool input_split_columns;

    BackwardRun(const BackwardArgs<T>& a, const Dims& d)
        : args(a), dims(d), stored(d), dot(use_dot_recurrent(d.batch)), scratch(d, a.threads, dot), tiles(d, a.threads),
          step_phases(Cell::phases),
          layer_phases(2 + d.steps * step_phases + (a.dh0 ? 1 : 0)),
          ih_parts(d.gate_rows(), kTileRows, max_parts(a.threads, kProductPartsPerThread)),
          hh_parts(d.gate_rows() - Cell::own_hh_blocks * d.hidden, kTileRows,
                   max_parts(a.threads, kProductPartsPerThread)),
          own_hh_parts(Cell::own_hh_blocks * d.hidden, kTileRows, max_parts(a.threads, kProductPartsPerThread)),
          bias_parts(d.config.has_bias ? d.gate_rows() : 0, 16, max_parts(a.threads, kPartsPerThread)),
          input_split_columns(d.rows() <= kRowsReadingBInPlace) {}

    T* gates(Index layer) const { return args.stored + stored.gates(layer); }
    // State part `part` (0: h, 1: c) of a direction.
    const T* states(Index layer, Index direction, int part = 0) const {
        return args.stored + stored.states(layer, direction, part);
    }
    // The cell's kept values of every step, or null for a cell without.
    T* kept(Index layer, Index direction) const {
        return Cell::kept_values > 0 ? args.stored + stored.kept(layer, direction) : nullptr;
    }
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

    Index packed_panels() const { return dot ? 0 : dims.directions * dims.panels; }
    // The dot path's step items: groups of panels as wide as one gemv_row chunk (kGemvVectors
    // vectors, two per panel), each one pass over its units with every sum in a register.
    static constexpr Index kPanelGroup = kGemvVectors / 2;
    Index panel_groups() const { return (dims.panels + kPanelGroup - 1) / kPanelGroup; }
    Index step_items() const { return dot ? dims.directions * panel_groups() : tiles.count(); }
    Parts input_gradient_parts(Index layer) const {
        if (!args.dx && layer == 0) return Parts(0, 1, 1);
        return input_split_columns ? Parts(dims.input_size(layer), panel_width<T>(), max_parts(args.threads, kPartsPerThread))
                                   : Parts(dims.rows(), kTileRows, max_parts(args.threads, kProductPartsPerThread));
    }
    Index weight_items() const { return ih_parts.parts + hh_parts.parts + own_hh_parts.parts + bias_parts.parts; }
    Index gradient_items(Index layer) const {
        return dims.directions * weight_items() + input_gradient_parts(layer).parts +
               (Cell::state_parts > 1 && args.dc0 ? 1 : 0);
    }

    Index items(Index phase) const {
        if (phase >= dims.layers * layer_phases) return -1;
        const Index layer = dims.layers - 1 - phase / layer_phases, k = phase % layer_phases;
        if (k == 0) return packed_panels() + (Cell::state_parts > 1 ? 1 : 0);
        if (k == layer_phases - 1) return gradient_items(layer);
        return step_items();
    }

    void run_item(Index phase, Index item, int thread) {
        const Index layer = dims.layers - 1 - phase / layer_phases, k = phase % layer_phases;
        if (k == 0) {
            if (item < packed_panels()) {
                pack_panel(layer, item);
            } else {
                set_cell_state_gradient(layer);
            }
        } else if (k == layer_phases - 1) {
            gradient_item(layer, item, thread);
        } else {
            // s = T, after the last step, only computes dh0.
            const Index s = (k - 1) / step_phases;
            const int step_phase = static_cast<int>((k - 1) % step_phases);
            step(layer, s, item, thread, step_phase);
        }
    }

    // Packs panel `index` of W_hh [G*H, H] (columns = hidden units) for dh_{t-1} = dgates_t W_hh.
    void pack_panel(Index layer, Index index) {
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, P = dims.panels, GH = dims.gate_rows();
        const Index direction = index / P, u = index % P;
        const ParamOffsets o = offsets(layer, direction);
        const Index first = u * width, count = min_of<Index>(width, H - first);
        const MatrixView<T> columns{args.weights + o.weight_hh + first, o.hh_stride, 1};
        pack_b(packed(direction) + first * GH, columns, GH, count);
    }

    // dL/dc (the cell state's gradient) at the last step: the caller's dcn, or zeros.
    void set_cell_state_gradient(Index layer) {
        const Index state_values = dims.batch * dims.hidden;
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
    // backward step; at s = T that gradient is dh0. In a later phase of a two-phase cell: that
    // phase's product (Cell::backward_segments), then the cell's step.
    void step(Index layer, Index s, Index item, int thread, int phase) {
        if (!dot) {
            tiles.run(item, [&](Index direction, Index u, Index row_begin, Index row_end) {
                step_item(layer, direction, s, u, row_begin, row_end, phase, nullptr);
            });
            return;
        }
        // A group of panels of one direction (the batch is one chunk): one gemv_row pass over
        // their units for each row, then the cells panel by panel.
        constexpr int width = panel_width<T>();
        const Index H = dims.hidden, B = dims.batch;
        const Index direction = item / panel_groups(), first = item % panel_groups() * kPanelGroup;
        const Index end = min_of(dims.panels, first + kPanelGroup);
        T* products = args.scratch + scratch.products + thread * scratch.products_size +
                      direction * B * scratch.products_ld;
        if (phase > 0 || s > 0) {   // s = 0 starts from dhn
            const Index unit0 = first * width, units = min_of(end * width, H) - unit0;
            const ParamOffsets o = offsets(layer, direction);
            const T* w_hh = args.weights + o.weight_hh + unit0;
            Segment<T> segments[2];
            const int count = product_segments(layer, direction, s, 0, phase, segments);
            for (Index r = 0; r < B; ++r)
                for (int g = 0; g < count; ++g)
                    gemv_row(products + r * scratch.products_ld + unit0, segments[g].a + r * segments[g].lda,
                             w_hh + segments[g].panel_offset * o.hh_stride, o.hh_stride, units, segments[g].depth,
                             g > 0);
        }
        for (Index u = first; u < end; ++u) step_item(layer, direction, s, u, 0, B, phase, products);
    }

    // The depth segments of iteration s's product in phase `phase` for rows from `row`
    // (Cell::backward_segments): phase 0 (s > 0) from the gradients of step s-1, a later phase
    // from those of step s. Returns their count.
    int product_segments(Index layer, Index direction, Index s, Index row, int phase, Segment<T>* segments) const {
        const Index H = dims.hidden, B = dims.batch, GH = dims.gate_rows(), ld = dims.gates_ld();
        const Index source_row = backward_time(direction, phase == 0 ? s - 1 : s) * B + row;
        const T* kept_steps = kept(layer, direction);
        return Cell::backward_segments(phase, gates(layer) + direction * GH + source_row * ld, ld,
                                       kept_steps ? kept_steps + source_row * H : nullptr, H, segments);
    }

    // Time processed by direction d at backward iteration s (the reverse of the forward order).
    Index backward_time(Index direction, Index s) const { return direction == 0 ? dims.steps - 1 - s : s; }

    // Panel u of step s for rows [row_begin, row_end): dL/dh into a tile (its product computed
    // here, or already in `products` [B, products_ld] by unit when dot), then the cell's step.
    // Not inlined: inside run() the compiler spills the micro-kernel's accumulators.
    __attribute__((noinline)) void step_item(Index layer, Index direction, Index s, Index u, Index row_begin, Index row_end,
                   int phase, T* products) {
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
            const Index t = s < dims.steps ? backward_time(direction, s) : -1;
            // With dot, the batch is one chunk of rows starting at 0.
            T* row_tile = products ? products + row * tile_ld + unit0 : local_tile;
            if (phase == 0 && s == 0) {
                for (Index r = 0; r < rows; ++r)
                    for (Index j = 0; j < units; ++j)
                        row_tile[r * tile_ld + j] =
                            args.dhn ? args.dhn[stack_index * state_values + (row + r) * H + unit0 + j] : T(0);
            } else if (!products) {
                Segment<T> segments[2];
                const int count = product_segments(layer, direction, s, row, phase, segments);
                segment_product(rows, segments, count, packed_panel(packed(direction) + u * GH * width), row_tile);
            }
            if (phase == 0 && s > 0) add_rows(row_tile, tile_ld, dh_partial(direction) + row * H + unit0, H, rows, units);
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
            if (Cell::state_parts > 1) {
                const T* cell_state = states(layer, direction, 1);
                b.c_prev = cell_state + slot(dims.state_before(direction, t)) + row * H + unit0;
                b.c_next = cell_state + slot(dims.state_after(direction, t)) + row * H + unit0;
                b.dc = dc(direction) + row * H + unit0;
            }
            b.dh_partial = dh_partial(direction) + row * H + unit0;
            b.kept = Cell::kept_values > 0 ? kept(layer, direction) + (t * B + row) * H + unit0 : nullptr;
            b.lengths = args.lengths ? args.lengths + row : nullptr;
            b.t = t;
            Cell::backward_step(b, phase);
        }
    }

    // Item `item` of the gradients phase: rows of one of a direction's weight gradients, columns
    // of its bias gradients, a part of dx, or dL/dc0.
    void gradient_item(Index layer, Index item, int thread) {
        const Index per_direction = weight_items(), input_items = input_gradient_parts(layer).parts;
        if (item < dims.directions * per_direction) {
            weight_gradients(layer, item / per_direction, item % per_direction, thread);
        } else if (item < dims.directions * per_direction + input_items) {
            input_gradient(layer, input_gradient_parts(layer)[item - dims.directions * per_direction], thread);
        } else {
            // The cell state's carry is dL/dc0 once the time loop is done.
            const Index state_values = dims.batch * dims.hidden;
            for (Index direction = 0; direction < dims.directions; ++direction)
                std::memcpy(args.dc0 + (layer * dims.directions + direction) * state_values, dc(direction),
                            state_values * sizeof(T));
        }
    }

    // Part `part` of a direction's weight-gradient items: rows of dW_ih += dgates^T x, of
    // dW_hh += dgates_h^T h_prev (products over all T*B rows), or columns of the bias gradients.
    void weight_gradients(Index layer, Index direction, Index part, int thread) {
        const Index H = dims.hidden, GH = dims.gate_rows(), ld = dims.gates_ld();
        const Index rows = dims.rows(), input_size = dims.input_size(layer);
        const PaddedRows padding{args.lengths, dims.batch};
        const ParamOffsets o = offsets(layer, direction);
        T* dgates = gates(layer) + direction * GH;
        const MatrixView<T> dgates_t{dgates, 1, ld};   // [G*H, T*B]
        // States feeding the T steps are T consecutive slots (see the layout note above).
        const T* h_prev = states(layer, direction) + (direction == 0 ? 0 : slot(1));
        const MatrixView<T> h_prev_rows{h_prev, H, 1};
        const bool accumulate = !args.overwrite_grads;
        if (part < ih_parts.parts) {
            const Range gate_rows = ih_parts[part];
            gemm_rows(ProductOutput<T>{args.grads + o.weight_ih, o.ih_stride, accumulate, nullptr}, dgates_t,
                      MatrixView<T>{layer_input(layer), input_size, 1}, gate_rows.begin, gate_rows.end, input_size,
                      rows, gemm_scratch(thread), padding);
            return;
        }
        part -= ih_parts.parts;
        T* dw_hh = args.grads + o.weight_hh;
        if (part < hh_parts.parts) {
            const Range gate_rows = hh_parts[part];
            gemm_rows(ProductOutput<T>{dw_hh, o.hh_stride, accumulate, nullptr}, dgates_t, h_prev_rows,
                      gate_rows.begin, gate_rows.end, H, rows, gemm_scratch(thread), padding);
            return;
        }
        part -= hh_parts.parts;
        if constexpr (Cell::own_hh_blocks > 0) {
            if (part < own_hh_parts.parts) {
                const Range own_rows = own_hh_parts[part];
                const ProductOperands<T> p = Cell::own_hh_operands(dgates, ld, h_prev, kept(layer, direction), H);
                T* dw_own = dw_hh + (dims.gate_count - Cell::own_hh_blocks) * H * o.hh_stride;
                gemm_rows(ProductOutput<T>{dw_own, o.hh_stride, accumulate, nullptr}, p.a, p.b, own_rows.begin,
                          own_rows.end, H, rows, gemm_scratch(thread), padding);
                return;
            }
        }
        bias_gradients(layer, direction, bias_parts[part - own_hh_parts.parts]);
    }

    // Columns `columns` of the bias gradients: column sums of the gate gradients.
    void bias_gradients(Index layer, Index direction, Range columns) {
        const ParamOffsets o = offsets(layer, direction);
        const Index H = dims.hidden, GH = dims.gate_rows(), ld = dims.gates_ld();
        const T* dgates = gates(layer) + direction * GH;
        T* db_ih = args.grads + o.bias_ih;
        T* db_hh = args.grads + o.bias_hh;
        const Index rows = dims.rows();
        const bool accumulate = !args.overwrite_grads;
        add_column_sums(db_ih, dgates, ld, rows, columns.begin, columns.end, accumulate);
        Cell::hh_bias_gradient(db_hh, dgates, ld, kept(layer, direction), H, rows, columns, accumulate);
    }

    // A part of dx = sum_d dgates_d W_ih_d (rows, or columns with input_split_columns): the
    // gradient of the layer below (with its dropout), or the caller's dx for layer 0.
    void input_gradient(Index layer, Range part, int thread) {
        T* dx = layer > 0 ? args.scratch + scratch.gradient(layer - 1) : args.dx;
        const Index GH = dims.gate_rows(), ld = dims.gates_ld(), input_size = dims.input_size(layer);
        const Range rows = input_split_columns ? Range{0, dims.rows()} : part;
        const Range columns = input_split_columns ? part : Range{0, input_size};
        for (Index direction = 0; direction < dims.directions; ++direction) {
            const ParamOffsets o = offsets(layer, direction);
            const T* w_ih = args.weights + o.weight_ih;
            gemm_rows(ProductOutput<T>{dx + columns.begin, input_size, direction > 0, nullptr},
                      MatrixView<T>{gates(layer) + direction * GH, ld, 1},
                      MatrixView<T>{w_ih + columns.begin, o.ih_stride, 1}, rows.begin, rows.end,
                      columns.end - columns.begin, GH, gemm_scratch(thread));
        }
        if (layer == 0 || args.dropout <= 0) return;
        for (Index row = rows.begin; row < rows.end; ++row) {
            const Index first = row * input_size + columns.begin;
            apply_dropout(dx + first, columns.end - columns.begin, first, args.dropout, args.dropout_seed, layer - 1);
        }
    }
};

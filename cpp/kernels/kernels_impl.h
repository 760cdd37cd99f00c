// Every kernel's template source, compiled once per instruction set: kernels_portable.cpp and
// kernels_avx2.cpp include this file inside their own namespace (fastrnn::portable,
// fastrnn::avx2) after defining FASTRNN_KERNEL_ISA, so no inline code is shared between them.
// Before that they include only <cstddef>, <cstdint>, <cstring>, fastrnn/kernels.h and
// fastrnn/threads.h (plain data and out-of-line functions).

#include "simd.h"
#include "activations.h"
#include "gemm.h"
#include "tile.h"
#include "dropout.h"
#include "rnn.h"
#include "lstm.h"
#include "gru.h"
#include "sequence.h"

// Calls visit(Cell{}) with the cell type `config` describes.
template <class Visitor> inline void visit_cell(const StackConfig& config, Visitor&& visit) {
    switch (config.kind) {
        case CellKind::rnn:
            if (config.relu) {
                visit(RnnCell<true>{});
            } else {
                visit(RnnCell<false>{});
            }
            break;
        case CellKind::lstm:
            visit(LstmCell{});
            break;
        case CellKind::gru:
            if (config.linear_before_reset) {
                visit(GruCell<true>{});
            } else {
                visit(GruCell<false>{});
            }
            break;
    }
}

template <class T> void forward(const ForwardArgs<T>& args) {
    const Dims dims(args.config, args.steps, args.batch, panel_width<T>());
    visit_cell(args.config, [&](auto cell) {
        using Run = ForwardRun<decltype(cell), T>;
        Run run(args, dims);
        parallel_run(args.threads, &Run::body, &run);
    });
}

template <class T> void backward(const BackwardArgs<T>& args) {
    const Dims dims(args.config, args.steps, args.batch, panel_width<T>());
    visit_cell(args.config, [&](auto cell) {
        using Run = BackwardRun<decltype(cell), T>;
        Run run(args, dims);
        parallel_run(args.threads, &Run::body, &run);
    });
}

template <class T> Index stored_size(const StackConfig& config, Index steps, Index batch) {
    return StoredLayout<T>(Dims(config, steps, batch, panel_width<T>())).total;
}

template <class T>
Index forward_scratch_size(const StackConfig& config, Index steps, Index batch, bool training, int threads) {
    const Dims dims(config, steps, batch, panel_width<T>());
    return ForwardScratchLayout<T>(dims, training, use_dot_recurrent(batch), threads).total;
}

template <class T> Index backward_scratch_size(const StackConfig& config, Index steps, Index batch, int threads) {
    return BackwardScratchLayout<T>(Dims(config, steps, batch, panel_width<T>()), threads).total;
}

template <class T> void activation(int which, const T* x, T* out, Index count) {
    constexpr int lanes = Simd<T>::lanes;
    for (Index i = 0; i < count; i += lanes) {
        const Index n = min_of<Index>(lanes, count - i);
        const Vec<T> v = load_lanes(x + i, n);
        const Vec<T> result = which == 0   ? vector_sigmoid<T>(v)
                              : which == 1 ? vector_tanh<T>(v)
                              : which == 2 ? vector_exp<T>(v)
                                           : vector_expm1<T>(v);
        store_partial(out + i, result, n);
    }
}

template <class T> struct MatmulRun {
    T* c;
    const T* a;
    const T* b;
    Index m, n, k;
    int threads;
    T* scratch;
    Index scratch_size;

    static void body(void* context, int thread) {
        const MatmulRun& run = *static_cast<MatmulRun*>(context);
        const Range rows = split_range(run.m, thread, run.threads, kTileRows);
        gemm_rows(GemmOutput<T>{run.c, run.n, false, nullptr}, MatrixView<T>{run.a, run.k, 1},
                  MatrixView<T>{run.b, run.n, 1}, rows.begin, rows.end, run.n, run.k,
                  run.scratch + thread * run.scratch_size);
    }
};

template <class T> void matmul(T* c, const T* a, const T* b, Index m, Index n, Index k, int threads) {
    const Index scratch_size = gemm_scratch_size<T>(n);
    T* scratch = new T[static_cast<std::size_t>(scratch_size * threads)];
    MatmulRun<T> run{c, a, b, m, n, k, threads, scratch, scratch_size};
    parallel_run(threads, &MatmulRun<T>::body, &run);
    delete[] scratch;
}

template <class T> constexpr KernelTable<T> make_table() {
    return KernelTable<T>{FASTRNN_KERNEL_ISA,
                          &useful_threads_for,
                          &stored_size<T>,
                          &forward_scratch_size<T>,
                          &backward_scratch_size<T>,
                          &forward<T>,
                          &backward<T>,
                          &activation<T>,
                          &matmul<T>};
}

extern const KernelTable<float> table_f32 = make_table<float>();
extern const KernelTable<double> table_f64 = make_table<double>();

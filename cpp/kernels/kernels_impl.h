// Every kernel's template source, compiled once per instruction set: each kernels_<isa>.cpp
// includes this file inside its own namespace (fastrnn::<isa>) after defining
// FASTRNN_KERNEL_ISA and including its isa_<isa>.h, so no inline code is shared between them.
// Before that they include only standard headers, <immintrin.h> (x86 instruction sets),
// fastrnn/kernels.h and fastrnn/threads.h (plain data and out-of-line functions).

#include "activations.h"
#include "gemm.h"
#include "parallel.h"
#include "rows.h"
#include "workspace.h"
#include "dropout.h"
#include "cells/cell.h"
#include "cells/registry.h"
#include "sequence.h"

template <class T> void forward(const ForwardArgs<T>& args) {
    const Dims dims(args.config, args.steps, args.batch, panel_width<T>());
    visit_cell(args.config, [&](auto cell) {
        using Run = ForwardRun<decltype(cell), T>;
        Run run(args, dims);
        parallel_run(args.threads, job_of(run, forward_flops(dims)));
    });
}

template <class T> void backward(const BackwardArgs<T>& args) {
    const Dims dims(args.config, args.steps, args.batch, panel_width<T>());
    visit_cell(args.config, [&](auto cell) {
        using Run = BackwardRun<decltype(cell), T>;
        Run run(args, dims);
        parallel_run(args.threads, job_of(run, 2 * forward_flops(dims)));
    });
}

template <class T> Index stored_size(const StackConfig& config, Index steps, Index batch) {
    const Dims dims(config, steps, batch, panel_width<T>());
    return visit_cell(config, [&](auto cell) { return StoredLayout<decltype(cell), T>(dims).total; });
}

template <class T>
int stored_parts(const StackConfig& config, Index steps, Index batch, Index layer, Index direction, StoredPart* parts) {
    const Dims dims(config, steps, batch, panel_width<T>());
    return visit_cell(config, [&](auto cell) {
        return StoredLayout<decltype(cell), T>(dims).parts(dims, layer, direction, parts);
    });
}

template <class T>
Index forward_scratch_size(const StackConfig& config, Index steps, Index batch, bool training, int threads) {
    const Dims dims(config, steps, batch, panel_width<T>());
    return visit_cell(config, [&](auto cell) {
        return ForwardScratchLayout<decltype(cell), T>(dims, training, use_dot_recurrent(batch), threads).total;
    });
}

template <class T> Index backward_scratch_size(const StackConfig& config, Index steps, Index batch, int threads) {
    const Dims dims(config, steps, batch, panel_width<T>());
    return visit_cell(config, [&](auto cell) {
        return BackwardScratchLayout<decltype(cell), T>(dims, threads, use_dot_recurrent(batch)).total;
    });
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

template <class T> Index linear_scratch_size(Index n, Index k) {
    return aligned<T>(gemm_scratch_size<T>(max_of(n, k)));
}

// The products behind linear_forward / linear_backward, each one phase of parts.
template <class T> struct LinearRun {
    T* y;            // forward output [M, N], or dx [M, K]
    T* grad_w;       // [N, K]
    T* grad_b;       // [N]
    const T* x;      // [M, K]
    const T* w;      // [N, K]
    const T* bias;
    const T* dy;     // [M, N]
    Index m, n, k;
    T* scratch;
    Index scratch_size;
    int threads;

    T* thread_scratch(int thread) const { return scratch + thread * scratch_size; }
    LinearRows<T> forward_rows() const { return {y, n, x, w, k, bias, m, n, k}; }
    // Backward: rows of grad_w (with those columns of grad_b), then rows of dx.
    Parts weight_parts() const { return Parts(n, kTileRows, max_parts(threads, kProductPartsPerThread)); }
    Parts input_parts() const { return Parts(y ? m : 0, kTileRows, max_parts(threads, kProductPartsPerThread)); }
};

template <class T> struct LinearForward : LinearRun<T> {
    Index items(Index phase) const { return phase == 0 ? this->forward_rows().parts(this->threads).parts : -1; }
    void run_item(Index, Index item, int thread) {
        const LinearRows<T> rows = this->forward_rows();
        rows.run(rows.parts(this->threads)[item], this->thread_scratch(thread));
    }
};

template <class T> struct LinearBackward : LinearRun<T> {
    Index items(Index phase) const { return phase == 0 ? this->weight_parts().parts + this->input_parts().parts : -1; }
    void run_item(Index, Index item, int thread) {
        const LinearRun<T>& run = *this;
        T* scratch = run.thread_scratch(thread);
        if (item < run.weight_parts().parts) {
            const Range outputs = run.weight_parts()[item];
            gemm_rows(ProductOutput<T>{run.grad_w, run.k, true, nullptr}, MatrixView<T>{run.dy, 1, run.n},
                      MatrixView<T>{run.x, run.k, 1}, outputs.begin, outputs.end, run.k, run.m, scratch);
            if (run.grad_b) add_column_sums(run.grad_b, run.dy, run.n, run.m, outputs.begin, outputs.end, true);
            return;
        }
        const Range rows = run.input_parts()[item - run.weight_parts().parts];
        gemm_rows(ProductOutput<T>{run.y, run.k, false, nullptr}, MatrixView<T>{run.dy, run.n, 1},
                  MatrixView<T>{run.w, run.k, 1}, rows.begin, rows.end, run.k, run.n, scratch);
    }
};

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, Index m, Index n, Index k, T* scratch, int threads) {
    LinearForward<T> run{{y, nullptr, nullptr, x, w, bias, nullptr, m, n, k, scratch, linear_scratch_size<T>(n, k), threads}};
    parallel_run(threads, job_of(run, 2.0 * double(m) * double(n) * double(k)));
}

template <class T>
void linear_backward(T* dx, T* grad_w, T* grad_b, const T* dy, const T* x, const T* w, Index m, Index n, Index k,
                     T* scratch, int threads) {
    LinearBackward<T> run{{dx, grad_w, grad_b, x, w, nullptr, dy, m, n, k, scratch, linear_scratch_size<T>(n, k), threads}};
    parallel_run(threads, job_of(run, 4.0 * double(m) * double(n) * double(k)));
}

// c[M, N] = a[M, K] b[K, N]: the GEMM on its own, for tests.
template <class T> struct MatmulRun {
    T* c;
    const T* a;
    MatrixView<T> b;
    Index m, n, k;
    T* scratch;
    Index scratch_size;
    Parts rows;

    Index items(Index phase) const { return phase == 0 ? rows.parts : -1; }
    void run_item(Index, Index item, int thread) {
        gemm_rows(ProductOutput<T>{c, n, false, nullptr}, MatrixView<T>{a, k, 1}, b, rows[item].begin,
                  rows[item].end, n, k, scratch + thread * scratch_size);
    }
};

template <class T> void matmul(T* c, const T* a, const T* b, bool b_transposed, Index m, Index n, Index k, int threads) {
    const Index scratch_size = gemm_scratch_size<T>(n);
    T* scratch = new T[static_cast<std::size_t>(scratch_size * threads)];
    const MatrixView<T> b_view = b_transposed ? MatrixView<T>{b, 1, k} : MatrixView<T>{b, n, 1};
    MatmulRun<T> run{c, a, b_view, m, n, k, scratch, scratch_size, Parts(m, kTileRows, max_parts(threads, kProductPartsPerThread))};
    parallel_run(threads, job_of(run, 2.0 * double(m) * double(n) * double(k)));
    delete[] scratch;
}

template <class T> constexpr KernelTable<T> make_table() {
    return KernelTable<T>{FASTRNN_KERNEL_ISA,
                          &useful_threads_for,
                          &stored_size<T>,
                          &stored_parts<T>,
                          &forward_scratch_size<T>,
                          &backward_scratch_size<T>,
                          &forward<T>,
                          &backward<T>,
                          &linear_scratch_size<T>,
                          &linear_forward<T>,
                          &linear_backward<T>,
                          &activation<T>,
                          &matmul<T>};
}

extern const KernelTable<float> table_f32 = make_table<float>();
extern const KernelTable<double> table_f64 = make_table<double>();

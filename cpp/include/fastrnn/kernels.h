// The interface between the bindings and the kernels: argument structs and the table of entry
// points each instruction-set variant provides. Plain aggregates only (no default member
// initialisers, hence no inline constructors), shared by all variants; value-initialise them.
#pragma once

#include "fastrnn/common.h"

namespace fastrnn {

template <class T> struct ForwardArgs {
    StackConfig config;
    Index steps, batch;
    const T* weights;             // flat parameters, see param_offsets()
    const T* x;                   // [T, B, input_size]
    const T* h0;                  // [L*D, B, H] or null: zeros
    const T* c0;                  // lstm: [L*D, B, H] or null: zeros
    const std::int64_t* lengths;  // [B], each in [1, T], or null: all T
    T* y;                         // [T, B, D*H]
    T* hn;                        // [L*D, B, H]; may be h0 itself (each layer reads its h0 first)
    T* cn;                        // lstm: [L*D, B, H]; may be c0 itself
    bool training;                // keep activations in `stored` for backward
    double dropout;               // training: drop probability between layers
    std::uint64_t dropout_seed;
    T* stored;                    // training: stored_size() values
    T* scratch;                   // forward_scratch_size() values
    int threads;
};

// Backward through the last training-mode forward, whose `stored` activations it consumes.
template <class T> struct BackwardArgs {
    StackConfig config;
    Index steps, batch;
    const T* weights;
    T* grads;                     // flat, same layout as weights; ADDED into, or overwritten
    bool overwrite_grads;         // when set (the caller zeroed them lazily)
    const T* x;                   // the forward's x [T, B, input_size]
    const std::int64_t* lengths;  // the forward's lengths or null
    const T* dy;                  // [T, B, D*H]
    const T* dhn;                 // [L*D, B, H] or null: zeros
    const T* dcn;                 // lstm: [L*D, B, H] or null: zeros
    T* dx;                        // [T, B, input_size] or null: not needed
    T* dh0;                       // [L*D, B, H] or null: not needed
    T* dc0;                       // lstm: [L*D, B, H], null with dh0
    double dropout;               // the forward's dropout and seed
    std::uint64_t dropout_seed;
    T* stored;                    // written by the forward; overwritten here
    T* scratch;                   // backward_scratch_size() values
    int threads;
};

// One named part of the activations a training-mode forward keeps in `stored` for one layer and
// direction, named as reference._sequence_forward names its stored buffers:
//   "gates"    [T, B, G*H] the gate activations, PyTorch's gate order
//   "hn"       GRU with linear_before_reset: W_hn h_{t-1} + b_hn [T, B, H]
//   "reset_h"  GRU without it: r * h_{t-1} [T, B, H] (the reference recomputes it, storing none)
//   "h", "c"   [T, B, H] the state after each step (c: LSTM), carried through padded steps
// Element (t, b, j) is stored[offset + t * step_stride + b * row_stride + j]. At padded steps
// (t >= lengths[b]) only the states are defined. Backward overwrites gates and hn with gradients.
struct StoredPart {
    const char* name;
    Index offset, step_stride, row_stride, width;
};
// Parts per layer and direction at most: gates, a kept value, two state parts.
constexpr int kMaxStoredParts = 4;

// Entry points of one instruction-set variant for one floating-point type.
template <class T> struct KernelTable {
    const char* isa;              // the variant's name
    // Threads worth using for a call with this batch size, at most `available`.
    int (*useful_threads)(const StackConfig& config, Index batch, int available);
    Index (*stored_size)(const StackConfig& config, Index steps, Index batch);
    // The parts of `stored` for layer `layer`, direction `direction`, in the order above, written
    // to parts[0, count); returns count (at most kMaxStoredParts).
    int (*stored_parts)(const StackConfig& config, Index steps, Index batch, Index layer, Index direction,
                        StoredPart* parts);
    Index (*forward_scratch_size)(const StackConfig& config, Index steps, Index batch, bool training,
                                  int threads);
    Index (*backward_scratch_size)(const StackConfig& config, Index steps, Index batch, int threads);
    void (*forward)(const ForwardArgs<T>& args);
    void (*backward)(const BackwardArgs<T>& args);

    // A fully connected layer over rows (Dense): y[M, N] = x[M, K] w[N, K]^T (+ bias[N]), and its
    // backward: grad_w += dy^T x, grad_b += column sums of dy (if not null), dx = dy w (if not
    // null). scratch holds linear_scratch_size(n, k) values per thread.
    Index (*linear_scratch_size)(Index n, Index k);
    void (*linear_forward)(T* y, const T* x, const T* w, const T* bias, Index m, Index n, Index k, T* scratch,
                           int threads);
    void (*linear_backward)(T* dx, T* grad_w, T* grad_b, const T* dy, const T* x, const T* w, Index m, Index n,
                            Index k, T* scratch, int threads);

    // For tests: the vectorised activations (0 sigmoid, 1 tanh, 2 exp, 3 expm1) and the packed
    // matrix product c[M, N] = a[M, K] * b[K, N] on `threads` threads, all row-major; with
    // b_transposed, b holds b^T [N, K] row-major, read column by column as W_ih and W_hh are.
    void (*activation)(int which, const T* x, T* out, Index count);
    void (*matmul)(T* c, const T* a, const T* b, bool b_transposed, Index m, Index n, Index k, int threads);
};

// The one table of kernel variants (dispatch.cpp): each instruction set this build has, best
// first. Adding one touches that table, its isa_<name>.h, its kernels_<name>.cpp and CMake.
struct IsaVariant {
    const char* name;
    bool (*available)();          // this CPU and operating system can run it
    bool tests_only;              // runs another variant's code on other instructions: never chosen
    const KernelTable<float>* f32;
    const KernelTable<double>* f64;
};

// Every variant this build has, best first, and how many.
const IsaVariant* isa_variants();
int isa_variant_count();
// The variant named `name`, or null if this build has none of that name.
const IsaVariant* find_isa(const char* name);
// The variant the kernels use: FASTRNN_ISA's when it names an available variant (not a tests-only
// one), else the best available. Decided once per process.
const IsaVariant& chosen_isa();
// Why FASTRNN_ISA was not followed (unknown name, not available here), or null if it was or is
// unset.
const char* ignored_isa_request();

template <class T> const KernelTable<T>& kernels(const IsaVariant& variant);

}  // namespace fastrnn

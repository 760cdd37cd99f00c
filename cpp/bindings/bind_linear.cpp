// Python binding of the fully connected layer (fastrnn.Dense): checks shapes and dtypes, then
// runs the packed GEMM without the GIL, so Dense never wakes NumPy's BLAS threads (which would
// spin on the cores the recurrent kernels use).
#include "stack_binding.h"

namespace fastrnn {
namespace {

// Products smaller than this many multiply-adds run on one thread.
constexpr double kParallelLinearWork = 1 << 18;

// A gradient buffer the kernel adds into: exactly T, contiguous, writeable, of the given shape.
template <class T> T* gradient(const py::object& object, const char* name, const std::vector<Index>& shape) {
    if (!py::isinstance<py::array>(object))
        throw py::type_error(std::string(name) + ": expected a numpy.ndarray, got " + type_text(object));
    auto array = py::reinterpret_borrow<py::array>(object);
    if (!array.dtype().is(py::dtype::of<T>()) || !(array.flags() & py::array::c_style) || !array.writeable() ||
        shape_of(array) != shape)
        throw py::value_error(std::string(name) + ": expected a writeable contiguous " +
                              std::string(py::str(py::dtype::of<T>())) + " array of shape " + shape_text(shape) +
                              ", got " + std::string(py::str(array.dtype())) + " " + shape_text(array));
    return static_cast<T*>(array.mutable_data());
}

template <class T> struct LinearCall {
    const KernelTable<T>& kernels = fastrnn::kernels<T>(chosen_isa());
    int threads;
    T* scratch;

    LinearCall(Index m, Index n, Index k) {
        threads = double(m) * double(n) * double(k) < kParallelLinearWork ? 1 : get_num_threads();
        static thread_local Workspace<T> workspace;   // one per calling thread: calls may overlap
        scratch = workspace.reserve(threads * kernels.linear_scratch_size(n, k));
    }
};

// The weight (N, K) and the inputs x (M, K) every linear call starts from, converted, with
// their shapes read and checked after the conversion.
template <class T> struct Operands {
    Matrix<T> w, x;
    Index m, n, k;

    Operands(const py::object& x_object, const py::object& w_object)
        : w(float_array<T>(w_object, "weight")), x(float_array<T>(x_object, "x")) {
        if (w.ndim() != 2)
            throw py::value_error("weight: expected a 2-D array (out_features, in_features), got shape " +
                                  shape_text(w));
        if (x.ndim() != 2)
            throw py::value_error("x: expected a 2-D array (rows, in_features=" + std::to_string(w.shape(1)) +
                                  "), got shape " + shape_text(x));
        m = x.shape(0);
        n = w.shape(0);
        k = w.shape(1);
        check_shape(x, "x", {m, k});
    }
};

template <class T> py::array_t<T> linear_forward(const py::object& x_object, const py::object& w_object,
                                                 const py::object& bias_object) {
    const Operands<T> in(x_object, w_object);
    std::optional<Matrix<T>> bias;
    if (!bias_object.is_none()) bias = float_array<T>(bias_object, "bias");
    const Index m = in.m, n = in.n, k = in.k;
    if (bias) check_shape(*bias, "bias", {n});
    py::array_t<T> y({m, n});
    T* out = y.mutable_data();
    LinearCall<T> call(m, n, k);
    {
        py::gil_scoped_release release;
        call.kernels.linear_forward(out, in.x.data(), in.w.data(), bias ? bias->data() : nullptr, m, n, k,
                                    call.scratch, call.threads);
    }
    return y;
}

template <class T> py::object linear_backward(const py::object& dy_object, const py::object& x_object,
                                              const py::object& w_object, const py::object& grad_w_object,
                                              const py::object& grad_b_object, bool input_gradient) {
    const Operands<T> in(x_object, w_object);
    const Matrix<T> dy = float_array<T>(dy_object, "dy");
    const Index m = in.m, n = in.n, k = in.k;
    check_shape(dy, "dy", {m, n});
    T* grad_w = gradient<T>(grad_w_object, "grad_weight", {n, k});
    T* grad_b = grad_b_object.is_none() ? nullptr : gradient<T>(grad_b_object, "grad_bias", {n});
    std::optional<py::array_t<T>> dx;
    if (input_gradient) dx.emplace(std::vector<Index>{m, k});
    T* dx_out = dx ? dx->mutable_data() : nullptr;
    LinearCall<T> call(m, n, k);
    {
        py::gil_scoped_release release;
        call.kernels.linear_backward(dx_out, grad_w, grad_b, dy.data(), in.x.data(), in.w.data(), m, n, k,
                                     call.scratch, call.threads);
    }
    return dx ? py::object(*dx) : py::none();
}

template <class T> void bind_linear_type(py::module_& m, const std::string& suffix) {
    m.def(("linear_forward_" + suffix).c_str(), &linear_forward<T>, py::arg("x"), py::arg("weight"), py::arg("bias"),
          "y = x weight^T + bias for x (M, in_features), weight (out_features, in_features).");
    m.def(("linear_backward_" + suffix).c_str(), &linear_backward<T>, py::arg("dy"), py::arg("x"), py::arg("weight"),
          py::arg("grad_weight"), py::arg("grad_bias"), py::arg("input_grad"),
          "Adds dy^T x into grad_weight and dy's column sums into grad_bias; returns dx = dy weight.");
}

}  // namespace

void bind_linear(py::module_& m) {
    bind_linear_type<float>(m, "float32");
    bind_linear_type<double>(m, "float64");
}

}  // namespace fastrnn

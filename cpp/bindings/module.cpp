// fastrnn._core: the native module. Each cell kind, the fully connected layer, generation and the
// thread controls bind themselves; this file gathers them and adds the kernel test hooks.
#include "stack_binding.h"

namespace fastrnn {
void bind_rnn(py::module_& m);
void bind_lstm(py::module_& m);
void bind_gru(py::module_& m);
void bind_linear(py::module_& m);
void bind_generate(py::module_& m);
void bind_threads(py::module_& m);

namespace {

template <class T> const KernelTable<T>& table_for(const std::string& isa) { return kernels<T>(parse_isa(isa)); }

// Test hooks: run one variant's vectorised activation or packed product on arrays.
template <class T>
py::array_t<T> activation(const std::string& which, const py::object& x_object, const std::string& isa) {
    static const char* const names[] = {"sigmoid", "tanh", "exp", "expm1"};
    int index = -1;
    for (int i = 0; i < 4; ++i)
        if (which == names[i]) index = i;
    if (index < 0) throw py::value_error("which: expected sigmoid, tanh, exp or expm1, got '" + which + "'");
    const Matrix<T> x = float_array<T>(x_object, "x");
    py::array_t<T> out(x.size());
    const KernelTable<T>& table = table_for<T>(isa);
    const T* in = x.data();
    T* result = out.mutable_data();
    const Index count = x.size();
    {
        py::gil_scoped_release release;
        table.activation(index, in, result, count);
    }
    return out;
}

template <class T> py::array_t<T> matmul(const py::object& a_object, const py::object& b_object, const std::string& isa,
                                         int threads, bool b_transposed) {
    const Matrix<T> a = float_array<T>(a_object, "a"), b = float_array<T>(b_object, "b");
    const int b_depth_axis = b_transposed ? 1 : 0;
    if (a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(b_depth_axis))
        throw py::value_error(std::string("matmul: expected a (M, K) and b ") + (b_transposed ? "(N, K)" : "(K, N)") +
                              ", got " + shape_text(a) + " and " + shape_text(b));
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error("threads: expected 1 to " + std::to_string(kMaxThreads) + ", got " + std::to_string(threads));
    const Index m = a.shape(0), k = a.shape(1), n = b.shape(1 - b_depth_axis);
    py::array_t<T> c({m, n});
    const KernelTable<T>& table = table_for<T>(isa);
    T* out = c.mutable_data();
    {
        py::gil_scoped_release release;
        table.matmul(out, a.data(), b.data(), b_transposed, m, n, k, threads);
    }
    return c;
}

}  // namespace
}  // namespace fastrnn

PYBIND11_MODULE(_core, m) {
    using namespace fastrnn;
    m.doc() = "fastrnn native kernels";
    bind_native_stack<float>(m, "RecurrentStack_float32");
    bind_native_stack<double>(m, "RecurrentStack_float64");
    bind_rnn(m);
    bind_lstm(m);
    bind_gru(m);
    bind_linear(m);
    bind_generate(m);
    bind_threads(m);
    m.def("physical_memory", &physical_memory, "This machine's memory in bytes (0 where the system does not say).");
    m.def(
        "check_memory", [](double bytes, const std::string& what) { check_memory(bytes, [&] { return what; }); },
        py::arg("bytes"), py::arg("what"),
        "ValueError '<what> would take X GiB, more than this machine's Y GiB of memory' when bytes exceed it.");
    m.def(
        "_set_poison", [](bool on) { poison_buffers = on; }, py::arg("on"),
        "Tests only: NaN-fill outputs and workspaces before every kernel call.");
    m.def("kernel_isa", [] { return std::string(chosen_isa().name); },
          "The kernel variant in use: the best this CPU can run, or the one FASTRNN_ISA names.");
    m.def("isa_variants", [] {
        py::list variants;
        for (int i = 0; i < isa_variant_count(); ++i) {
            const IsaVariant& variant = isa_variants()[i];
            variants.append(py::make_tuple(variant.name, variant.available(), variant.tests_only));
        }
        return variants;
    }, "(name, available on this CPU, tests only) of every kernel variant this build has, best first.");
    m.def("activation_float32", &activation<float>, py::arg("which"), py::arg("x"), py::arg("isa") = "auto");
    m.def("activation_float64", &activation<double>, py::arg("which"), py::arg("x"), py::arg("isa") = "auto");
    m.def("matmul_float32", &matmul<float>, py::arg("a"), py::arg("b"), py::arg("isa") = "auto", py::arg("threads") = 1,
          py::arg("b_transposed") = false);
    m.def("matmul_float64", &matmul<double>, py::arg("a"), py::arg("b"), py::arg("isa") = "auto", py::arg("threads") = 1,
          py::arg("b_transposed") = false);
    // fastrnn's import warns with it (a misspelt FASTRNN_ISA would otherwise leave the user
    // believing the variant they named runs).
    m.def("ignored_isa_request", [] {
        const char* ignored = ignored_isa_request();
        return ignored ? py::object(py::str(ignored)) : py::object(py::none());
    }, "Why FASTRNN_ISA was ignored, or None.");
}

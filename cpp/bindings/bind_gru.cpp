// Python binding of the GRU stack, in both formulations.
#include "stack_binding.h"

namespace fastrnn {

template <class T> static void bind_gru_type(py::module_& m, const char* name) {
    bind_stack_class<T, CellKind::gru>(m, name).def(
        py::init([](const py::object& input_size, const py::object& hidden_size, const py::object& num_layers,
                    bool bias, bool bidirectional, bool linear_before_reset, const std::string& isa) {
            StackConfig config = make_config(CellKind::gru, input_size, hidden_size, num_layers, bias, bidirectional);
            config.linear_before_reset = linear_before_reset;
            return CellStack<T, CellKind::gru>(config, isa);
        }),
        py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("bias"), py::arg("bidirectional"),
        py::arg("linear_before_reset"), py::arg("isa") = "auto");
}

void bind_gru(py::module_& m) {
    bind_gru_type<float>(m, "GRU_float32");
    bind_gru_type<double>(m, "GRU_float64");
}

}  // namespace fastrnn

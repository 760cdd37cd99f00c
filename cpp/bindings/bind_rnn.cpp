// Python binding of the vanilla RNN stack (tanh or relu).
#include "stack_binding.h"

namespace fastrnn {

template <class T> static void bind_rnn_type(py::module_& m, const char* name) {
    bind_stack_class<T, CellKind::rnn>(m, name).def(
        py::init([](const py::object& input_size, const py::object& hidden_size, const py::object& num_layers,
                    const std::string& nonlinearity, bool bias, bool bidirectional, const std::string& isa) {
            StackConfig config = make_config(CellKind::rnn, input_size, hidden_size, num_layers, bias, bidirectional);
            if (nonlinearity != "tanh" && nonlinearity != "relu")
                throw py::value_error("nonlinearity: expected 'tanh' or 'relu', got '" + nonlinearity + "'");
            config.relu = nonlinearity == "relu";
            return CellStack<T, CellKind::rnn>(config, isa);
        }),
        py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("nonlinearity"), py::arg("bias"),
        py::arg("bidirectional"), py::arg("isa") = "auto");
}

void bind_rnn(py::module_& m) {
    bind_rnn_type<float>(m, "RNN_float32");
    bind_rnn_type<double>(m, "RNN_float64");
}

}  // namespace fastrnn

// Python binding of the LSTM stack.
#include "stack_binding.h"

namespace fastrnn {

template <class T> static void bind_lstm_type(py::module_& m, const char* name) {
    bind_stack_class<T, CellKind::lstm>(m, name).def(
        py::init([](const py::object& input_size, const py::object& hidden_size, const py::object& num_layers,
                    bool bias, bool bidirectional, const std::string& isa) {
            return CellStack<T, CellKind::lstm>(make_config(CellKind::lstm, input_size, hidden_size, num_layers, bias, bidirectional),
                                  isa);
        }),
        py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("bias"), py::arg("bidirectional"),
        py::arg("isa") = "auto");
}

void bind_lstm(py::module_& m) {
    bind_lstm_type<float>(m, "LSTM_float32");
    bind_lstm_type<double>(m, "LSTM_float64");
}

}  // namespace fastrnn

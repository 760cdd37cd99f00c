// The Python face of one stacked recurrent layer: checks every argument (so the kernels never
// see a bad shape), converts layouts, releases the GIL and calls the kernels. No math here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fastrnn/kernels.h"
#include "fastrnn/threads.h"

namespace fastrnn {
namespace py = pybind11;

// A C-contiguous array of T: what converted() and float_array() below give.
template <class T> using Matrix = py::array_t<T, py::array::c_style | py::array::forcecast>;

std::vector<Index> shape_of(const py::array& array);
std::string shape_text(const std::vector<Index>& shape);
std::string shape_text(const py::array& array);
std::string type_text(const py::handle& object);
// The kernel variant an `isa` argument names ("auto": the one in use), or ValueError.
const IsaVariant& parse_isa(const std::string& name);
// ValueError "<name>: expected shape (..)<note>, got (..)" unless `array` has shape `expected`.
void check_shape(const py::array& array, const std::string& name, const std::vector<Index>& expected,
                 const std::string& note = "");

// Raises the Python error of a failed conversion of argument `name` again, its type kept and
// the argument named in front of its message.
[[noreturn]] void conversion_failed(py::error_already_set& error, const std::string& name);

// `object` converted to the array type A (py::array, Matrix<T>, ...). Conversion errors keep
// their type and name the argument: MemoryError when a copy cannot be allocated (a broadcast
// view of a few bytes may need terabytes), ValueError when NumPy cannot describe the result.
// pybind11's ensure() would return a null array and drop the error instead.
template <class A> A converted(const py::handle& object, const std::string& name) {
    try {
        return A(py::reinterpret_borrow<py::object>(object));
    } catch (py::error_already_set& error) {
        conversion_failed(error, name);
    }
}

// `object`, a floating-point numpy.ndarray (else TypeError naming `name`, the expected and the
// received), as a C-contiguous array of T, copied if needed (failures as converted() says).
template <class T> Matrix<T> float_array(const py::handle& object, const std::string& name) {
    if (!py::isinstance<py::array>(object))
        throw py::type_error(name + ": expected a numpy.ndarray, got " + type_text(object));
    const auto array = py::reinterpret_borrow<py::array>(object);
    if (array.dtype().kind() != 'f')
        throw py::type_error(name + ": expected a floating-point array, got dtype " +
                             std::string(py::str(array.dtype())));
    return converted<Matrix<T>>(array, name);
}

// (T, B, F) <-> (B, T, F) for contiguous arrays of `value_size`-byte values.
void swap_time_batch(void* destination, const void* source, Index first, Index second, Index features,
                     std::size_t value_size);

// Tests set this: NativeStack forward/backward fill their output arrays and workspaces with NaN
// before calling the kernels, so an element a kernel forgets to write (or reads before writing)
// cannot pass unnoticed. Other kernel calls (linear, generate, ...) are not poisoned.
extern bool poison_buffers;

// A 64-byte aligned buffer that only grows.
template <class T> class Workspace {
public:
    // Throws std::bad_alloc (MemoryError in Python) when the memory is not there. The nothrow
    // form, because AddressSanitizer ends the process when a throwing operator new fails.
    T* reserve(Index count) {
        if (count > capacity_) {
            data_.reset();
            capacity_ = 0;
            if (static_cast<std::size_t>(count) > std::numeric_limits<std::size_t>::max() / sizeof(T))
                throw std::bad_alloc();
            data_.reset(static_cast<T*>(::operator new(static_cast<std::size_t>(count) * sizeof(T),
                                                       std::align_val_t(64), std::nothrow)));
            if (!data_) throw std::bad_alloc();
            capacity_ = count;
        }
        return data_.get();
    }
    const T* data() const { return data_.get(); }
    void release() {
        data_.reset();
        capacity_ = 0;
    }

private:
    struct Free {
        void operator()(T* p) const { ::operator delete(p, std::align_val_t(64)); }
    };
    std::unique_ptr<T, Free> data_;
    Index capacity_ = 0;
};

template <class T> class NativeStack {
public:
    using Array = Matrix<T>;
    using Lengths = Matrix<std::int64_t>;

    // The sequence shape of one call.
    struct Shape {
        Index steps, batch;
        bool batched, batch_first;
    };
    // A state argument's parts, converted: h, and c for an LSTM (both unset for None).
    struct State {
        std::optional<Array> h, c;
    };

    NativeStack(const StackConfig& config, const std::string& isa);

    // -> (y, state_n). x is (T, B, input_size), (B, T, input_size) with batch_first, or an
    // unbatched (T, input_size); state is None, h0, or for LSTM (h0, c0).
    py::tuple forward(const py::object& weights, const py::object& x, const py::object& state,
                      const py::object& lengths, bool training, bool batch_first, double dropout,
                      std::uint64_t dropout_seed);
    // -> (dx or None, dstate0 or None): dx unless not input_gradient, dstate0 unless not
    // state_gradient. Adds the parameter gradients into grads, or overwrites them with
    // overwrite_grads (the caller's lazy zero_grad).
    py::tuple backward(const py::object& weights, const py::object& grads, const py::object& dy,
                       const py::object& dstate, bool input_gradient, bool state_gradient, bool overwrite_grads);
    // Forget the last training-mode forward: a later backward raises.
    void discard() { has_forward_ = false; }
    // The activations the last training-mode forward stored, until backward consumes them: per
    // layer and direction (index layer * D + direction, as reference.forward's cache["stored"]),
    // {name: time-major (T, B, width) copy} of each StoredPart (kernels.h), whatever the forward's
    // layout (B = 1 for an unbatched input).
    py::list stored_activations();
    // For generation from C++, with the GIL released: one inference step at batch 1 from the
    // input x [input_size]. h and c [L*D, H] hold the state in and receive the new one (c is
    // unused but for LSTM); y [D*H] receives the output. Callers check the sizes and hold the
    // layer busy (see BusyGuard).
    void step(const T* weights, const T* x, T* h, T* c, T* y, int threads);
    const StackConfig& config() const { return config_; }
    int useful_threads(Index batch, int available) const {
        return kernels_->useful_threads(config_, batch, available);
    }
    // [(offset, shape[, row_stride])] of each tensor of the flat parameter buffer, in PyTorch's
    // order (per layer and direction: weight_ih, weight_hh[, bias_ih, bias_hh]; the names come
    // from reference.param_names); weight rows are row_stride values apart (see ParamOffsets).
    py::list parameter_placements() const;
    Index parameter_count() const { return param_count(config_); }
    std::string isa() const { return kernels_->isa; }
    // The flat parameter buffer `object` as a pointer, or TypeError/ValueError naming `name`.
    const T* flat_parameters(const py::object& object, const char* name, bool writeable) const;
    // Argument `name` (None, h, or for an LSTM a tuple or list (h, c)) unpacked and converted;
    // check_state then checks the shapes. Two steps, because unpacking may run Python code
    // (a sequence's __getitem__), and shapes are checked only once no more Python code runs.
    State convert_state(const py::object& state, const std::string& name) const;
    void check_state(const State& state, const std::string& name, const Shape& shape) const;

    // Marks the layer busy for a whole call (conversions included: they may run Python code or
    // release the GIL), so that a second call (another thread, or Python code the first call
    // runs) raises instead of changing the shapes, inputs and workspaces the first one uses.
    // The flag is read and written with the GIL held only.
    struct BusyGuard {
        bool& flag;
        explicit BusyGuard(NativeStack& stack) : flag(stack.busy_) {
            if (flag)
                throw std::runtime_error("this layer is already running a forward, backward or generate (called "
                                         "from another thread, or from code that call ran): one call at a time");
            flag = true;
        }
        ~BusyGuard() { flag = false; }
        BusyGuard(const BusyGuard&) = delete;
        BusyGuard& operator=(const BusyGuard&) = delete;
    };

private:
    StackConfig config_;
    const KernelTable<T>* kernels_;
    Workspace<T> stored_, scratch_, staging_;
    bool busy_ = false;
    // The last training-mode forward, which backward differentiates.
    bool has_forward_ = false;
    Shape forward_shape_{};
    std::optional<Array> forward_input_;       // time-major x, our own copy
    std::optional<Lengths> forward_lengths_;   // our own copy
    double dropout_ = 0;
    std::uint64_t dropout_seed_ = 0;

    Index states() const { return config_.num_layers * config_.directions; }
    // ValueError "<call>: no training-mode forward <purpose>; ..." unless one is held.
    void require_forward(const char* call, const char* purpose) const;
    std::vector<Index> sequence_shape(const Shape& shape, Index features) const;
    std::vector<Index> state_shape(const Shape& shape) const;
    Shape input_shape(const Array& x, bool batch_first) const;
    Lengths checked_lengths(const Lengths& lengths, const Shape& shape) const;
    void check_call_size(const Shape& shape, const Array& x) const;
    py::object make_state(const Array& h, const std::optional<Array>& c) const;
};

extern template class NativeStack<float>;
extern template class NativeStack<double>;

// The Python type of one cell kind's stack (pybind11 registers each C++ type once); its base,
// NativeStack<T>, carries the methods.
template <class T, CellKind Kind> struct CellStack : NativeStack<T> {
    using NativeStack<T>::NativeStack;
};

// Registers NativeStack<T> and its methods as class `name` (before any cell type).
template <class T> void bind_native_stack(py::module_& m, const char* name) {
    using Stack = NativeStack<T>;
    py::class_<Stack>(m, name)
        .def("forward", &Stack::forward, py::arg("weights"), py::arg("x"), py::arg("state"), py::arg("lengths"),
             py::arg("training"), py::arg("batch_first"), py::arg("dropout"), py::arg("dropout_seed"))
        .def("backward", &Stack::backward, py::arg("weights"), py::arg("grads"), py::arg("dy"), py::arg("dstate"),
             py::arg("input_gradient"), py::arg("state_gradient") = true, py::arg("overwrite_grads") = false)
        .def("discard", &Stack::discard)
        .def("stored_activations", &Stack::stored_activations)
        .def("parameter_placements", &Stack::parameter_placements)
        .def_property_readonly("parameter_count", &Stack::parameter_count)
        .def_property_readonly("isa", &Stack::isa);
}

// A cell kind's class `name`, deriving from NativeStack<T>; the cell's bind_*.cpp adds the
// constructor.
template <class T, CellKind Kind> py::class_<CellStack<T, Kind>, NativeStack<T>> bind_stack_class(py::module_& m,
                                                                                                 const char* name) {
    return py::class_<CellStack<T, Kind>, NativeStack<T>>(m, name);
}

// The machine's physical memory in bytes (read once), or 0 where the system does not say.
std::uint64_t physical_memory();
// ValueError "<what> would take X GiB, more than this machine's Y GiB of memory".
[[noreturn]] void refuse_memory(long double bytes, const std::string& what);
// refuse_memory(bytes, what()) when `bytes` exceed the machine's memory: allocations past it would
// not fail but let the system kill the process once written. `what` builds its text only then.
template <class What> void check_memory(long double bytes, What&& what) {
    const std::uint64_t memory = physical_memory();
    if (memory > 0 && bytes > memory) refuse_memory(bytes, what());
}

// A configuration with its sizes checked: integers (TypeError), positive, and few enough
// parameters that counting them cannot overflow (ValueError naming what is wrong).
StackConfig make_config(CellKind kind, const py::handle& input_size, const py::handle& hidden_size,
                        const py::handle& num_layers, bool bias, bool bidirectional);
// "LSTM(input_size=.., hidden_size=.., num_layers=..)", for error messages.
std::string describe(const StackConfig& config);

}  // namespace fastrnn

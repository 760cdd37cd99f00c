// NativeStack: argument checks, layout conversion and the GIL-free kernel call.
#include "stack_binding.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace fastrnn {

bool poison_buffers = false;

std::vector<Index> shape_of(const py::array& array) {
    return std::vector<Index>(array.shape(), array.shape() + array.ndim());
}

std::string shape_text(const std::vector<Index>& shape) {
    std::ostringstream text;
    text << "(";
    for (std::size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
    text << (shape.size() == 1 ? ",)" : ")");
    return text.str();
}

std::string shape_text(const py::array& array) {
    return shape_text(shape_of(array));
}

std::string type_text(const py::handle& object) {
    return py::str(py::type::handle_of(object).attr("__name__"));
}

void check_shape(const py::array& array, const std::string& name, const std::vector<Index>& expected,
                 const std::string& note) {
    if (shape_of(array) != expected)
        throw py::value_error(name + ": expected shape " + shape_text(expected) + note + ", got " + shape_text(array));
}

const IsaVariant& parse_isa(const std::string& name) {
    if (name == "auto") return chosen_isa();
    const IsaVariant* variant = find_isa(name.c_str());
    if (!variant) {
        std::string known = "'auto'";
        for (int i = 0; i < isa_variant_count(); ++i) known += std::string(", '") + isa_variants()[i].name + "'";
        throw py::value_error("isa: expected one of " + known + ", got '" + name + "'");
    }
    if (!variant->available()) throw py::value_error("isa: this CPU cannot run the " + name + " kernels");
    return *variant;
}

void swap_time_batch(void* destination, const void* source, Index first, Index second, Index features,
                     std::size_t value_size) {
    const std::size_t row = static_cast<std::size_t>(features) * value_size;
    auto* out = static_cast<char*>(destination);
    const auto* in = static_cast<const char*>(source);
    for (Index i = 0; i < first; ++i)
        for (Index j = 0; j < second; ++j)
            std::memcpy(out + (j * first + i) * row, in + (i * second + j) * row, row);
}

[[noreturn]] void conversion_failed(py::error_already_set& error, const std::string& name) {
    // Raised again as the built-in type it derives from: NumPy's own subclasses (such as its
    // MemoryError) take constructor arguments of their own.
    for (PyObject* type : {PyExc_MemoryError, PyExc_ValueError, PyExc_TypeError}) {
        if (!error.matches(type)) continue;
        const std::string message = name + ": " + std::string(py::str(error.value()));
        py::raise_from(error, type, message.c_str());
        throw py::error_already_set();
    }
    throw error;
}

std::uint64_t physical_memory() {
    static const std::uint64_t bytes = [] {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
        const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page_size > 0) return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
#endif
        return std::uint64_t(0);
    }();
    return bytes;
}

void refuse_memory(long double bytes, const std::string& what) {
    auto gibibytes = [](long double value) {
        std::ostringstream text;
        text.precision(1);
        text << std::fixed << static_cast<double>(value / (1024.0L * 1024 * 1024)) << " GiB";
        return text.str();
    };
    throw py::value_error(what + " would take " + gibibytes(bytes) + ", more than this machine's " +
                          gibibytes(physical_memory()) + " of memory");
}

namespace {

// The most values a layer's parameters, or one call's outputs and workspaces, may take: more
// than any machine's memory, and far enough below 2^63 that the Index arithmetic sizing them
// (sums of a few products, padding, a workspace per thread) cannot overflow.
constexpr long double kMaxValues = 0x1p50L;

// ValueError "<subject>: about N <unit>, more than fastrnn can hold" when count (an estimate in
// floating point, where it cannot overflow) exceeds kMaxValues. describe() returns the pair
// (subject, unit), built only then: every call checks its sizes, and formatting would cost more
// than the check.
template <class Describe> void check_count(long double count, Describe&& describe) {
    if (count <= kMaxValues) return;
    const auto [subject, unit] = describe();
    std::ostringstream text;
    text.precision(3);
    text << subject << ": about " << static_cast<double>(count) << " " << unit << ", more than fastrnn can hold";
    throw py::value_error(text.str());
}

}  // namespace

namespace {

// A size argument: TypeError unless an integer, ValueError unless positive and an Index.
Index size_argument(const py::handle& value, const char* name) {
    if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr()))
        throw py::type_error(std::string(name) + ": expected an integer, got " + type_text(value));
    const auto integer = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
    if (!integer) throw py::error_already_set();
    int overflow = 0;
    const long long size = PyLong_AsLongLongAndOverflow(integer.ptr(), &overflow);
    const std::string text = py::str(integer);
    if (overflow > 0) throw py::value_error(std::string(name) + ": " + text + " is more than fastrnn can hold");
    if (overflow < 0 || size < 1)
        throw py::value_error(std::string(name) + ": expected a positive integer, got " + text);
    return static_cast<Index>(size);
}

}  // namespace

StackConfig make_config(CellKind kind, const py::handle& input_size, const py::handle& hidden_size,
                        const py::handle& num_layers, bool bias, bool bidirectional) {
    StackConfig config{};
    config.kind = kind;
    config.relu = false;
    config.linear_before_reset = true;
    config.has_bias = bias;
    config.input_size = size_argument(input_size, "input_size");
    config.hidden_size = size_argument(hidden_size, "hidden_size");
    config.num_layers = size_argument(num_layers, "num_layers");
    config.directions = bidirectional ? 2 : 1;
    // The exact count is Index arithmetic: its floating-point twin is checked first, so that sizes
    // whose count would overflow get an error, not a wrapped count.
    check_count(param_count_unbounded(config), [&] { return std::pair(describe(config), std::string("parameters")); });
    return config;
}

std::string describe(const StackConfig& config) {
    return std::string(config.name()) + "(input_size=" + std::to_string(config.input_size) +
           ", hidden_size=" + std::to_string(config.hidden_size) + ", num_layers=" + std::to_string(config.num_layers) +
           (config.directions == 2 ? ", bidirectional=True)" : ")");
}

namespace {

// lengths as given (any integer array-like) converted to int64; shapes unchecked.
Matrix<std::int64_t> convert_lengths(const py::object& object) {
    const auto raw = converted<py::array>(object, "lengths");
    if (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u')
        throw py::type_error("lengths: expected integers (one per sequence), got dtype " +
                             std::string(py::str(raw.dtype())));
    return converted<Matrix<std::int64_t>>(raw, "lengths");
}

// Whether `array`, converted from `given`, is a copy of its own (else it is `given` or a view).
bool own_copy(const py::array& array, const py::handle& given) {
    return array.ptr() != given.ptr() && array.owndata();
}

template <class A> auto* data_or_null(const std::optional<A>& array) {
    return array ? array->data() : nullptr;
}

// NaN-fills [data, data + count) when poison_buffers is set.
template <class T> void poison(T* data, Index count) {
    if (poison_buffers && data) std::fill(data, data + count, std::numeric_limits<T>::quiet_NaN());
}

}  // namespace

template <class T>
NativeStack<T>::NativeStack(const StackConfig& config, const std::string& isa)
    : config_(config), kernels_(&kernels<T>(parse_isa(isa))) {
    // The layer allocates its parameters and their gradients next: sizes that cannot fit get
    // an error here, before any allocation or the layout (a list of every tensor) is built.
    check_memory(2.0L * static_cast<long double>(param_count(config)) * sizeof(T), [&] {
        return describe(config) + ": its " + std::string(py::str(py::dtype::of<T>())) + " parameters and their gradients";
    });
}

template <class T>
std::vector<Index> NativeStack<T>::sequence_shape(const Shape& shape, Index features) const {
    if (!shape.batched) return {shape.steps, features};
    if (shape.batch_first) return {shape.batch, shape.steps, features};
    return {shape.steps, shape.batch, features};
}

template <class T> std::vector<Index> NativeStack<T>::state_shape(const Shape& shape) const {
    if (!shape.batched) return {states(), config_.hidden_size};
    return {states(), shape.batch, config_.hidden_size};
}

template <class T>
const T* NativeStack<T>::flat_parameters(const py::object& object, const char* name, bool writeable) const {
    if (!py::isinstance<py::array>(object))
        throw py::type_error(std::string(name) + ": expected the layer's flat " + std::string(py::str(py::dtype::of<T>())) +
                             " parameter buffer");
    const py::array array = py::reinterpret_borrow<py::array>(object);
    if (!array.dtype().is(py::dtype::of<T>()) || array.ndim() != 1 || array.shape(0) != param_count(config_) ||
        !(array.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a contiguous " + std::string(py::str(py::dtype::of<T>())) +
                              " array of shape " + shape_text({param_count(config_)}) + ", got " +
                              std::string(py::str(array.dtype())) + " " + shape_text(array));
    if (writeable && !array.writeable()) throw py::value_error(std::string(name) + ": the array is read-only");
    return static_cast<const T*>(array.data());
}

template <class T>
typename NativeStack<T>::State NativeStack<T>::convert_state(const py::object& state, const std::string& name) const {
    State parts;
    if (state.is_none()) return parts;
    if (config_.state_parts() == 1) {
        if (!py::isinstance<py::array>(state))
            throw py::type_error(name + ": expected an array h of shape (" + std::to_string(states()) + ", batch, " +
                                 std::to_string(config_.hidden_size) +
                                 ") (num_layers * num_directions, batch, hidden_size), got " + type_text(state));
        parts.h = float_array<T>(state, name);
        return parts;
    }
    if (!py::isinstance<py::tuple>(state) && !py::isinstance<py::list>(state))
        throw py::type_error(name + ": expected a tuple (h, c) for an " + config_.name() + ", got " + type_text(state));
    const py::sequence pair = py::reinterpret_borrow<py::sequence>(state);
    const std::size_t size = pair.size();
    if (size != 2)
        throw py::value_error(name + ": expected a tuple (h, c) of 2 arrays, got " + std::to_string(size) + " items");
    parts.h = float_array<T>(pair[0], name + "[0] (h)");
    parts.c = float_array<T>(pair[1], name + "[1] (c)");
    return parts;
}

template <class T>
void NativeStack<T>::check_state(const State& state, const std::string& name, const Shape& shape) const {
    const std::vector<Index> expected = state_shape(shape);
    const std::string note = std::string(" (num_layers * num_directions, ") + (shape.batched ? "batch, " : "") +
                             "hidden_size)";
    if (state.h) check_shape(*state.h, config_.state_parts() == 2 ? name + "[0] (h)" : name, expected, note);
    if (state.c) check_shape(*state.c, name + "[1] (c)", expected, note);
}

template <class T> py::object NativeStack<T>::make_state(const Array& h, const std::optional<Array>& c) const {
    if (c) return py::make_tuple(h, *c);
    return h;
}

template <class T> typename NativeStack<T>::Shape NativeStack<T>::input_shape(const Array& x, bool batch_first) const {
    const Index input_size = config_.input_size;
    if (x.ndim() != 2 && x.ndim() != 3)
        throw py::value_error("x: expected a 3-D array " +
                              std::string(batch_first ? "(batch, seq_len, " : "(seq_len, batch, ") + "input_size=" +
                              std::to_string(input_size) + ") or an unbatched (seq_len, input_size=" +
                              std::to_string(input_size) + "), got shape " + shape_text(x));
    Shape shape{};
    shape.batched = x.ndim() == 3;
    shape.batch_first = shape.batched && batch_first;
    shape.steps = shape.batched ? x.shape(batch_first ? 1 : 0) : x.shape(0);
    shape.batch = shape.batched ? x.shape(batch_first ? 0 : 1) : 1;
    if (x.shape(x.ndim() - 1) != input_size)
        throw py::value_error("x: expected input_size=" + std::to_string(input_size) +
                              " features in the last axis, got shape " + shape_text(x));
    if (shape.steps < 1) throw py::value_error("x: expected at least one time step, got shape " + shape_text(x));
    if (shape.batch < 1) throw py::value_error("x: expected at least one sequence, got shape " + shape_text(x));
    return shape;
}

template <class T>
typename NativeStack<T>::Lengths NativeStack<T>::checked_lengths(const Lengths& lengths, const Shape& shape) const {
    // The messages are base.sequence_lengths', the check users meet first; this one keeps the
    // kernels safe for any caller.
    const std::vector<Index> expected{shape.batch};
    if (shape_of(lengths) != expected)
        throw py::value_error("lengths: expected shape " + shape_text(expected) +
                              " (one integer per sequence), got shape " + shape_text(lengths));
    // A copy of our own, checked: the kernels index with these lengths while the GIL is
    // released, and backward uses them again, so the caller's array must not be read then.
    Lengths own(expected);
    std::copy(lengths.data(), lengths.data() + shape.batch, own.mutable_data());
    const auto [shortest, longest] = std::minmax_element(own.data(), own.data() + shape.batch);
    if (*shortest < 1 || *longest > shape.steps)
        throw py::value_error("lengths: expected values in [1, " + std::to_string(shape.steps) +
                              "] (the steps of x), got values from " + std::to_string(*shortest) + " to " +
                              std::to_string(*longest));
    return own;
}

template <class T> void NativeStack<T>::check_call_size(const Shape& shape, const Array& x) const {
    // The kernels size their buffers in Index arithmetic; this bound, in floating point, keeps
    // it from overflowing. Per row of (T+1)*B: at most (G+4)*H stored or scratch values per
    // layer and direction, 4*D*H for outputs, their gradients and staging, 2*input_size for
    // copies of x. Per-thread workspaces (at most kMaxThreads) stay far below 2^63 with it.
    const long double rows = (shape.steps + 1.0L) * shape.batch;
    const long double widths = static_cast<long double>(config_.directions) * config_.hidden_size;
    const long double per_row =
        widths * (static_cast<long double>(config_.num_layers) * (config_.gates() + 4) + 4) + 2.0L * config_.input_size;
    check_count(rows * per_row, [&] {
        return std::pair("x: shape " + shape_text(x), "values of outputs and workspaces for " + describe(config_));
    });
}

template <class T>
py::tuple NativeStack<T>::forward(const py::object& weights, const py::object& x_object, const py::object& state_object,
                                  const py::object& lengths_object, bool training, bool batch_first, double dropout,
                                  std::uint64_t dropout_seed) {
    BusyGuard busy(*this);
    const Array x = float_array<T>(x_object, "x");
    const State state = convert_state(state_object, "state");
    std::optional<Lengths> given_lengths;
    if (!lengths_object.is_none()) given_lengths = convert_lengths(lengths_object);

    // No Python code runs from here on: the shapes are read once, and the kernels use those.
    const Shape shape = input_shape(x, batch_first);
    check_state(state, "state", shape);
    std::optional<Lengths> lengths;
    if (given_lengths) lengths = checked_lengths(*given_lengths, shape);
    if (!(dropout >= 0 && dropout < 1))
        throw py::value_error("dropout: expected a probability in [0, 1), got " + std::to_string(dropout));
    const T* parameters = flat_parameters(weights, "weights", false);
    check_call_size(shape, x);

    const Index T_ = shape.steps, B = shape.batch, H = config_.hidden_size, DH = config_.directions * H;
    const Index input_size = config_.input_size;
    const int threads = kernels_->useful_threads(config_, B, get_num_threads());
    // Backward reads the forward's input again, so training keeps a copy of its own: the caller
    // may change their array in between.
    const bool copy_x = shape.batch_first || (training && !own_copy(x, x_object));
    const Index stored_size = training ? kernels_->stored_size(config_, T_, B) : 0;
    const Index scratch_size = kernels_->forward_scratch_size(config_, T_, B, training, threads);
    const Index staged_y = shape.batch_first ? T_ * B * DH : 0;
    check_memory(static_cast<long double>(T_ * B * (DH + (copy_x ? input_size : 0)) + 2 * states() * B * H +
                                          staged_y + stored_size + scratch_size) * sizeof(T),
                 [&] { return "x: shape " + shape_text(x) + ": this call's outputs and workspaces"; });

    Array x_time_major = copy_x ? Array({T_, B, input_size}) : x;
    Array y(sequence_shape(shape, DH));
    Array hn(state_shape(shape));
    std::optional<Array> cn;
    if (config_.state_parts() == 2) cn.emplace(state_shape(shape));
    // The stored activations change from here on: the last forward can no longer be differentiated.
    if (training) has_forward_ = false;

    ForwardArgs<T> args{};
    args.config = config_;
    args.steps = T_;
    args.batch = B;
    args.weights = parameters;
    args.x = x_time_major.data();
    args.h0 = data_or_null(state.h);
    args.c0 = data_or_null(state.c);
    args.lengths = data_or_null(lengths);
    args.y = shape.batch_first ? staging_.reserve(staged_y) : y.mutable_data();
    args.hn = hn.mutable_data();
    args.cn = cn ? cn->mutable_data() : nullptr;
    args.training = training;
    args.dropout = dropout;
    args.dropout_seed = dropout_seed;
    args.stored = training ? stored_.reserve(stored_size) : nullptr;
    args.scratch = scratch_.reserve(scratch_size);
    args.threads = threads;
    poison(args.scratch, scratch_size);
    poison(args.stored, stored_size);
    poison(args.y, T_ * B * DH);
    poison(args.hn, states() * B * H);
    poison(args.cn, states() * B * H);
    T* x_staged = copy_x ? x_time_major.mutable_data() : nullptr;   // x itself may be read-only
    T* y_out = y.mutable_data();
    {
        py::gil_scoped_release release;
        if (shape.batch_first) {
            swap_time_batch(x_staged, x.data(), B, T_, input_size, sizeof(T));
        } else if (copy_x) {
            std::memcpy(x_staged, x.data(), static_cast<std::size_t>(T_ * B * input_size) * sizeof(T));
        }
        kernels_->forward(args);
        if (shape.batch_first) swap_time_batch(y_out, args.y, T_, B, DH, sizeof(T));
    }
    if (training) {
        has_forward_ = true;
        forward_shape_ = shape;
        forward_input_ = x_time_major;
        forward_lengths_ = lengths;
        dropout_ = dropout;
        dropout_seed_ = dropout_seed;
    }
    return py::make_tuple(y, make_state(hn, cn));
}

template <class T>
py::tuple NativeStack<T>::backward(const py::object& weights, const py::object& grads_object,
                                   const py::object& dy_object, const py::object& dstate_object, bool input_gradient,
                                   bool state_gradient, bool overwrite_grads) {
    BusyGuard busy(*this);
    const Array dy = float_array<T>(dy_object, "dy");
    const State dstate = convert_state(dstate_object, "dstate");

    // No Python code runs from here on: the last forward cannot change until the kernels end.
    require_forward("backward", "to differentiate");
    const Shape shape = forward_shape_;
    const Index T_ = shape.steps, B = shape.batch, H = config_.hidden_size, DH = config_.directions * H;
    const Index input_size = config_.input_size;
    check_shape(dy, "dy", sequence_shape(shape, DH), " (the forward's output)");
    check_state(dstate, "dstate", shape);
    const T* parameters = flat_parameters(weights, "weights", false);
    T* grads = const_cast<T*>(flat_parameters(grads_object, "grads", true));

    const int threads = kernels_->useful_threads(config_, B, get_num_threads());
    const Index stored_size = kernels_->stored_size(config_, T_, B);   // the forward's: no reallocation
    const Index scratch_size = kernels_->backward_scratch_size(config_, T_, B, threads);
    const Index staged_dy = shape.batch_first ? T_ * B * DH : 0;
    const Index staged_dx = shape.batch_first && input_gradient ? T_ * B * input_size : 0;
    check_memory(static_cast<long double>((input_gradient ? T_ * B * input_size : 0) + 2 * states() * B * H +
                                          staged_dy + staged_dx + scratch_size) * sizeof(T),
                 [&] { return "dy: shape " + shape_text(dy) + ": this call's gradients and workspaces"; });

    std::optional<Array> dx, dh0, dc0;
    if (input_gradient) dx.emplace(sequence_shape(shape, input_size));
    if (state_gradient) dh0.emplace(state_shape(shape));
    if (state_gradient && config_.state_parts() == 2) dc0.emplace(state_shape(shape));

    BackwardArgs<T> args{};
    args.config = config_;
    args.steps = T_;
    args.batch = B;
    args.weights = parameters;
    args.grads = grads;
    args.overwrite_grads = overwrite_grads;
    args.x = forward_input_->data();
    args.lengths = data_or_null(forward_lengths_);
    T* staging = staging_.reserve(staged_dy + staged_dx);
    args.dy = shape.batch_first ? staging : dy.data();
    args.dhn = data_or_null(dstate.h);
    args.dcn = data_or_null(dstate.c);
    args.dx = !dx ? nullptr : shape.batch_first ? staging + staged_dy : dx->mutable_data();
    args.dh0 = dh0 ? dh0->mutable_data() : nullptr;
    args.dc0 = dc0 ? dc0->mutable_data() : nullptr;
    args.dropout = dropout_;
    args.dropout_seed = dropout_seed_;
    args.stored = stored_.reserve(stored_size);
    args.scratch = scratch_.reserve(scratch_size);
    args.threads = threads;
    poison(args.scratch, scratch_size);   // not `stored`: it holds the forward's activations
    poison(args.dx, T_ * B * input_size);
    poison(args.dh0, states() * B * H);
    poison(args.dc0, states() * B * H);
    has_forward_ = false;   // backward overwrites the stored activations
    T* dx_out = dx ? dx->mutable_data() : nullptr;
    {
        py::gil_scoped_release release;
        if (shape.batch_first) swap_time_batch(staging, dy.data(), B, T_, DH, sizeof(T));
        kernels_->backward(args);
        if (shape.batch_first && dx_out) swap_time_batch(dx_out, args.dx, T_, B, input_size, sizeof(T));
    }
    forward_input_.reset();
    forward_lengths_.reset();
    return py::make_tuple(dx ? py::object(*dx) : py::none(), dh0 ? make_state(*dh0, dc0) : py::none());
}

template <class T> void NativeStack<T>::require_forward(const char* call, const char* purpose) const {
    if (!has_forward_)
        throw py::value_error(std::string(call) + ": no training-mode forward " + purpose +
                              "; run forward() in training mode first (each forward supports one backward)");
}

template <class T> py::list NativeStack<T>::stored_activations() {
    BusyGuard busy(*this);
    require_forward("stored_activations", "to read");
    const Index T_ = forward_shape_.steps, B = forward_shape_.batch;
    py::list stored;
    for (Index layer = 0; layer < config_.num_layers; ++layer) {
        for (Index direction = 0; direction < config_.directions; ++direction) {
            StoredPart parts[kMaxStoredParts];
            const int count = kernels_->stored_parts(config_, T_, B, layer, direction, parts);
            py::dict named;
            for (const StoredPart* part = parts; part < parts + count; ++part) {
                Array copy({T_, B, part->width});
                T* out = copy.mutable_data();
                for (Index t = 0; t < T_; ++t)
                    for (Index b = 0; b < B; ++b, out += part->width)
                        std::memcpy(out, stored_.data() + part->offset + t * part->step_stride + b * part->row_stride,
                                    static_cast<std::size_t>(part->width) * sizeof(T));
                named[part->name] = copy;
            }
            stored.append(named);
        }
    }
    return stored;
}

template <class T> void NativeStack<T>::step(const T* weights, const T* x, T* h, T* c, T* y, int threads) {
    ForwardArgs<T> args{};
    args.config = config_;
    args.steps = 1;
    args.batch = 1;
    args.weights = weights;
    args.x = x;
    args.h0 = h;   // read per layer before that layer's new state is written: in place is fine
    args.c0 = config_.state_parts() == 2 ? c : nullptr;
    args.y = y;
    args.hn = h;
    args.cn = args.c0 ? c : nullptr;
    args.scratch = scratch_.reserve(kernels_->forward_scratch_size(config_, 1, 1, false, threads));
    args.threads = threads;
    kernels_->forward(args);
}

template <class T> py::list NativeStack<T>::parameter_placements() const {
    py::list placements;
    const Index H = config_.hidden_size, GH = config_.gates() * H;
    for (Index layer = 0; layer < config_.num_layers; ++layer) {
        for (Index direction = 0; direction < config_.directions; ++direction) {
            const ParamOffsets o = param_offsets(config_, layer, direction);
            placements.append(py::make_tuple(o.weight_ih, py::make_tuple(GH, config_.layer_input_size(layer)),
                                             o.ih_stride));
            placements.append(py::make_tuple(o.weight_hh, py::make_tuple(GH, H), o.hh_stride));
            if (config_.has_bias) {
                placements.append(py::make_tuple(o.bias_ih, py::make_tuple(GH)));
                placements.append(py::make_tuple(o.bias_hh, py::make_tuple(GH)));
            }
        }
    }
    return placements;
}

template class NativeStack<float>;
template class NativeStack<double>;

}  // namespace fastrnn

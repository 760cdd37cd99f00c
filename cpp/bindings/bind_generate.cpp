// Python binding of the generation loop of a character model (Sequential.generate): input table
// -> recurrent stacks -> dense head -> sample, token after token in C++ without the GIL, so a
// token costs the kernels' time and nothing else.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "stack_binding.h"

namespace fastrnn {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// An id drawn from softmax(logits / temperature) over the top_k largest logits (all when
// top_k is 0) by the Gumbel-max trick, or the argmax when temperature is 0.
template <class T>
Index sample_id(const T* logits, Index classes, double temperature, Index top_k, std::uint64_t& rng,
                std::vector<T>& sorted) {
    double threshold = -std::numeric_limits<double>::infinity();
    if (top_k > 0 && top_k < classes) {
        sorted.assign(logits, logits + classes);
        std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<T>());
        threshold = sorted[top_k - 1];
    }
    Index best = 0;
    double best_score = -std::numeric_limits<double>::infinity();
    for (Index id = 0; id < classes; ++id) {
        if (logits[id] < threshold) continue;
        double score = logits[id];
        if (temperature > 0) {
            const double uniform = (double(splitmix64(rng) >> 11) + 0.5) * 0x1.0p-53;   // in (0, 1)
            score = score / temperature - std::log(-std::log(uniform));
        }
        if (score > best_score) {
            best_score = score;
            best = id;
        }
    }
    return best;
}

template <class T> struct Layer {
    NativeStack<T>* stack;
    const T* weights;
    int threads;   // the stack's useful threads for one step at batch 1
    std::vector<T> h, c, y;
};

template <class T>
py::array_t<std::int64_t> generate(const py::list& stacks, const py::list& weights, const py::list& states,
                                   const py::object& table_object, const py::object& head_object,
                                   const py::object& head_bias_object, const py::object& logits_object, Index length,
                                   double temperature, Index top_k, std::uint64_t seed) {
    using Stack = NativeStack<T>;
    if (stacks.size() == 0 || weights.size() != stacks.size() || states.size() != stacks.size())
        throw py::value_error("stacks, weights, states: expected one entry each per recurrent layer");
    if (length < 0) throw py::value_error("length: expected a non-negative number of tokens");
    if (!(temperature >= 0)) throw py::value_error("temperature: expected a number >= 0");
    if (top_k < 0) throw py::value_error("top_k: expected a positive number, or 0 for all");

    // Every stack stays busy for the whole call, conversions included (see BusyGuard).
    std::vector<Stack*> natives;
    std::vector<std::unique_ptr<typename Stack::BusyGuard>> busy;
    for (std::size_t i = 0; i < stacks.size(); ++i) {
        if (!py::isinstance<Stack>(stacks[i]))
            throw py::type_error("stacks[" + std::to_string(i) + "]: expected a " +
                                 std::string(py::str(py::dtype::of<T>())) + " recurrent stack, got " +
                                 type_text(stacks[i]));
        natives.push_back(&stacks[i].cast<Stack&>());
        busy.push_back(std::make_unique<typename Stack::BusyGuard>(*natives.back()));
    }
    const Matrix<T> table = float_array<T>(table_object, "input_table");
    const Matrix<T> head = float_array<T>(head_object, "head_weight");
    const Matrix<T> first_logits = float_array<T>(logits_object, "logits");
    std::optional<Matrix<T>> head_bias;
    if (!head_bias_object.is_none()) head_bias = float_array<T>(head_bias_object, "head_bias");
    std::vector<typename Stack::State> initial_states;
    for (std::size_t i = 0; i < natives.size(); ++i)
        initial_states.push_back(natives[i]->convert_state(states[i], "states[" + std::to_string(i) + "]"));

    // No Python code runs from here on: the shapes are read once, and the loop uses those.
    if (table.ndim() != 2 || table.shape(0) < 1)
        throw py::value_error("input_table: expected a 2-D array (ids, features) with at least one id, got shape " +
                              shape_text(table));
    const Index classes = table.shape(0), table_width = table.shape(1);
    const std::string per_id = " (one row per input id)";
    check_shape(first_logits, "logits", {classes}, per_id);
    if (head_bias) check_shape(*head_bias, "head_bias", {classes}, per_id);

    std::vector<Layer<T>> layers;
    Index features = table_width;
    const int threads = get_num_threads();
    for (std::size_t i = 0; i < natives.size(); ++i) {
        Stack& stack = *natives[i];
        const StackConfig& config = stack.config();
        if (config.input_size != features)
            throw py::value_error("generate: recurrent layer " + std::to_string(i) + " expects " +
                                  std::to_string(config.input_size) + " input features, gets " + std::to_string(features));
        const Index state_size = config.num_layers * config.directions * config.hidden_size;
        const Index width = config.directions * config.hidden_size;
        Layer<T> layer{&stack, nullptr, stack.useful_threads(1, threads), std::vector<T>(state_size),
                       std::vector<T>(state_size), std::vector<T>(width)};
        layer.weights = stack.flat_parameters(weights[i], ("weights[" + std::to_string(i) + "]").c_str(), false);
        // The state after the prime, for a batch of one sequence; None means zeros.
        const typename Stack::State& state = initial_states[i];
        stack.check_state(state, "states[" + std::to_string(i) + "]", {1, 1, true, false});
        if (state.h) std::copy(state.h->data(), state.h->data() + state_size, layer.h.data());
        if (state.c) std::copy(state.c->data(), state.c->data() + state_size, layer.c.data());
        features = width;
        layers.push_back(std::move(layer));
    }
    check_shape(head, "head_weight", {classes, features}, per_id);

    py::array_t<std::int64_t> ids(length);
    std::int64_t* out = ids.mutable_data();
    std::vector<T> logits(first_logits.data(), first_logits.data() + classes), sorted;
    const KernelTable<T>& kernels = fastrnn::kernels<T>(chosen_isa());
    std::vector<T> head_scratch(kernels.linear_scratch_size(classes, features));
    std::uint64_t rng = seed;
    {
        py::gil_scoped_release release;
        for (Index index = 0; index < length; ++index) {
            const Index token = sample_id(logits.data(), classes, temperature, top_k, rng, sorted);
            out[index] = token;
            if (index + 1 == length) break;
            const T* x = table.data() + token * table_width;
            for (Layer<T>& layer : layers) {
                layer.stack->step(layer.weights, x, layer.h.data(), layer.c.data(), layer.y.data(), layer.threads);
                x = layer.y.data();
            }
            kernels.linear_forward(logits.data(), x, head.data(), head_bias ? head_bias->data() : nullptr, 1, classes,
                                   features, head_scratch.data(), 1);
        }
    }
    return ids;
}

// One id per row of logits (rows, ids), each drawn as sample_id draws: the one sampling routine
// of fastrnn, behind generate's loop and Python's sampling (generation.sample_ids) alike.
template <class T>
py::array_t<std::int64_t> sample_rows(const py::object& logits_object, double temperature, Index top_k,
                                      std::uint64_t seed) {
    if (!(temperature >= 0)) throw py::value_error("temperature: expected a number >= 0");
    if (top_k < 0) throw py::value_error("top_k: expected a positive number, or 0 for all");
    const Matrix<T> logits = float_array<T>(logits_object, "logits");
    if (logits.ndim() != 2 || logits.shape(1) < 1)
        throw py::value_error("logits: expected a 2-D array (rows, ids) with at least one id, got shape " +
                              shape_text(logits));
    const Index rows = logits.shape(0), classes = logits.shape(1);
    py::array_t<std::int64_t> ids(rows);
    std::int64_t* out = ids.mutable_data();
    std::vector<T> sorted;
    std::uint64_t rng = seed;
    for (Index row = 0; row < rows; ++row)
        out[row] = sample_id(logits.data() + row * classes, classes, temperature, top_k, rng, sorted);
    return ids;
}

}  // namespace

void bind_generate(py::module_& m) {
    const char* sample_doc = "One id per row of logits (rows, ids): Gumbel-max over the top_k (0: all), argmax at "
                             "temperature 0.";
    m.def("sample_float32", &sample_rows<float>, py::arg("logits"), py::arg("temperature"), py::arg("top_k"),
          py::arg("seed"), sample_doc);
    m.def("sample_float64", &sample_rows<double>, py::arg("logits"), py::arg("temperature"), py::arg("top_k"),
          py::arg("seed"), sample_doc);
    const char* doc = "Samples `length` ids of a character model: input table -> recurrent stacks -> head.";
    m.def("generate_float32", &generate<float>, py::arg("stacks"), py::arg("weights"), py::arg("states"),
          py::arg("input_table"), py::arg("head_weight"), py::arg("head_bias"), py::arg("logits"), py::arg("length"),
          py::arg("temperature"), py::arg("top_k"), py::arg("seed"), doc);
    m.def("generate_float64", &generate<double>, py::arg("stacks"), py::arg("weights"), py::arg("states"),
          py::arg("input_table"), py::arg("head_weight"), py::arg("head_bias"), py::arg("logits"), py::arg("length"),
          py::arg("temperature"), py::arg("top_k"), py::arg("seed"), doc);
}

}  // namespace fastrnn

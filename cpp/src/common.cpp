// Out-of-line definitions for common.h (see there why they are not inline).
#include "fastrnn/common.h"

#include <cmath>
#include <type_traits>

namespace fastrnn {

Index StackConfig::gates() const {
    return kCellKinds[static_cast<int>(kind)].gates;
}

int StackConfig::state_parts() const {
    return kCellKinds[static_cast<int>(kind)].state_parts;
}

const char* StackConfig::name() const {
    return kCellKinds[static_cast<int>(kind)].name;
}

Index StackConfig::layer_input_size(Index layer) const {
    return layer == 0 ? input_size : directions * hidden_size;
}

// The layout's arithmetic is written once, for two number types: Index, the exact offsets and
// count; and long double, the same count where it cannot overflow, which make_config checks
// before any Index arithmetic runs (exact up to 2^64, far beyond any size it accepts).
template <class N> static N round_up(N value, Index multiple) {
    if constexpr (std::is_floating_point_v<N>) return std::ceil(value / multiple) * multiple;
    else return (value + multiple - 1) / multiple * multiple;
}

// Values a tensor of `count` values occupies, padding to the next tensor's start included.
template <class N> static N tensor_size(N count) {
    return round_up(count, kTensorAlignment);
}

// One layer-direction's block of the buffer: its tensors' offsets from the block's start, their
// row strides, and the values the block occupies (padding included).
namespace {
template <class N> struct Block {
    N weight_ih, weight_hh, bias_ih, bias_hh, ih_stride, hh_stride, size;
};
}  // namespace

template <class N> static Block<N> layer_direction_block(const StackConfig& config, Index layer) {
    const N hidden = static_cast<N>(config.hidden_size);
    const N gate_rows = static_cast<N>(config.gates()) * hidden;
    const N input = layer == 0 ? static_cast<N>(config.input_size) : static_cast<N>(config.directions) * hidden;
    Block<N> b{};
    b.ih_stride = round_up(input, kRowAlignment);
    b.hh_stride = round_up(hidden, kRowAlignment);
    b.weight_ih = 0;
    b.weight_hh = tensor_size(gate_rows * b.ih_stride);
    const N weights_end = b.weight_hh + tensor_size(gate_rows * b.hh_stride);
    b.bias_ih = config.has_bias ? weights_end : N(-1);
    b.bias_hh = config.has_bias ? weights_end + tensor_size(gate_rows) : N(-1);
    b.size = config.has_bias ? b.bias_hh + tensor_size(gate_rows) : weights_end;
    return b;
}

// Values before layer `layer`'s blocks: every layer above the first has the same input size
// (directions * hidden_size), hence the same block size, so this takes no loop over the layers.
template <class N> static N layer_begin(const StackConfig& config, Index layer) {
    if (layer == 0) return 0;
    return static_cast<N>(config.directions) * (layer_direction_block<N>(config, 0).size +
                                                static_cast<N>(layer - 1) * layer_direction_block<N>(config, 1).size);
}

ParamOffsets param_offsets(const StackConfig& config, Index layer, Index direction) {
    const Block<Index> b = layer_direction_block<Index>(config, layer);
    const Index begin = layer_begin<Index>(config, layer) + direction * b.size;
    return {begin + b.weight_ih, begin + b.weight_hh, config.has_bias ? begin + b.bias_ih : -1,
            config.has_bias ? begin + b.bias_hh : -1, b.ih_stride, b.hh_stride};
}

Index param_count(const StackConfig& config) {
    return layer_begin<Index>(config, config.num_layers);
}

long double param_count_unbounded(const StackConfig& config) {
    return layer_begin<long double>(config, config.num_layers);
}

}  // namespace fastrnn

// Out-of-line definitions for common.h (see there why they are not inline).
#include "fastrnn/common.h"

namespace fastrnn {

Index StackConfig::gates() const {
    return kind == CellKind::lstm ? 4 : kind == CellKind::gru ? 3 : 1;
}

Index StackConfig::layer_input_size(Index layer) const {
    return layer == 0 ? input_size : directions * hidden_size;
}

static Index round_up(Index value, Index multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

// Values a tensor of `count` values occupies, padding to the next tensor's start included.
static Index tensor_size(Index count) {
    return round_up(count, kTensorAlignment);
}

// The tensors of one layer-direction's block of the buffer when it starts at `begin`, and the
// values the block occupies (padding included).
namespace {
struct Block {
    ParamOffsets offsets;
    Index size;
};
}  // namespace

static Block layer_direction_block(const StackConfig& config, Index layer, Index begin) {
    const Index gate_rows = config.gates() * config.hidden_size;
    ParamOffsets o;
    o.ih_stride = round_up(config.layer_input_size(layer), kRowAlignment);
    o.hh_stride = round_up(config.hidden_size, kRowAlignment);
    o.weight_ih = begin;
    o.weight_hh = o.weight_ih + tensor_size(gate_rows * o.ih_stride);
    const Index weights_end = o.weight_hh + tensor_size(gate_rows * o.hh_stride);
    o.bias_ih = config.has_bias ? weights_end : -1;
    o.bias_hh = config.has_bias ? weights_end + tensor_size(gate_rows) : -1;
    const Index end = config.has_bias ? o.bias_hh + tensor_size(gate_rows) : weights_end;
    return {o, end - begin};
}

static Index layer_direction_size(const StackConfig& config, Index layer) {
    return layer_direction_block(config, layer, 0).size;
}

// Values before layer `layer`'s blocks: every layer above the first has the same input size
// (directions * hidden_size), hence the same block size, so this takes no loop over the layers.
static Index layer_begin(const StackConfig& config, Index layer) {
    if (layer == 0) return 0;
    return config.directions * (layer_direction_size(config, 0) + (layer - 1) * layer_direction_size(config, 1));
}

ParamOffsets param_offsets(const StackConfig& config, Index layer, Index direction) {
    const Index begin = layer_begin(config, layer) + direction * layer_direction_size(config, layer);
    return layer_direction_block(config, layer, begin).offsets;
}

Index param_count(const StackConfig& config) {
    return layer_begin(config, config.num_layers);
}

}  // namespace fastrnn

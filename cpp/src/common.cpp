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

static Index layer_direction_size(const StackConfig& config, Index layer) {
    const Index gate_rows = config.gates() * config.hidden_size;
    return tensor_size(gate_rows * round_up(config.layer_input_size(layer), kRowAlignment)) +
           tensor_size(gate_rows * round_up(config.hidden_size, kRowAlignment)) +
           (config.has_bias ? 2 * tensor_size(gate_rows) : 0);
}

ParamOffsets param_offsets(const StackConfig& config, Index layer, Index direction) {
    Index offset = 0;
    for (Index l = 0; l < layer; ++l) offset += config.directions * layer_direction_size(config, l);
    offset += direction * layer_direction_size(config, layer);
    const Index gate_rows = config.gates() * config.hidden_size;
    ParamOffsets result;
    result.ih_stride = round_up(config.layer_input_size(layer), kRowAlignment);
    result.hh_stride = round_up(config.hidden_size, kRowAlignment);
    result.weight_ih = offset;
    result.weight_hh = offset + tensor_size(gate_rows * result.ih_stride);
    const Index bias_begin = result.weight_hh + tensor_size(gate_rows * result.hh_stride);
    result.bias_ih = config.has_bias ? bias_begin : -1;
    result.bias_hh = config.has_bias ? bias_begin + tensor_size(gate_rows) : -1;
    return result;
}

Index param_count(const StackConfig& config) {
    Index count = 0;
    for (Index l = 0; l < config.num_layers; ++l) count += config.directions * layer_direction_size(config, l);
    return count;
}

}  // namespace fastrnn

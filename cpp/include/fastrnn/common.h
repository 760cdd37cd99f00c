// Conventions every fastrnn kernel follows, stated once.
//
// - Matrices are row-major; sequences are time-major [T, B, features] inside the kernels.
// - Argument order: outputs, then inputs, then sizes.
// - Backward functions ADD into parameter gradients (callers zero them first), except that the
//   stack backward overwrites them when BackwardArgs::overwrite_grads is set.
// - Pointer parameters document their shape as [rows, cols]; unless a comment says so,
//   no output may alias an input.
// - Kernels do not validate: the bindings check every shape before calling them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastrnn {

using Index = std::ptrdiff_t;

enum class CellKind : int { rnn, lstm, gru };

// What the code outside the kernels knows of each cell kind, indexed by CellKind: its name in
// messages, its gate blocks G and its state parts (1: h; 2: h and the cell state c). Each
// cell's header (cpp/kernels/cells/) static_asserts that it agrees.
struct CellKindInfo {
    const char* name;
    int gates;
    int state_parts;
};
inline constexpr CellKindInfo kCellKinds[] = {{"RNN", 1, 1}, {"LSTM", 4, 2}, {"GRU", 3, 1}};

// Everything that fixes the shape of a stacked, possibly bidirectional recurrent layer.
// Only plain data and out-of-line functions live in this header: it is shared by the
// per-instruction-set kernel translation units, which must not share inline code.
struct StackConfig {
    CellKind kind;
    bool relu;                   // rnn only: relu instead of tanh
    bool linear_before_reset;    // gru only: PyTorch/cuDNN formulation
    bool has_bias;
    Index input_size;
    Index hidden_size;
    Index num_layers;
    Index directions;            // 1 or 2

    Index gates() const;                       // G: 1 rnn, 4 lstm, 3 gru
    int state_parts() const;                   // 1 (h), or 2 (h, c: lstm)
    const char* name() const;                  // "RNN", "LSTM", "GRU"
    Index layer_input_size(Index layer) const; // input_size for layer 0, else D*H
};

// Offsets of one layer-direction's tensors inside the flat parameter buffer. The buffer holds,
// for each layer then direction, weight_ih [G*H, in], weight_hh [G*H, H], then (with bias)
// bias_ih [G*H] and bias_hh [G*H]: PyTorch's order and shapes. Padding keeps vector loads off
// cache-line boundaries: every tensor starts on a multiple of kTensorAlignment values and
// every weight row on a multiple of kRowAlignment (row strides ih_stride >= in, hh_stride >= H).
// Kernels never read the padding.
constexpr Index kRowAlignment = 8, kTensorAlignment = 16;

struct ParamOffsets {
    Index weight_ih, weight_hh, bias_ih, bias_hh;   // bias offsets are -1 without bias
    Index ih_stride, hh_stride;                     // row strides of weight_ih and weight_hh
};

ParamOffsets param_offsets(const StackConfig& config, Index layer, Index direction);
Index param_count(const StackConfig& config);
// param_count's value computed in floating point, where it cannot overflow: check it against a
// bound before param_count or param_offsets run for sizes a caller chose.
long double param_count_unbounded(const StackConfig& config);

}  // namespace fastrnn

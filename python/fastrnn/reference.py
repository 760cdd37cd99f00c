"""Pure-NumPy reference RNN/LSTM/GRU with PyTorch's semantics: the executable specification
that every C++ kernel of fastrnn is checked against, written to be read rather than to be fast.
"""

# Layout: helpers, then one *_step_forward / *_step_backward pair per cell kind, then one
# single-direction sequence pass (where packed-sequence lengths are handled), then the stack
# driver (forward / backward) over layers and directions.
# Conventions: x is time-major (T, B, I); a recurrent state is a tuple, (h,) or (h, c) for LSTM,
# each (B, H); the weights of one layer and direction are a dict {"w_ih", "w_hh", "b_ih", "b_hh"}
# (biases None when absent) with rows stacked by gate in PyTorch order. Cell backward functions
# *add* into their grads dict, like the C++ kernels.

from functools import partial

import numpy as np

from .base import sequence_lengths

MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
STATE_NAMES = ("h", "c")  # names of the recurrent state parts, in the order of the state tuple


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def param_names(layer, direction):
    """PyTorch's parameter names of one layer and direction, keyed by our short names: fastrnn's
    one source of these names (its layers, io and the native layout's order follow it)."""
    suffix = "_reverse" if direction == 1 else ""
    return {
        "w_ih": f"weight_ih_l{layer}{suffix}",
        "w_hh": f"weight_hh_l{layer}{suffix}",
        "b_ih": f"bias_ih_l{layer}{suffix}",
        "b_hh": f"bias_hh_l{layer}{suffix}",
    }


def stack_param_names(num_layers=1, bidirectional=False, bias=True):
    """The names of a stack's parameters in PyTorch's order: per layer, per direction, w_ih,
    w_hh and (with bias) b_ih, b_hh."""
    kept = ("w_ih", "w_hh", "b_ih", "b_hh") if bias else ("w_ih", "w_hh")
    return [param_names(layer, direction)[key] for layer in range(num_layers)
            for direction in range(2 if bidirectional else 1) for key in kept]


def param_shapes(mode, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True):
    """Ordered {name: shape} exactly as PyTorch's nn.RNN/LSTM/GRU lists its parameters."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    directions = 2 if bidirectional else 1
    gate_rows = GATES[mode] * hidden_size
    shapes = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * hidden_size
        for direction in range(directions):
            names = param_names(layer, direction)
            shapes[names["w_ih"]] = (gate_rows, layer_input)
            shapes[names["w_hh"]] = (gate_rows, hidden_size)
            if bias:
                shapes[names["b_ih"]] = (gate_rows,)
                shapes[names["b_hh"]] = (gate_rows,)
    return shapes


def init_params(mode, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                dtype=np.float64, seed=None):
    """PyTorch's default initialisation: every tensor U(-1/sqrt(H), 1/sqrt(H))."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = param_shapes(mode, input_size, hidden_size, num_layers, bidirectional, bias)
    return {name: rng.uniform(-bound, bound, shape).astype(dtype) for name, shape in shapes.items()}


# ---------------------------------------------------------------------------------------------
# Helpers shared by the cells
# ---------------------------------------------------------------------------------------------


def _sigmoid(z):
    # equals 1 / (1 + exp(-z)) but cannot overflow (no warnings for large |z|, any float dtype)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _affine(inputs, weights, side, rows=slice(None)):
    """inputs @ W.T + b for W, b = weights["w_" + side], weights["b_" + side] (side "ih" or
    "hh"), restricted to the gate rows `rows`."""
    out = inputs @ weights["w_" + side][rows].T
    bias = weights["b_" + side]
    return out if bias is None else out + bias[rows]


def _affine_backward(d_out, inputs, weights, grads, side, rows=slice(None)):
    """Backward of `_affine`: adds dW, db into grads (same rows) and returns d inputs."""
    grads["w_" + side][rows] += d_out.T @ inputs  # dW = sum over batch of d_out^T inputs
    if grads["b_" + side] is not None:
        grads["b_" + side][rows] += d_out.sum(axis=0)  # db = sum over batch of d_out
    return d_out @ weights["w_" + side][rows]  # d inputs = d_out W


# ---------------------------------------------------------------------------------------------
# Cells: one time step, forward and backward side by side.
#
# step_forward(x, state, weights) -> (new_state, acts)
#     x (B, I); state tuple of (B, H); acts: the step's stored activations, {"gates": (B, G*H)}
#     plus "hn" (B, H) for GRU with linear_before_reset.
# step_backward(d_new_state, x, state, step, weights, grads) -> (dx, d_state)
#     state is the state *before* the step; step holds the stored buffers of the step: the acts
#     and the new state parts "h" (and "c").
# ---------------------------------------------------------------------------------------------


def rnn_step_forward(x, state, weights, nonlinearity):
    (h,) = state
    pre = _affine(x, weights, "ih") + _affine(h, weights, "hh")  # W_ih x + b_ih + W_hh h + b_hh
    h_new = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)  # h' = act(pre)
    return (h_new,), {"gates": h_new}


def rnn_step_backward(d_new, x, state, step, weights, grads, nonlinearity):
    (dh_new,) = d_new
    (h,) = state
    h_new = step["gates"]  # the activation output, not the carried state (differs when padded)
    if nonlinearity == "tanh":
        d_pre = dh_new * (1 - h_new**2)  # tanh' = 1 - tanh^2
    else:
        d_pre = dh_new * (h_new > 0)  # relu' = 1 where the output is positive (0 at the kink)
    dx = _affine_backward(d_pre, x, weights, grads, "ih")
    dh = _affine_backward(d_pre, h, weights, grads, "hh")
    return dx, (dh,)


def lstm_step_forward(x, state, weights):
    h, c = state
    pre = _affine(x, weights, "ih") + _affine(h, weights, "hh")  # (B, 4H): blocks i, f, g, o
    pre_i, pre_f, pre_g, pre_o = np.split(pre, 4, axis=1)
    i, f, g, o = _sigmoid(pre_i), _sigmoid(pre_f), np.tanh(pre_g), _sigmoid(pre_o)
    c_new = f * c + i * g  # c' = f c + i g
    h_new = o * np.tanh(c_new)  # h' = o tanh(c')
    return (h_new, c_new), {"gates": np.concatenate([i, f, g, o], axis=1)}


def lstm_step_backward(d_new, x, state, step, weights, grads):
    dh_new, dc_new = d_new
    h, c = state
    i, f, g, o = np.split(step["gates"], 4, axis=1)
    tanh_c_new = np.tanh(step["c"])
    do = dh_new * tanh_c_new  # from h' = o tanh(c')
    dc_total = dc_new + dh_new * o * (1 - tanh_c_new**2)  # c' reaches the loss directly and via h'
    di, df, dg = dc_total * g, dc_total * c, dc_total * i  # from c' = f c + i g
    d_pre = np.concatenate([di * i * (1 - i),  # sigmoid' = s (1 - s)
                            df * f * (1 - f),
                            dg * (1 - g**2),  # tanh' = 1 - tanh^2
                            do * o * (1 - o)], axis=1)
    dx = _affine_backward(d_pre, x, weights, grads, "ih")
    dh = _affine_backward(d_pre, h, weights, grads, "hh")
    return dx, (dh, dc_total * f)  # dc = dc' f


def _gru_rows(hidden_size):
    """Row ranges of the (r, z) gate blocks and of the n block in GRU weights."""
    return slice(0, 2 * hidden_size), slice(2 * hidden_size, 3 * hidden_size)


def gru_step_forward(x, state, weights, linear_before_reset):
    (h,) = state
    rz_rows, n_rows = _gru_rows(h.shape[1])
    pre_x = _affine(x, weights, "ih")  # (B, 3H): W_i{r,z,n} x + b_i{r,z,n}
    pre_rz = pre_x[:, rz_rows] + _affine(h, weights, "hh", rz_rows)  # + W_h{r,z} h + b_h{r,z}
    r, z = np.split(_sigmoid(pre_rz), 2, axis=1)
    acts = {}
    if linear_before_reset:
        hn = _affine(h, weights, "hh", n_rows)  # hn = W_hn h + b_hn
        n = np.tanh(pre_x[:, n_rows] + r * hn)  # n = tanh(W_in x + b_in + r hn)
        acts["hn"] = hn
    else:
        n = np.tanh(pre_x[:, n_rows] + _affine(r * h, weights, "hh", n_rows))  # + W_hn (r h) + b_hn
    h_new = (1 - z) * n + z * h  # h' = (1 - z) n + z h
    return (h_new,), {"gates": np.concatenate([r, z, n], axis=1), **acts}


def gru_step_backward(d_new, x, state, step, weights, grads, linear_before_reset):
    (dh_new,) = d_new
    (h,) = state
    rz_rows, n_rows = _gru_rows(h.shape[1])
    r, z, n = np.split(step["gates"], 3, axis=1)
    dh = dh_new * z  # from h' = (1 - z) n + z h, direct path
    dz = dh_new * (h - n)
    d_pre_n = dh_new * (1 - z) * (1 - n**2)  # through n = tanh(pre_n)
    if linear_before_reset:
        dr = d_pre_n * step["hn"]  # pre_n = ... + r hn
        dh += _affine_backward(d_pre_n * r, h, weights, grads, "hh", n_rows)  # hn = W_hn h + b_hn
    else:
        d_reset_h = _affine_backward(d_pre_n, r * h, weights, grads, "hh", n_rows)  # W_hn (r h)
        dr = d_reset_h * h
        dh += d_reset_h * r
    d_pre_rz = np.concatenate([dr * r * (1 - r), dz * z * (1 - z)], axis=1)  # sigmoid'
    dh += _affine_backward(d_pre_rz, h, weights, grads, "hh", rz_rows)
    dx = _affine_backward(np.concatenate([d_pre_rz, d_pre_n], axis=1), x, weights, grads, "ih")
    return dx, (dh,)


def _cell(mode, linear_before_reset):
    """The (step_forward, step_backward) pair of a mode, options bound."""
    if mode == "lstm":
        return lstm_step_forward, lstm_step_backward
    if mode == "gru":
        return (partial(gru_step_forward, linear_before_reset=linear_before_reset),
                partial(gru_step_backward, linear_before_reset=linear_before_reset))
    nonlinearity = mode.removeprefix("rnn_")
    return (partial(rnn_step_forward, nonlinearity=nonlinearity),
            partial(rnn_step_backward, nonlinearity=nonlinearity))


# ---------------------------------------------------------------------------------------------
# One layer, one direction, with packed-sequence lengths
# ---------------------------------------------------------------------------------------------


def _time_order(steps, reverse):
    """Time indices in the order a direction visits them."""
    return list(range(steps - 1, -1, -1)) if reverse else list(range(steps))


def _valid_steps(steps, lengths):
    """(T, B, 1) bool: True where step t exists in sequence b (t < lengths[b])."""
    return (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]


def _sequence_forward(cell_forward, x, state0, weights, lengths, reverse):
    """Runs a cell over x (T, B, I) from state0 (tuple of (B, H)).

    A sequence keeps its state through its padded steps t >= lengths[b]: forward, its final
    state is the one after its last valid step; in reverse, the padded steps come first, so it
    starts at lengths[b] - 1 from state0. Returns y (T, B, H) (zero where padded), the final
    state and the stored buffers {name: (T, B, ...)}: the cell's acts and the state parts "h"
    ("c") after each step. Padded steps carry "h" ("c"); the acts there are zero here but are
    not part of the specification (a kernel may skip those steps), so compare valid steps only.
    """
    valid = _valid_steps(len(x), lengths)
    state = state0
    records = [None] * len(x)
    for t in _time_order(len(x), reverse):
        new_state, acts = cell_forward(x[t], state, weights)
        state = tuple(np.where(valid[t], new, old) for new, old in zip(new_state, state))
        records[t] = {name: np.where(valid[t], value, 0) for name, value in acts.items()}
        records[t].update(zip(STATE_NAMES, state))
    stored = {name: np.stack([record[name] for record in records]) for name in records[0]}
    y = np.where(valid, stored["h"], 0)
    return y, state, stored


def _sequence_backward(cell_backward, x, state0, stored, weights, lengths, reverse, dy,
                       d_state_n):
    """Backward of `_sequence_forward`: returns dx (T, B, I), d state0 and the weight grads."""
    valid = _valid_steps(len(x), lengths)
    grads = {key: None if value is None else np.zeros_like(value) for key, value in weights.items()}
    dx = np.zeros_like(x)
    state_names = STATE_NAMES[:len(state0)]
    order = _time_order(len(x), reverse)
    d_state = d_state_n
    for position in range(len(order) - 1, -1, -1):
        t = order[position]
        if position == 0:
            state = state0
        else:
            state = tuple(stored[name][order[position - 1]] for name in state_names)
        step = {name: buffer[t] for name, buffer in stored.items()}
        # y[t] = h only where valid, so dy at padded steps is ignored; a padded step passes
        # its state gradient through unchanged and gets a zero gradient for its own math
        d_new = (d_state[0] + dy[t],) + d_state[1:]
        d_new = tuple(np.where(valid[t], d, 0) for d in d_new)
        dx[t], d_old = cell_backward(d_new, x[t], state, step, weights, grads)
        d_state = tuple(np.where(valid[t], old, carried) for old, carried in zip(d_old, d_state))
    return dx, d_state, grads


# ---------------------------------------------------------------------------------------------
# Stack driver: layers and directions
# ---------------------------------------------------------------------------------------------


def _state_tuple(mode, state, shape, dtype):
    """A public state (h, or (h, c) for lstm; None means zeros) as a tuple of arrays."""
    parts = 2 if mode == "lstm" else 1
    if state is None:
        return tuple(np.zeros(shape, dtype) for _ in range(parts))
    state = tuple(state) if mode == "lstm" else (state,)
    if len(state) != parts or any(np.shape(part) != shape for part in state):
        raise ValueError(f"state for {mode} must be {parts} array(s) of shape {shape}")
    return tuple(np.asarray(part, dtype=dtype) for part in state)


def _public_state(mode, state):
    """The tuple form back to the public one: (h, c) for lstm, h otherwise."""
    return state if mode == "lstm" else state[0]


def _check_lengths(lengths, steps, batch):
    """lengths by fastrnn's one check of them; None: every sequence has all the steps."""
    return np.full(batch, steps) if lengths is None else sequence_lengths(lengths, batch, steps)


def forward(mode, x, params, *, num_layers=1, bidirectional=False, state=None, lengths=None,
            linear_before_reset=True, dropout_masks=None):
    """Forward pass of a (stacked, optionally bidirectional) RNN/LSTM/GRU, PyTorch semantics.

    x: (T, B, I); params: as `param_shapes` names them; state: h0 (L*D, B, H), or (h0, c0) for
    lstm, None for zeros; lengths: None or (B,) ints in [1, T] (packed-sequence semantics);
    dropout_masks: None or L-1 arrays (T, B, D*H), already scaled, multiplied into the input of
    layers 1..L-1. Computes in x's dtype.
    Returns y (T, B, D*H), state_n (same structure as state) and the cache for `backward`;
    cache["stored"][k*D + d] holds the stored buffers of layer k, direction d.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x = np.asarray(x)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError("x must be a floating-point array of shape (T, B, I)")
    steps, batch, input_size = x.shape
    hidden_size = params["weight_hh_l0"].shape[1]
    directions = 2 if bidirectional else 1
    expected = param_shapes(mode, input_size, hidden_size, num_layers, bidirectional,
                            bias="bias_ih_l0" in params)
    if {name: np.shape(value) for name, value in params.items()} != expected:
        raise ValueError(f"params must have exactly these shapes: {expected}")
    if dropout_masks is not None and len(dropout_masks) != num_layers - 1:
        raise ValueError(f"dropout_masks must hold num_layers - 1 = {num_layers - 1} arrays")
    lengths = _check_lengths(lengths, steps, batch)
    state0 = _state_tuple(mode, state, (num_layers * directions, batch, hidden_size), x.dtype)
    cell_forward, _ = _cell(mode, linear_before_reset)

    cache = {"mode": mode, "linear_before_reset": linear_before_reset, "lengths": lengths,
             "directions": directions, "param_names": list(expected), "state0": state0,
             "dropout_masks": dropout_masks, "weights": [], "layer_inputs": [], "stored": []}
    state_n = tuple(np.zeros_like(part) for part in state0)
    layer_input = x
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = {key: params[name].astype(x.dtype) if name in params else None
                       for key, name in param_names(layer, direction).items()}
            y_dir, final, stored = _sequence_forward(
                cell_forward, layer_input, tuple(part[index] for part in state0), weights,
                lengths, reverse=direction == 1)
            outputs.append(y_dir)
            for part, final_part in zip(state_n, final):
                part[index] = final_part
            cache["weights"].append(weights)
            cache["stored"].append(stored)
        cache["layer_inputs"].append(layer_input)
        y = np.concatenate(outputs, axis=-1)  # forward direction first, then reverse
        if layer + 1 < num_layers:
            layer_input = y if dropout_masks is None else y * dropout_masks[layer]
    return y, _public_state(mode, state_n), cache


def backward(cache, dy, dstate=None):
    """Backward of `forward`: dy (T, B, D*H) is d loss / d y and dstate d loss / d state_n
    (same structure as state_n, None for zeros). Returns dx (T, B, I), dstate0 (same structure
    as state_n) and fresh grads {name: array} in `param_shapes` order.
    """
    mode, directions, lengths = cache["mode"], cache["directions"], cache["lengths"]
    state0 = cache["state0"]
    dtype = state0[0].dtype
    hidden_size = state0[0].shape[2]
    num_layers = len(cache["layer_inputs"])
    _, cell_backward = _cell(mode, cache["linear_before_reset"])
    d_state_n = _state_tuple(mode, dstate, state0[0].shape, dtype)
    d_state0 = tuple(np.zeros_like(part) for part in state0)
    grads = {}
    d_output = np.asarray(dy, dtype=dtype)  # gradient w.r.t. the current layer's output
    for layer in range(num_layers - 1, -1, -1):
        layer_input = cache["layer_inputs"][layer]
        d_input = np.zeros_like(layer_input)
        for direction in range(directions):
            index = layer * directions + direction
            columns = slice(direction * hidden_size, (direction + 1) * hidden_size)
            d_x_dir, d_state_dir, grads_dir = _sequence_backward(
                cell_backward, layer_input, tuple(part[index] for part in state0),
                cache["stored"][index], cache["weights"][index], lengths,
                reverse=direction == 1, dy=d_output[..., columns],
                d_state_n=tuple(part[index] for part in d_state_n))
            d_input += d_x_dir  # both directions read the same input
            for part, d_part in zip(d_state0, d_state_dir):
                part[index] = d_part
            names = param_names(layer, direction)
            grads.update({names[key]: grad for key, grad in grads_dir.items() if grad is not None})
        if layer > 0 and cache["dropout_masks"] is not None:
            d_input = d_input * cache["dropout_masks"][layer - 1]  # input = y * mask
        d_output = d_input
    grads = {name: grads[name] for name in cache["param_names"]}  # PyTorch's order
    return d_output, _public_state(mode, d_state0), grads


__all__ = ["GATES", "MODES", "STATE_NAMES", "backward", "forward", "gru_step_backward", "gru_step_forward",
           "init_params", "lstm_step_backward", "lstm_step_forward", "param_names", "param_shapes",
           "rnn_step_backward", "rnn_step_forward", "stack_param_names"]


def __dir__():   # dir() and editors' completion: the public names only, not numpy or math
    return __all__

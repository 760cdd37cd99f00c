"""RNN, LSTM and GRU layers, and their one-step cells RNNCell, LSTMCell and GRUCell, with
PyTorch's constructor arguments, parameter names and layouts, NumPy in and out. Each call is one
native call for the whole stack of layers and directions, or for one step of it."""

import functools

import numpy as np

from . import _core
from .base import Layer, float_array, float_dtype, positive_int, probability, sequence_lengths
from .reference import stack_param_names


class _Recurrent(Layer):
    """Shared by RNN, LSTM and GRU: construction, parameters, forward and backward."""

    _native_name = None   # RNN, LSTM or GRU: the native class prefix
    recurrent = True

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype="float32", seed=None, native_options=None):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dropout = probability(dropout, "dropout")
        self.dtype = float_dtype(dtype)
        # A native stack holds the activations of its last training-mode forward. Checks the
        # size against the machine's memory; it allocates nothing.
        self._new_native = functools.partial(getattr(_core, f"{self._native_name}_{self.dtype.name}"),
                                             self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                                             bidirectional=self.bidirectional, **(native_options or {}))
        self._native = self._new_native()
        self._recorded_steps = []   # natives holding the steps step() recorded, oldest first
        self._spare_natives = []    # natives free for the next recorded step
        self._rng = np.random.default_rng(seed)
        self._create_parameters()

    def _parameter_layout(self):
        return named_layout(self._native, self.num_layers, self.bidirectional, self.bias), self._native.parameter_count

    def reset_parameters(self):
        """PyTorch's initialisation: every tensor U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        self._fill_uniform(self.hidden_size)

    def forward(self, x, state=None, lengths=None):
        """y, state_n = layer(x, state=None, lengths=None).

        x: (T, B, input_size), or (B, T, input_size) with batch_first, or unbatched
        (T, input_size). state: None (zeros), h0 of shape (D*num_layers, B, hidden_size), or
        for LSTM (h0, c0). lengths: per-sequence lengths (B,), PyTorch packed-sequence
        semantics: outputs past a sequence's end are zero and its final state is the state
        at its last valid step. In training mode the activations are kept for backward().
        """
        if lengths is not None and np.ndim(x) in (2, 3):   # the native call names any other x
            lengths = sequence_lengths(lengths, *self._batch_and_steps(np.shape(x)))
        return self._forward_on(self._native, x, state, lengths, self.batch_first)

    def _batch_and_steps(self, shape):
        """(batch, steps) of an input of `shape`, 3-D or unbatched 2-D (one sequence)."""
        if len(shape) == 2:
            return 1, shape[0]
        return (shape[0], shape[1]) if self.batch_first else (shape[1], shape[0])

    def _forward_on(self, native, x, state, lengths, batch_first):
        dropout = self.dropout if self.training and self.num_layers > 1 else 0.0
        seed = int(self._rng.integers(2**63)) if dropout else 0
        return native.forward(self._parameters.values, x, state, lengths, self.training, batch_first, dropout, seed)

    def backward(self, dy, dstate=None, input_grad=True, state_grad=True):
        """dx, dstate0 = layer.backward(dy, dstate=None): backprop through time through the last
        training-mode forward. dy has the forward output's shape; dstate is the gradient
        w.r.t. state_n (None: zeros). Parameter gradients are ADDED into `grads`.
        input_grad=False skips dx and state_grad=False skips dstate0 (each returned as None),
        like an input or initial state that does not require grad.
        """
        return self._backward_on(self._native, dy, dstate, input_grad, state_grad)

    def _backward_on(self, native, dy, dstate, input_grad, state_grad):
        parameters = self._parameters
        result = native.backward(parameters.values, parameters.grads, dy, dstate, input_grad, state_grad,
                                 parameters.zero_pending)
        parameters.zero_pending = False
        return result

    def stored_activations(self):
        """Copies of what the last training-mode forward() stored for backward(), named as the
        reference names them (reference.forward's cache["stored"]): a list with one dict per
        layer and direction, index layer * num_directions + direction, of arrays (T, B, width),
        time-major even for a batch_first layer (B = 1 for an unbatched input):
          "gates"    the gate activations (B, num_gates * hidden_size), PyTorch's gate order;
          "hn"       GRU with linear_before_reset: W_hn h + b_hn;
          "reset_h"  GRU without it: r * h (the reference recomputes it instead of storing it);
          "h", "c"   the state after each step (c: LSTM), carried through padded steps.
        At padded steps (t >= lengths[b]) only "h" and "c" are defined. ValueError once
        backward() has consumed them, or without a training-mode forward (step() records its
        steps apart: they are not these)."""
        return self._native.stored_activations()

    def step(self, x, state=None):
        """y, state_1 = layer.step(x, state=None): one time step, x (batch, input_size) or unbatched
        (input_size,), state as forward's; y (batch, hidden_size). A step-by-step loop (a decoder
        fed its own outputs) calls it once per step. In training mode each step is recorded, and
        backward_step differentiates the recorded steps in reverse order."""
        if self.bidirectional:
            raise ValueError(f"step: {self!r} is bidirectional; its reverse direction needs the steps to come")
        if not self.training:
            y, state = self._forward_on(self._native, np.asarray(x)[None], state, None, False)
            return y[0], state
        native = self._spare_natives.pop() if self._spare_natives else self._new_native()
        try:
            y, state = self._forward_on(native, np.asarray(x)[None], state, None, False)
        except BaseException:
            self._spare_natives.append(native)
            raise
        self._recorded_steps.append(native)
        return y[0], state

    def backward_step(self, dy, dstate=None, input_grad=True, state_grad=True):
        """dx, dstate0 of the last recorded step() not yet differentiated, from dy (the step's
        output's shape) and dstate (the gradient w.r.t. its state_1; None: zeros); parameter
        gradients are ADDED into `grads`. Call it once per recorded step, last step first."""
        if not self._recorded_steps:
            raise ValueError(f"backward: {type(self).__name__} has no recorded step to differentiate; call it in "
                             "training mode first (each step supports one backward, last step first)")
        native = self._recorded_steps[-1]
        dx, dstate0 = self._backward_on(native, float_array(dy, self.dtype, "dy")[None], dstate, input_grad,
                                        state_grad)
        self._spare_natives.append(self._recorded_steps.pop())
        return None if dx is None else dx[0], dstate0

    def recorded_steps(self):
        """How many recorded steps backward_step has yet to differentiate."""
        return len(self._recorded_steps)

    def zero_grad(self):
        # Lazy: the next backward overwrites the gradients instead of adding to them.
        self._parameters.zero_pending = True

    def train(self, mode=True):
        if not mode:
            self._native.discard()
            self._recorded_steps, self._spare_natives = [], []   # frees the recorded steps' activations
        return super().train(mode)

    def output_features(self, input_features):
        if input_features not in (None, self.input_size):
            raise ValueError(f"expects input_size={self.input_size} features, got {input_features}")
        return self.hidden_size * (2 if self.bidirectional else 1)

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bias": self.bias, "batch_first": self.batch_first, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "dtype": self.dtype.name}

    def extra_repr(self):
        options = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            options.append(f"num_layers={self.num_layers}")
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)}")
        if self.dtype != np.float32:
            options.append(f"dtype={self.dtype.name}")
        return ", ".join(options)

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class RNN(_Recurrent):
    """Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu."""

    _native_name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32", seed=None):
        self.nonlinearity = _checked_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed,
                         native_options={"nonlinearity": nonlinearity})

    def get_config(self):
        return {**super().get_config(), "nonlinearity": self.nonlinearity}

    def extra_repr(self):
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity='relu'"


class LSTM(_Recurrent):
    """LSTM, gates i, f, g, o: c' = f*c + i*g, h' = o*tanh(c'). State is the tuple (h, c)."""

    _native_name = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype="float32", seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed)


class GRU(_Recurrent):
    """GRU, gates r, z, n: h' = (1-z)*n + z*h.

    linear_before_reset=True (PyTorch/cuDNN): n = tanh(W_in x + b_in + r*(W_hn h + b_hn));
    False (Cho et al., Keras reset_after=False): n = tanh(W_in x + b_in + W_hn (r*h) + b_hn).
    """

    _native_name = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, linear_before_reset=True, dtype="float32", seed=None):
        self.linear_before_reset = bool(linear_before_reset)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed,
                         native_options={"linear_before_reset": self.linear_before_reset})

    def get_config(self):
        return {**super().get_config(), "linear_before_reset": self.linear_before_reset}

    def extra_repr(self):
        text = super().extra_repr()
        return text if self.linear_before_reset else text + ", linear_before_reset=False"


def named_layout(native, num_layers, bidirectional, bias):
    """[(name, offset, shape[, row_stride])] of a native stack's parameter buffer: its tensors'
    placements, in PyTorch's order, under PyTorch's names (reference.param_names)."""
    return [(name, *placement) for name, placement in zip(stack_param_names(num_layers, bidirectional, bias),
                                                           native.parameter_placements(), strict=True)]


def _checked_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


# ---------------------------------------------------------------------------------------------
# Cells: one step per call, as torch.nn.RNNCell, LSTMCell and GRUCell
# ---------------------------------------------------------------------------------------------


class _Cell(_Recurrent):
    """A one-layer, one-direction stack run one step per call: h1 = cell(x, h0), or
    (h1, c1) = cell(x, (h0, c0)) for LSTMCell, with x (batch, input_size) or unbatched
    (input_size,) and states (batch, hidden_size) or (hidden_size,); a missing state is zeros.

    Each call is one native step. In training mode each call is recorded, and backward runs
    through the recorded calls in reverse order, one call per backward: it takes the gradient
    w.r.t. the call's new state, returns (dx, the gradient w.r.t. the state it was given) and
    ADDS into `grads`. Parameters are PyTorch's: weight_ih, weight_hh, bias_ih, bias_hh.
    """

    recurrent = False   # not a sequence layer: a Sequential cannot hold it; write a Model around it

    def __init__(self, input_size, hidden_size, bias, dtype, seed, native_options=None):
        super().__init__(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed, native_options=native_options)
        self._shapes = []   # the (batched) shape of each recorded call's state, for backward's checks

    def _parameter_layout(self):
        layout, size = super()._parameter_layout()
        return [(name.removesuffix("_l0"), *rest) for name, *rest in layout], size

    def forward(self, x, state=None):
        x = float_array(x, self.dtype, "x")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected (batch, input_size={self.input_size}) or unbatched "
                             f"(input_size={self.input_size},), got shape {x.shape}")
        shape = x.shape[:-1] + (self.hidden_size,)
        parts = None if state is None else [self._state_part(part, name, shape)
                                            for part, name in zip(self._state_parts(state), self._part_names("state"))]
        _, state_1 = self.step(x, None if parts is None else self._stack_state(parts))
        if self.training:
            self._shapes.append(shape)
        return self._cell_state(state_1)

    def backward(self, dstate, input_grad=True, state_grad=True):
        """dx, dstate0 = cell.backward(dstate): the last recorded call's gradients, from dstate,
        the gradient w.r.t. the state it returned ((dh1, dc1) for LSTMCell, whose dc1 may be
        left out: cell.backward(dh1))."""
        if not self._shapes:
            raise ValueError(f"backward: {type(self).__name__} has no recorded call to differentiate; call it in "
                             "training mode first (each call supports one backward, last call first)")
        shape = self._shapes[-1]
        parts = len(self._names) > 1 and isinstance(dstate, (tuple, list))
        given = dstate if parts else [dstate]
        if len(given) != len(self._names) and len(given) != 1:
            raise ValueError(f"dstate: expected (dh, dc) or dh for an LSTMCell, got {len(given)} items")
        names = self._part_names("dstate", "d") if parts else ["dstate"]
        dh, *dc = [self._state_part(part, name, shape) for part, name in zip(given, names)]
        # The new h is both the step's output and its state: its gradient enters as the output's.
        dx, dstate0 = self.backward_step(dh, self._stack_state([np.zeros_like(dh), *dc]) if dc else None,
                                         input_grad, state_grad)
        self._shapes.pop()
        return dx, None if dstate0 is None else self._cell_state(dstate0)

    _names = ("h",)   # the state's parts

    def _part_names(self, argument, prefix=""):
        """How messages name the state's parts: "state", or "state[0] (h)", "state[1] (c)"."""
        if len(self._names) == 1:
            return [argument]
        return [f"{argument}[{index}] ({prefix}{name})" for index, name in enumerate(self._names)]

    def _state_parts(self, state):
        return [state]

    def _state_part(self, part, name, shape):
        part = float_array(part, self.dtype, name)
        if part.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (batch, hidden_size={self.hidden_size}) for this x, "
                             f"got {part.shape}")
        return part

    def _stack_state(self, parts):
        """The native stack's state (a leading axis of one layer) from the cell's parts."""
        stacked = [part[None] for part in parts]
        return stacked[0] if len(stacked) == 1 else tuple(stacked)

    def _cell_state(self, state):
        return state[0] if len(self._names) == 1 else tuple(part[0] for part in state)

    def train(self, mode=True):
        if not mode:
            self._shapes = []
        return super().train(mode)

    def output_features(self, input_features):
        raise ValueError("is a cell (one step per call); a Sequential runs sequence layers (RNN, LSTM, GRU)")

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self.bias,
                "dtype": self.dtype.name}

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + \
            ("" if self.dtype == np.float32 else f", dtype={self.dtype.name}")


class RNNCell(_Cell):
    """One step of an Elman RNN: h1 = act(W_ih x + b_ih + W_hh h0 + b_hh), act = tanh or relu."""

    _native_name = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype="float32", seed=None):
        self.nonlinearity = _checked_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, dtype, seed, native_options={"nonlinearity": nonlinearity})

    def get_config(self):
        return {**super().get_config(), "nonlinearity": self.nonlinearity}


class LSTMCell(_Cell):
    """One LSTM step, gates i, f, g, o: (h1, c1) = cell(x, (h0, c0))."""

    _native_name = "LSTM"
    _names = ("h", "c")

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32", seed=None):
        super().__init__(input_size, hidden_size, bias, dtype, seed)

    def _state_parts(self, state):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state: expected a tuple (h, c) for an LSTMCell, got {type(state).__name__}")
        return state


class GRUCell(_Cell):
    """One GRU step, gates r, z, n (linear_before_reset as GRU's; PyTorch's GRUCell is True)."""

    _native_name = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, linear_before_reset=True, dtype="float32", seed=None):
        self.linear_before_reset = bool(linear_before_reset)
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         native_options={"linear_before_reset": self.linear_before_reset})

    def get_config(self):
        return {**super().get_config(), "linear_before_reset": self.linear_before_reset}

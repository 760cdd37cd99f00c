"""RNN, LSTM and GRU layers with PyTorch's constructor arguments, parameter names and layouts,
NumPy in and out. Each call is one native call for the whole stack of layers and directions."""

import numpy as np

from . import _core
from .base import Layer, float_dtype, positive_int, probability


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
        native_class = getattr(_core, f"{self._native_name}_{self.dtype.name}")
        # Checks the size against the machine's memory; it allocates nothing.
        self._native = native_class(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                                    bidirectional=self.bidirectional, **(native_options or {}))
        self._rng = np.random.default_rng(seed)
        self._create_parameters()

    def _parameter_layout(self):
        return self._native.parameter_layout(), self._native.parameter_count

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
        dropout = self.dropout if self.training and self.num_layers > 1 else 0.0
        seed = int(self._rng.integers(2**63)) if dropout else 0
        return self._native.forward(self._parameters.values, x, state, lengths, self.training, self.batch_first,
                                    dropout, seed)

    def backward(self, dy, dstate=None, input_grad=True, state_grad=True):
        """dx, dstate0 = layer.backward(dy, dstate=None): backprop through time through the last
        training-mode forward. dy has the forward output's shape; dstate is the gradient
        w.r.t. state_n (None: zeros). Parameter gradients are ADDED into `grads`.
        input_grad=False skips dx and state_grad=False skips dstate0 (each returned as None),
        like an input or initial state that does not require grad.
        """
        parameters = self._parameters
        result = self._native.backward(parameters.values, parameters.grads, dy, dstate, input_grad, state_grad,
                                       parameters.zero_pending)
        parameters.zero_pending = False
        return result

    def zero_grad(self):
        # Lazy: the next backward overwrites the gradients instead of adding to them.
        self._parameters.zero_pending = True

    def train(self, mode=True):
        if not mode:
            self._native.discard()
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
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
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

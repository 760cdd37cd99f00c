"""The layer protocol every fastrnn layer follows, and the flat parameter storage behind it.

Each layer keeps all its parameters in one contiguous buffer and its gradients in another;
`params` and `grads` are named views into them. Native kernels and optimizers work on the
flat buffers directly (one call, one vectorised update), users see PyTorch's names and shapes.
"""

from collections.abc import Mapping

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype):
    """np.dtype for a layer's `dtype` argument: float32 or float64 (None: float32, PyTorch's
    default)."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from error
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {resolved}")
    return resolved


def positive_int(value, name):
    """value as an int, or TypeError/ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


class ParameterDict(Mapping):
    """Named views into a flat buffer. Assigning `d[name] = value` copies into the view (the
    shape must match), so the flat buffer the kernels and optimizers use stays the one truth.
    `before_read` (if given) runs before a view is handed out: the gradient dict uses it to
    carry out a pending lazy zero_grad."""

    def __init__(self, views, before_read=None):
        self._views = views
        self._before_read = before_read

    def __getitem__(self, name):
        if self._before_read:
            self._before_read()
        return self._views[name]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __setitem__(self, name, value):
        if name not in self._views:
            raise KeyError(f"{name!r} is not a parameter of this layer; it has {list(self._views)}")
        view = self._views[name]
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"{name}: expected shape {view.shape}, got {value.shape}")
        view[...] = value

    def __repr__(self):
        shapes = ", ".join(f"{name}: {view.shape}" for name, view in self._views.items())
        return f"ParameterDict({{{shapes}}})"


class Parameters:
    """A flat parameter buffer and its gradient buffer, with named views of both.

    layout: [(name, offset, shape)] in the buffer's order.
    """

    def __init__(self, layout, dtype):
        self.dtype = np.dtype(dtype)
        size = sum(int(np.prod(shape)) for _, _, shape in layout)
        self.values = np.zeros(size, dtype=self.dtype)
        self.grads = np.zeros(size, dtype=self.dtype)
        # zero_grad() on a layer whose backward can overwrite only sets this: the next backward
        # writes instead of adding (no separate pass over the buffer), and every other way to
        # read the gradients (grad_views, Layer.grads, Layer.parameter_buffers) zeroes first.
        # Like PyTorch's zero_grad(set_to_none=True), a bare array view kept from before
        # zero_grad() is not zeroed; read gradients through `grads`.
        self.zero_pending = False
        self.shapes = {name: tuple(shape) for name, _, shape in layout}
        self.value_views = ParameterDict(self._views(self.values, layout))
        self.grad_views = ParameterDict(self._views(self.grads, layout), before_read=self.settle_grads)

    def settle_grads(self):
        """Carries out a pending lazy zero_grad."""
        if self.zero_pending:
            self.grads.fill(0)
            self.zero_pending = False

    @staticmethod
    def _views(buffer, layout):
        return {name: buffer[offset:offset + int(np.prod(shape))].reshape(shape)
                for name, offset, shape in layout}

    def state_dict(self):
        return {name: view.copy() for name, view in self.value_views.items()}

    def load_state_dict(self, state):
        """Copies `state` (name -> array-like, e.g. a torch state_dict's .numpy() values) in;
        names must match exactly and shapes must agree."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state).__name__}")
        missing = [name for name in self.shapes if name not in state]
        unexpected = [name for name in state if name not in self.shapes]
        if missing or unexpected:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        converted = {}
        for name, shape in self.shapes.items():
            value = np.asarray(state[name])
            if value.shape != shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {shape}, got {value.shape}")
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise TypeError(f"state_dict[{name!r}]: expected real numbers, got dtype {value.dtype}")
            converted[name] = value
        for name, value in converted.items():   # all checked first: no half-loaded layer
            self.value_views[name][...] = value


class Layer:
    """Base of fastrnn layers: forward/backward by hand, parameters in a Parameters buffer.

    Subclasses set `self._parameters` (or leave it None for a layer without parameters) and
    implement forward(x) and backward(dy). backward ADDS into `grads`; call zero_grad() first.
    """

    _parameters = None
    training = True

    @property
    def params(self):
        return self._parameters.value_views if self._parameters else ParameterDict({})

    @property
    def grads(self):
        return self._parameters.grad_views if self._parameters else ParameterDict({})

    def parameter_buffers(self):
        """[(values, grads)] flat buffers, for optimizers (call it each step: it settles a lazy
        zero_grad)."""
        if not self._parameters:
            return []
        self._parameters.settle_grads()
        return [(self._parameters.values, self._parameters.grads)]

    def zero_grad(self):
        if self._parameters:
            self._parameters.grads.fill(0)

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        return self._parameters.state_dict() if self._parameters else {}

    def load_state_dict(self, state):
        if self._parameters:
            self._parameters.load_state_dict(state)
        elif state:
            raise ValueError(f"state_dict: this layer has no parameters, got keys {list(state)}")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

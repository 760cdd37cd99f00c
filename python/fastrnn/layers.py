"""The small layers around the recurrent ones: input encodings, a dense layer applied per time
step, activations, dropout and the many-to-one selection of each sequence's last step.

Names, parameter shapes and initialisations follow PyTorch. Inputs are batch-first: integer
ids (N, T) for Embedding/OneHot, features (..., F) for the rest.
"""

import numpy as np

from . import _core
from .base import Layer, Parameters, class_ids, float_array, float_dtype, positive_int, probability


class Embedding(Layer):
    """ids (...) -> weight[ids] (..., embedding_dim); weight initialised N(0, 1) like PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, dtype="float32", seed=None):
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.dtype = float_dtype(dtype)
        self._parameters = Parameters([("weight", 0, (self.num_embeddings, self.embedding_dim))], self.dtype)
        self._rng = np.random.default_rng(seed)
        self.reset_parameters()

    def reset_parameters(self):
        self.params["weight"][...] = self._rng.standard_normal(self.params["weight"].shape)

    def forward(self, ids):
        ids = class_ids(ids, self.num_embeddings, "x")
        self._keep(ids)
        return self.params["weight"][ids]

    def backward(self, dy, input_grad=True):
        """Adds into the gradient of the rows that were looked up; ids have no gradient (None,
        whatever input_grad says)."""
        (ids,) = self._take_kept()
        np.add.at(self.grads["weight"], ids.ravel(), dy.reshape(-1, self.embedding_dim))
        return None

    def output_features(self, input_features):
        _require_ids(input_features)
        return self.embedding_dim

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "dtype": self.dtype.name}


class OneHot(Layer):
    """ids (...) -> one-hot vectors (..., num_classes); no parameters."""

    def __init__(self, num_classes, dtype="float32"):
        self.num_classes = positive_int(num_classes, "num_classes")
        self.dtype = float_dtype(dtype)
        self._identity = np.eye(self.num_classes, dtype=self.dtype)

    def forward(self, ids):
        return self._identity[class_ids(ids, self.num_classes, "x")]

    def backward(self, dy):
        return None   # integer ids have no gradient

    def output_features(self, input_features):
        _require_ids(input_features)
        return self.num_classes

    def get_config(self):
        return {"num_classes": self.num_classes, "dtype": self.dtype.name}


def _require_ids(input_features):
    if input_features is not None:
        raise ValueError(f"takes integer ids, so it must be the first layer (here its input has {input_features} "
                         "features)")


class Dense(Layer):
    """y = x weight^T + bias over the last axis, for any leading axes (per time step, like Keras'
    TimeDistributed(Dense)). PyTorch's nn.Linear: weight (out, in), both tensors initialised
    U(-1/sqrt(in_features), 1/sqrt(in_features))."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32", seed=None):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.bias = bool(bias)
        self.dtype = float_dtype(dtype)
        weight_size = self.out_features * self.in_features
        layout = [("weight", 0, (self.out_features, self.in_features))]
        if self.bias:
            layout.append(("bias", weight_size, (self.out_features,)))
        self._parameters = Parameters(layout, self.dtype)
        # The packed GEMM of fastrnn's kernels: no BLAS threads to contend with the recurrent ones.
        self._native_forward = getattr(_core, f"linear_forward_{self.dtype.name}")
        self._native_backward = getattr(_core, f"linear_backward_{self.dtype.name}")
        self._rng = np.random.default_rng(seed)
        self.reset_parameters()

    def reset_parameters(self):
        self._fill_uniform(self.in_features)

    def forward(self, x):
        x = float_array(x, self.dtype, "x")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} features in the last axis, got shape {x.shape}")
        rows = x.reshape(-1, self.in_features)   # (N * T, in)
        params = self.params
        y = self._native_forward(rows, params["weight"], params["bias"] if self.bias else None)
        self._keep(rows)
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dy, input_grad=True):
        """dx; input_grad=False skips it (returns None), like an input that does not require grad."""
        (rows,) = self._take_kept()
        dy_rows = dy.reshape(-1, self.out_features)
        grads = self.grads
        dx = self._native_backward(dy_rows, rows, self.params["weight"], grads["weight"],
                                   grads["bias"] if self.bias else None, input_grad)
        return None if dx is None else dx.reshape(dy.shape[:-1] + (self.in_features,))

    def output_features(self, input_features):
        if input_features not in (None, self.in_features):
            raise ValueError(f"expects in_features={self.in_features}, got {input_features}")
        return self.out_features

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                "dtype": self.dtype.name}


class ReLU(Layer):
    def forward(self, x):
        self._keep(x > 0)
        return np.maximum(x, 0)

    def backward(self, dy):
        (positive,) = self._take_kept()
        return dy * positive

    def get_config(self):
        return {}


class Tanh(Layer):
    def forward(self, x):
        y = np.tanh(x)
        self._keep(y)
        return y

    def backward(self, dy):
        (y,) = self._take_kept()
        return dy * (1 - y * y)

    def get_config(self):
        return {}


class Dropout(Layer):
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p), in training
    mode only (inverted dropout, like PyTorch); the identity in eval mode. Masks come from the
    layer's own generator, so a seed makes them reproducible."""

    def __init__(self, p=0.5, seed=None):
        self.p = probability(p, "p")
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.p
        mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.p))
        self._keep(mask)
        return x * mask

    def backward(self, dy):
        if self.p == 0:
            return dy
        (mask,) = self._take_kept()
        return dy * mask

    def get_config(self):
        return {"p": self.p}


class LastStep(Layer):
    """(N, T, F) -> (N, F): each sequence's output at its last valid step (lengths - 1, or T - 1
    without lengths), for many-to-one models."""

    uses_lengths = True

    def forward(self, x, lengths=None):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x: LastStep expects (batch, steps, features), got shape {x.shape}")
        batch, steps = x.shape[:2]
        last = np.full(batch, steps - 1) if lengths is None else np.asarray(lengths) - 1
        rows = np.arange(batch)
        self._keep(x.shape, rows, last)
        return x[rows, last]

    def backward(self, dy):
        shape, rows, last = self._take_kept()
        dx = np.zeros(shape, dtype=dy.dtype)
        dx[rows, last] = dy
        return dx

    def get_config(self):
        return {}

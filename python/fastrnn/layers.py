"""The small layers around the recurrent ones: input encodings, a dense layer applied per time
step, activations, dropout and the many-to-one selection of each sequence's last step.

Names, parameter shapes and initialisations follow PyTorch. Inputs are batch-first: integer
ids (N, T) for Embedding/OneHot, features (..., F) for the rest.
"""

import math

import numpy as np

from . import _core
from .base import (Layer, check_memory, class_ids, float_array, float_dtype, output_gradient, positive_int,
                   probability, sequence_lengths, unaliased)


class Embedding(Layer):
    """ids (...) -> weight[ids] (..., embedding_dim); weight initialised N(0, 1) like PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, dtype="float32", seed=None):
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.dtype = float_dtype(dtype)
        self._rng = np.random.default_rng(seed)
        self._create_parameters()

    def _parameter_layout(self):
        return [("weight", 0, (self.num_embeddings, self.embedding_dim))], None

    def reset_parameters(self):
        self.params["weight"][...] = self._rng.standard_normal(self.params["weight"].shape)

    def forward(self, ids):
        checked_ids = _output_ids(ids, self.num_embeddings, self.embedding_dim, self.dtype)
        if self.training:
            self._keep(unaliased(checked_ids, ids))
        return self.params["weight"][checked_ids]

    def backward(self, dy, input_grad=True):
        """Adds into the gradient of the rows that were looked up; ids have no gradient (None,
        whatever input_grad says)."""
        (ids,) = self._take_kept()
        dy = output_gradient(dy, ids.shape + (self.embedding_dim,), self.dtype)
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

    def forward(self, ids):
        ids = _output_ids(ids, self.num_classes, self.num_classes, self.dtype)
        # Written directly rather than indexed from an identity matrix: memory in proportion to
        # the output, not num_classes^2 (a 30000-word vocabulary would need 3.4 GB).
        one_hot = np.zeros(ids.shape + (self.num_classes,), dtype=self.dtype)
        np.put_along_axis(one_hot, ids[..., None], 1, axis=-1)
        return one_hot

    def backward(self, dy):
        return None   # integer ids have no gradient

    def output_features(self, input_features):
        _require_ids(input_features)
        return self.num_classes

    def get_config(self):
        return {"num_classes": self.num_classes, "dtype": self.dtype.name}


def _check_output_fits(x_shape, output_shape, dtype):
    """ValueError naming x when an output of `output_shape` and `dtype` cannot fit in memory.
    It comes before any scan of x: a broadcast view can be huge at no cost, and scanning it
    takes minutes."""
    check_memory(math.prod(output_shape) * dtype.itemsize,
                 f"x: an output of shape {output_shape} (for x of shape {x_shape})")


def _output_ids(ids, num_classes, features, dtype):
    """ids as class ids (see class_ids) for an output of `features` values of `dtype` per id,
    refused before their range is scanned when that output cannot fit in memory."""
    ids = np.asarray(ids)
    _check_output_fits(ids.shape, ids.shape + (features,), dtype)
    return class_ids(ids, num_classes, "x")


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
        # The packed GEMM of fastrnn's kernels: no BLAS threads to contend with the recurrent ones.
        self._native_forward = getattr(_core, f"linear_forward_{self.dtype.name}")
        self._native_backward = getattr(_core, f"linear_backward_{self.dtype.name}")
        self._rng = np.random.default_rng(seed)
        self._create_parameters()

    def _parameter_layout(self):
        weight_size = self.out_features * self.in_features
        layout = [("weight", 0, (self.out_features, self.in_features))]
        if self.bias:
            layout.append(("bias", weight_size, (self.out_features,)))
        return layout, None

    def reset_parameters(self):
        self._fill_uniform(self.in_features)

    def forward(self, x):
        features = float_array(x, self.dtype, "x")
        if features.ndim == 0 or features.shape[-1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} features in the last axis, got shape {features.shape}")
        rows = features.reshape(-1, self.in_features)   # (N * T, in)
        params = self.params
        y = self._native_forward(rows, params["weight"], params["bias"] if self.bias else None)
        y = y.reshape(features.shape[:-1] + (self.out_features,))
        if self.training:
            self._keep(unaliased(rows, x), y.shape)
        return y

    def backward(self, dy, input_grad=True):
        """dx; input_grad=False skips it (returns None), like an input that does not require grad."""
        rows, output_shape = self._take_kept()
        dy = output_gradient(dy, output_shape, self.dtype)
        grads = self.grads
        dx = self._native_backward(dy.reshape(-1, self.out_features), rows, self.params["weight"], grads["weight"],
                                   grads["bias"] if self.bias else None, input_grad)
        return None if dx is None else dx.reshape(output_shape[:-1] + (self.in_features,))

    def output_features(self, input_features):
        if input_features not in (None, self.in_features):
            raise ValueError(f"expects in_features={self.in_features}, got {input_features}")
        return self.out_features

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                "dtype": self.dtype.name}


class ReLU(Layer):
    """max(x, 0) elementwise; real numbers other than float32 and float64 become float64."""

    elementwise = True

    def forward(self, x):
        x = float_array(x, None, "x")
        self._keep(x > 0)
        return np.maximum(x, 0)

    def backward(self, dy):
        (positive,) = self._take_kept()
        return output_gradient(dy, positive.shape, None) * positive

    def get_config(self):
        return {}


class Tanh(Layer):
    """tanh(x) elementwise; real numbers other than float32 and float64 become float64."""

    elementwise = True

    def forward(self, x):
        y = np.tanh(float_array(x, None, "x"))
        if self.training:
            self._keep(1 - y * y)   # not y itself: the caller owns y and may write into it
        return y

    def backward(self, dy):
        (derivative,) = self._take_kept()
        return output_gradient(dy, derivative.shape, None) * derivative

    def get_config(self):
        return {}


class Dropout(Layer):
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p), in training
    mode only (inverted dropout, like PyTorch); the identity in eval mode. Masks come from the
    layer's own generator, so a seed makes them reproducible. Real numbers other than float32
    and float64 (integers, float16, lists) are converted to float64."""

    elementwise = True

    def __init__(self, p=0.5, seed=None):
        self.p = probability(p, "p")
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        x = float_array(x, None, "x")   # the generator draws float32 and float64 only
        if not self.training:
            return x
        mask = None   # p == 0: nothing dropped, but backward still checks dy against x
        if self.p:
            keep = self._rng.random(x.shape, dtype=x.dtype) >= self.p
            mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.p))
        self._keep(x.shape, mask)
        return x if mask is None else x * mask

    def backward(self, dy):
        shape, mask = self._take_kept()
        dy = output_gradient(dy, shape, None)
        return dy if mask is None else dy * mask

    def get_config(self):
        return {"p": self.p}


class LastStep(Layer):
    """(N, T, F) -> (N, F) for many-to-one models: each sequence's output at its last valid step
    (lengths - 1, or T - 1 without lengths).

    After a bidirectional layer, whose features are [forward direction, reverse direction], the
    reverse half is taken at step 0 instead, where that direction has read the whole sequence:
    what PyTorch's h_n and Keras' Bidirectional(return_sequences=False) give. bidirectional:
    None (default) follows the layers before it in a Sequential (the last recurrent layer, through
    elementwise ones) and means False elsewhere; True splits the features so; False takes every
    feature at the last valid step, whatever came before.
    """

    uses_lengths = True

    def __init__(self, bidirectional=None):
        if bidirectional is not None and not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional: expected True, False or None, got {type(bidirectional).__name__}")
        self.bidirectional = None if bidirectional is None else bool(bidirectional)

    def follow(self, bidirectional):
        """Inside a Sequential: takes the layers before's word for whether the features are two
        directions, unless the constructor set it."""
        if self.bidirectional is None:
            self.bidirectional = bool(bidirectional)

    def forward(self, x, lengths=None):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] == 0:
            raise ValueError(f"x: LastStep expects (batch, steps, features) with at least one step, "
                             f"got shape {x.shape}")
        batch, steps, features = x.shape
        if self.bidirectional and features % 2:
            raise ValueError(f"x: LastStep(bidirectional=True) expects an even number of features (the forward "
                             f"and reverse directions' halves), got shape {x.shape}")
        _check_output_fits(x.shape, (batch, features), x.dtype)
        last = np.full(batch, steps - 1) if lengths is None else sequence_lengths(lengths, batch, steps) - 1
        rows, half = np.arange(batch), self._reverse_half(features)
        self._keep(x.shape, rows, last)
        return np.concatenate([x[rows, last, :half], x[:, 0, half:]], axis=1)

    def backward(self, dy):
        shape, rows, last = self._take_kept()
        dy = output_gradient(dy, (shape[0], shape[2]), None)
        dx = np.zeros(shape, dtype=dy.dtype)
        half = self._reverse_half(shape[2])
        dx[rows, last, :half] = dy[:, :half]
        dx[:, 0, half:] = dy[:, half:]
        return dx

    def _reverse_half(self, features):
        """Where the features taken at step 0 start: the reverse direction's half, or none."""
        return features // 2 if self.bidirectional else features

    def get_config(self):
        return {"bidirectional": self.bidirectional}

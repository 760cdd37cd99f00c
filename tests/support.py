"""Shared by the tests of the native kernels: a recurrent stack configuration (Case) with random
data, its run through one kernel variant of fastrnn._core and through the NumPy reference, and
the error measure every comparison uses, and inputs too large for any machine.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest

import fastrnn
from fastrnn import _core, reference
from fastrnn.recurrent import named_layout

# The five cell kinds: (reference mode, linear_before_reset); ids name them in test reports.
CELLS = [("rnn_tanh", True), ("rnn_relu", True), ("lstm", True), ("gru", True), ("gru", False)]
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_first"]

# Every kernel variant this build has, each called directly; one this CPU cannot run is skipped
# with a reason that names it, so that the report shows which variants ran.
ISAS = [pytest.param(name, marks=pytest.mark.skipif(not available, reason=f"this CPU cannot run the {name} kernels"))
        for name, available, _ in _core.isa_variants()]

# Tolerances of `scaled_error`. float64: the kernels and the reference round differently
# (blocked sums, FMA, polynomial activations) but both are ~1e-15 accurate, so 1e-10 leaves
# room for error growth through layers and steps while any wrong term shows as >= 1e-3.
# float32: float32 arithmetic (~6e-8) amplified through a few layers and steps stays ~1e-6.
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

# Largest error seen per check, printed at the end of the session (conftest.py).
WORST_ERRORS = {}


def scaled_error(actual, expected, dtype):
    """max |actual - expected| over a tensor, divided by the tensor's scale.

    float64: purely relative, the scale is max |expected| (a tensor that is exactly zero must
    come out exactly zero). float32: mixed absolute + relative, the scale is
    max(1, max |expected|): an absolute tolerance for tensors of magnitude <= 1, relative to
    the largest element above that. NaN anywhere in `actual` gives inf.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size == 0:
        return 0.0
    difference = np.abs(actual - expected).max()
    if np.isnan(difference):
        return np.inf
    floor = np.finfo(np.float64).tiny if np.dtype(dtype) == np.float64 else 1.0
    return float(difference / max(np.abs(expected).max(), floor))


def record(check, error):
    WORST_ERRORS[check] = max(WORST_ERRORS.get(check, 0.0), error)


def assert_close(actual, expected, dtype, check):
    """Every tensor of `expected` (a dict) within TOLERANCE[dtype] by `scaled_error`; the worst
    error is recorded under `check`."""
    assert list(actual) == list(expected)
    errors = {name: scaled_error(actual[name], expected[name], dtype) for name in expected}
    worst = max(errors, key=errors.get)
    record(check, errors[worst])
    assert errors[worst] <= TOLERANCE[np.dtype(dtype)], (worst, errors[worst], errors)


@dataclass(frozen=True)
class Case:
    """A stacked recurrent layer, its input's shape and what the caller passes besides x
    (shared with test_reference.py)."""
    mode: str
    steps: int
    batch: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    linear_before_reset: bool = True
    lengths: Optional[tuple[int, ...]] = None
    initial_state: bool = True    # random non-zero h0 (c0); False passes None (zeros)
    dropout: Optional[float] = None   # drop probability between layers in training
    final_gradient: bool = True   # random dstate; False passes None (zeros)
    layout: str = "time_major"    # or "batch_first", or "unbatched" (batch 1, x 2-D)
    seed: int = 0

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def state_shape(self):
        return (self.num_layers * self.directions, self.batch, self.hidden_size)

    @property
    def state_parts(self):
        return ("h0", "c0") if self.mode == "lstm" else ("h0",)

    @property
    def output_shape(self):
        return (self.steps, self.batch, self.directions * self.hidden_size)

    @property
    def lengths_array(self):
        return None if self.lengths is None else np.array(self.lengths, dtype=np.int64)

    def padded(self):
        """(T, B) bool: the time steps past each sequence's length."""
        lengths = self.lengths if self.lengths is not None else (self.steps,) * self.batch
        return np.arange(self.steps)[:, None] >= np.array(lengths)[None, :]


@dataclass
class Data:
    """Inputs of a case in float64, time-major; states and their gradients as tuples or None."""
    params: dict
    x: np.ndarray
    state: Optional[tuple]
    dy: np.ndarray
    dstate: Optional[tuple]

    def rounded(self, dtype):
        """The same data rounded to `dtype` and back to float64: what a `dtype` kernel sees,
        exactly, so the reference can run in float64 on it."""
        def cast(value):
            if value is None:
                return None
            if isinstance(value, tuple):
                return tuple(cast(part) for part in value)
            return np.asarray(value).astype(dtype).astype(np.float64)
        return Data({name: cast(value) for name, value in self.params.items()}, cast(self.x),
                    cast(self.state), cast(self.dy), cast(self.dstate))


def make_data(case):
    """Random data: weights U(-1, 1) * sqrt(3 / fan-in) (unit variance of W x for unit-variance
    x) so activations neither vanish nor saturate at any hidden size; x and states U(-1, 1);
    dy and dstate standard normal."""
    rng = np.random.default_rng(case.seed)
    shapes = reference.param_shapes(case.mode, case.input_size, case.hidden_size, case.num_layers,
                                    case.bidirectional, case.bias)
    params = {}
    for name, shape in shapes.items():
        fan_in = shape[1] if len(shape) == 2 else case.hidden_size
        params[name] = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
    x = rng.uniform(-1, 1, (case.steps, case.batch, case.input_size))
    parts = len(case.state_parts)
    state = tuple(rng.uniform(-1, 1, case.state_shape) for _ in range(parts)) if case.initial_state else None
    dy = rng.normal(size=case.output_shape)
    dstate = tuple(rng.normal(size=case.state_shape) for _ in range(parts)) if case.final_gradient else None
    return Data(params, x, state, dy, dstate)


def public_state(case, state):
    """A tuple of state parts as the API takes it: (h, c) for lstm, h otherwise; None stays."""
    if state is None or case.mode == "lstm":
        return state
    return state[0]


def state_tuple(case, state):
    return tuple(state) if case.mode == "lstm" else (state,)


def make_layer(mode, linear_before_reset=True, **options):
    """A fastrnn layer of a cell kind."""
    if mode == "lstm":
        return fastrnn.LSTM(**options)
    if mode == "gru":
        return fastrnn.GRU(linear_before_reset=linear_before_reset, **options)
    return fastrnn.RNN(nonlinearity=mode[4:], **options)


# ---------------------------------------------------------------------------------------------
# The native stacks
# ---------------------------------------------------------------------------------------------


def native_stack(case, dtype, isa):
    """The _core class of a case for one dtype and kernel variant."""
    kind = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[case.mode]
    options = {}
    if kind == "RNN":
        options["nonlinearity"] = case.mode[4:]
    if kind == "GRU":
        options["linear_before_reset"] = case.linear_before_reset
    native_class = getattr(_core, f"{kind}_{np.dtype(dtype).name}")
    stack = native_class(case.input_size, case.hidden_size, case.num_layers, bias=case.bias,
                         bidirectional=case.bidirectional, isa=isa, **options)
    assert stack.isa == (isa if isa != "auto" else _core.kernel_isa())
    return stack


def unflatten(flat, layout):
    """Named views of the flat buffer `layout` ([(name, offset, shape[, row_stride])]) describes:
    rows of shape[-1] values, row_stride apart."""
    views = {}
    for name, offset, shape, *row_stride in layout:
        stride = row_stride[0] if row_stride else shape[-1]
        rows = int(np.prod(shape[:-1]))
        assert stride >= shape[-1] and offset + rows * stride <= flat.size, name
        views[name] = flat[offset:offset + rows * stride].reshape(*shape[:-1], stride)[..., :shape[-1]]
    return views


def flatten(params, layout, size, dtype):
    """The named tensors in a flat buffer of `size` values laid out as `layout` says. Padding and
    gaps are NaN: a kernel that read them would spread NaN into its results."""
    flat = np.full(size, np.nan, dtype=dtype)
    views = unflatten(flat, layout)
    assert list(views) == list(params)
    for name, view in views.items():
        assert np.isnan(view).all(), f"{name} overlaps another tensor"
        view[...] = params[name]
    return flat


def to_layout(case, sequence):
    """A time-major (T, B, F) array in the case's input layout."""
    if case.layout == "batch_first":
        return np.ascontiguousarray(sequence.transpose(1, 0, 2))
    if case.layout == "unbatched":
        return sequence[:, 0]
    return sequence


def from_layout(case, sequence):
    """Back to time-major (T, B, F)."""
    if case.layout == "batch_first":
        return sequence.transpose(1, 0, 2)
    if case.layout == "unbatched":
        return sequence[:, None]
    return sequence


def state_to_layout(case, state):
    """State parts (tuple of (L*D, B, H)) as the native call takes them (None stays None)."""
    if state is None:
        return None
    parts = tuple(part[:, 0] if case.layout == "unbatched" else part for part in state)
    return public_state(case, parts)


def state_from_layout(case, state):
    parts = state_tuple(case, state)
    return tuple(part[:, None] if case.layout == "unbatched" else part for part in parts)


class NativeRun:
    """One stack of one kernel variant and dtype, holding a case's data. The *_arguments
    methods prepare a native call's arguments (all conversions happen there, so a test can
    make calls back to back with no allocation between them); forward/backward call and
    convert the results to time-major tuples and dicts."""

    def __init__(self, case, data, dtype, isa):
        self.dtype = np.dtype(dtype)
        self.stack = native_stack(case, dtype, isa)
        self.layout = named_layout(self.stack, case.num_layers, case.bidirectional, case.bias)
        self.use(case, data)

    def use(self, case, data):
        """Another case (same layer configuration) and its data for the next calls."""
        self.case, self.data = case, data
        self.weights = flatten(data.params, self.layout, self.stack.parameter_count, self.dtype)
        self.padding = np.isnan(self.weights)   # values outside every tensor

    def _state(self, state):
        state = None if state is None else tuple(part.astype(self.dtype) for part in state)
        return state_to_layout(self.case, state)

    def forward_arguments(self, training=True, x=None, dropout=0.0, seed=0):
        case = self.case
        x = to_layout(case, (self.data.x if x is None else x).astype(self.dtype))
        return (self.weights, x, self._state(self.data.state), case.lengths_array, training,
                case.layout == "batch_first", dropout, seed)

    def backward_arguments(self, dy=None, grads=None, input_gradient=True, state_gradient=True):
        dy = to_layout(self.case, (self.data.dy if dy is None else dy).astype(self.dtype))
        grads = np.zeros_like(self.weights) if grads is None else grads
        return (self.weights, grads, dy, self._state(self.data.dstate), input_gradient, state_gradient)

    def forward_result(self, result):
        y, state_n = result
        assert y.dtype == self.dtype
        return from_layout(self.case, y), state_from_layout(self.case, state_n)

    def backward_result(self, result, grads, grads_before):
        """(dx, dstate0 tuple, grads dict): grads are what the call ADDED to the buffer; dx and
        dstate0 are None when skipped."""
        dx, dstate0 = result
        if dx is not None:
            assert dx.dtype == self.dtype
            dx = from_layout(self.case, dx)
        if dstate0 is not None:
            dstate0 = state_from_layout(self.case, dstate0)
        np.testing.assert_array_equal(grads[self.padding], grads_before[self.padding],
                                      err_msg="backward wrote outside the gradient tensors")
        return dx, dstate0, unflatten(grads - grads_before, self.layout)

    def forward(self, **options):
        return self.forward_result(self.stack.forward(*self.forward_arguments(**options)))

    def backward(self, **options):
        arguments = self.backward_arguments(**options)
        grads = arguments[1]
        before = grads.copy()
        return self.backward_result(self.stack.backward(*arguments), grads, before)


# Rows enough that the contiguous copy of any array with them needs terabytes.
HUGE = 2**40


def huge_view(dtype, shape):
    """A broadcast view of one zero: a few bytes whose contiguous copy (what the bindings convert
    arguments to) cannot be allocated when the shape has HUGE rows."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def native_results(case, data, dtype, isa, dropout_seed=0):
    """The native stack's results for a case: (inference forward dict, training forward +
    backward dict); the training forward with the case's dropout and `dropout_seed`.

    Each real call follows the same call on NaN inputs whose results are dropped at once: the
    real call's fresh output arrays then likely reuse their memory (malloc's and numpy's caches
    hand back the block of the same size freed last) and the stack's workspaces hold NaN, so
    an element a kernel fails to write, or stale workspace it reads, shows as NaN.
    """
    run = NativeRun(case, data, dtype, isa)
    dropout, seed = case.dropout or 0.0, dropout_seed
    nan_x = np.full(case.output_shape[:2] + (case.input_size,), np.nan)
    nan_forward = run.forward_arguments(False, x=nan_x)
    real_forward = run.forward_arguments(False, dropout=dropout, seed=seed)
    run.stack.forward(*nan_forward)
    inference = result_dict(case, *run.forward_result(run.stack.forward(*real_forward)))

    nan_forward = run.forward_arguments(True, x=nan_x)
    nan_backward = run.backward_arguments(dy=np.full(case.output_shape, np.nan))
    real_forward = run.forward_arguments(True, dropout=dropout, seed=seed)
    # backward ADDS into the gradient buffer: start from random values, compare the increment.
    # In float64 they are small (~1e-6), so that recovering the increment by subtraction stays
    # exact far below the relative tolerance even for a layer whose gradient is tiny, while an
    # overwrite instead of an add still shows as an error of ~1e-6 relative to O(1) gradients.
    scale = 2.0**-20 if np.dtype(dtype) == np.float64 else 1.0
    grads = (scale * np.random.default_rng(1).normal(size=run.weights.shape)).astype(dtype)
    before = grads.copy()
    real_backward = run.backward_arguments(grads=grads)
    run.stack.forward(*nan_forward)
    run.stack.backward(*nan_backward)
    forward = run.stack.forward(*real_forward)
    backward = run.stack.backward(*real_backward)
    return inference, result_dict(case, *run.forward_result(forward), *run.backward_result(backward, grads, before))


def result_dict(case, y, state_n, dx=None, dstate0=None, grads=None):
    """Named tensors of a run, in a fixed order, for `assert_close`."""
    names = ("h_n", "c_n") if case.mode == "lstm" else ("h_n",)
    result = {"y": y, **dict(zip(names, state_n))}
    if dstate0 is not None:
        result.update({"x": dx, **dict(zip(case.state_parts, dstate0)), **grads})
    return result


def reference_forward(case, data, dropout_masks=None):
    """The reference's training forward in float64: (y, state_n, cache)."""
    return reference.forward(
        case.mode, data.x, data.params, num_layers=case.num_layers, bidirectional=case.bidirectional,
        state=public_state(case, data.state), lengths=case.lengths_array,
        linear_before_reset=case.linear_before_reset, dropout_masks=dropout_masks)


def reference_run(case, data, dropout_masks=None):
    """The reference's forward and backward in float64: (forward dict, full dict)."""
    y, state_n, cache = reference_forward(case, data, dropout_masks)
    dx, dstate0, grads = reference.backward(cache, data.dy, public_state(case, data.dstate))
    state_n = state_tuple(case, state_n)
    return result_dict(case, y, state_n), result_dict(case, y, state_n, dx, state_tuple(case, dstate0), grads)

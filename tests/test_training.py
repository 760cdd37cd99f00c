"""End-to-end parity: a few steps of plain SGD on a small sequence task, once with the NumPy
reference and once with the native kernels through the layer API, from the same initial
weights: the loss sequences agree.
"""

import numpy as np
import pytest

from fastrnn import reference
from support import CELL_IDS, CELLS, make_layer, record

STEPS, BATCH, HIDDEN, LAYERS = 10, 16, 8, 2
SGD_STEPS, LEARNING_RATE = 25, 0.5


def task():
    """Inputs (T, B, 1) and targets: the input one step earlier (0 at the first step), read out
    of the last layer by a fixed linear map; only the recurrent layers learn."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS, BATCH, 1))
    target = np.concatenate([np.zeros((1, BATCH, 1)), x[:-1]])
    readout = rng.normal(size=(HIDDEN, 1)) / np.sqrt(HIDDEN)
    return x, target, readout


def mse(y, target, readout):
    """(loss, d loss / d y) of mean((y W - target)^2)."""
    error = y @ readout - target
    return np.mean(error**2), 2 * error @ readout.T / error.size


def train_reference(mode, linear_before_reset, params, x, target, readout):
    params = {name: value.copy() for name, value in params.items()}
    losses = []
    for _ in range(SGD_STEPS):
        y, _, cache = reference.forward(mode, x, params, num_layers=LAYERS, linear_before_reset=linear_before_reset)
        loss, dy = mse(y, target, readout)
        _, _, grads = reference.backward(cache, dy)
        for name, grad in grads.items():
            params[name] -= LEARNING_RATE * grad
        losses.append(loss)
    return np.array(losses)


def train_layer(layer, x, target, readout):
    values, grads = layer.parameter_buffers()[0]
    losses = []
    for _ in range(SGD_STEPS):
        layer.zero_grad()
        y, _ = layer(x)
        loss, dy = mse(y, target, readout)
        layer.backward(dy, input_grad=False)
        values -= LEARNING_RATE * grads
        losses.append(loss)
    return np.array(losses)


@pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
def test_sgd_losses_match_reference(mode, linear_before_reset):
    x, target, readout = task()
    layer = make_layer(mode, linear_before_reset, input_size=1, hidden_size=HIDDEN, num_layers=LAYERS,
                       dtype="float64", seed=1)
    expected = train_reference(mode, linear_before_reset, layer.state_dict(), x, target, readout)
    actual = train_layer(layer, x, target, readout)
    error = np.abs(actual - expected).max() / expected.max()
    record(f"SGD losses {mode}{'' if linear_before_reset else '_reset_first'} vs reference", error)
    assert error <= 1e-9, (actual, expected)
    assert expected[-1] < 0.9 * expected[0]   # it learns: the comparison is not of a flat line

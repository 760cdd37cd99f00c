"""The layer API (fastrnn.RNN / LSTM / GRU) against torch.nn.RNN / LSTM / GRU loaded with the
same weights: outputs, final states and every gradient, over the layouts PyTorch accepts
(time-major, batch_first, unbatched, packed sequences); and the parameter storage behind it.
"""

import numpy as np
import pytest

import fastrnn
from support import assert_close

TORCH_CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]

SHAPES = {
    "one_layer": dict(steps=4, batch=3, input_size=5, hidden_size=7),
    "2_layers_bidirectional": dict(steps=5, batch=4, input_size=3, hidden_size=9, num_layers=2,
                                   bidirectional=True),
    "batch_first": dict(steps=3, batch=5, input_size=4, hidden_size=16, num_layers=2, batch_first=True),
    "unbatched": dict(steps=6, batch=None, input_size=3, hidden_size=5, num_layers=2, bidirectional=True),
    "packed": dict(steps=5, batch=6, input_size=3, hidden_size=8, num_layers=2, bidirectional=True,
                   lengths=[3, 5, 1, 4, 5, 2]),
    "packed_batch_first": dict(steps=4, batch=3, input_size=2, hidden_size=17, num_layers=3,
                               batch_first=True, lengths=[4, 1, 2]),
    "no_bias_big": dict(steps=3, batch=13, input_size=33, hidden_size=40, num_layers=2,
                        bidirectional=True, bias=False),
}


@pytest.fixture
def torch():
    """torch (the test is skipped without it) on one thread: the fastrnn calls in between keep
    both cores busy, and torch's own pool would spin against them (seconds per test)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def layer_pair(torch, mode, dtype, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
               bidirectional=False):
    """A torch module with its default random weights and a fastrnn layer loaded from its
    state_dict."""
    torch_class, fastrnn_class = {"lstm": (torch.nn.LSTM, fastrnn.LSTM), "gru": (torch.nn.GRU, fastrnn.GRU)}.get(
        mode, (torch.nn.RNN, fastrnn.RNN))
    options = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
    sizes = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, bias=bias,
                 batch_first=batch_first, bidirectional=bidirectional, **options)
    torch.manual_seed(0)
    module = torch_class(**sizes, dtype=getattr(torch, dtype))
    layer = fastrnn_class(**sizes, dtype=dtype)
    assert list(layer.params) == [name for name, _ in module.named_parameters()]
    layer.load_state_dict({name: value.numpy() for name, value in module.state_dict().items()})
    return module, layer


@pytest.mark.parametrize("mode", TORCH_CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_torch(torch, mode, dtype, shape):
    sizes = dict(SHAPES[shape])
    steps, batch, lengths = sizes.pop("steps"), sizes.pop("batch"), sizes.pop("lengths", None)
    module, layer = layer_pair(torch, mode, dtype, **sizes)
    batch_first = layer.batch_first
    directions = 2 if layer.bidirectional else 1
    rng = np.random.default_rng(1)

    def sequence(features):
        shape = (steps, features) if batch is None else (batch, steps, features) if batch_first else (
            steps, batch, features)
        return rng.normal(size=shape).astype(dtype)

    state_shape = (layer.num_layers * directions,) + (() if batch is None else (batch,)) + (layer.hidden_size,)
    parts = 2 if mode == "lstm" else 1
    x, dy = sequence(layer.input_size), sequence(directions * layer.hidden_size)
    state = [rng.normal(size=state_shape).astype(dtype) for _ in range(parts)]
    dstate = [rng.normal(size=state_shape).astype(dtype) for _ in range(parts)]

    torch_x = torch.tensor(x, requires_grad=True)
    torch_state = [torch.tensor(part, requires_grad=True) for part in state]
    inputs = torch_x
    if lengths is not None:
        inputs = torch.nn.utils.rnn.pack_padded_sequence(torch_x, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
    outputs, torch_state_n = module(inputs, tuple(torch_state) if mode == "lstm" else torch_state[0])
    if lengths is not None:
        outputs, _ = torch.nn.utils.rnn.pad_packed_sequence(outputs, batch_first=batch_first, total_length=steps)
    torch_state_n = torch_state_n if mode == "lstm" else (torch_state_n,)
    loss = (outputs * torch.from_numpy(dy)).sum() + sum(
        (part * torch.from_numpy(d_part)).sum() for part, d_part in zip(torch_state_n, dstate))
    loss.backward()

    y, state_n = layer(x, tuple(state) if mode == "lstm" else state[0], lengths=lengths)
    dx, dstate0 = layer.backward(dy, tuple(dstate) if mode == "lstm" else dstate[0])
    state_n, dstate0 = (state_n, dstate0) if mode == "lstm" else ((state_n,), (dstate0,))
    state_names = ["h", "c"][:parts]
    actual = {"y": y, **{f"{name}_n": part for name, part in zip(state_names, state_n)}, "x": dx,
              **{f"{name}0": part for name, part in zip(state_names, dstate0)}, **layer.grads}
    expected = {"y": outputs, **{f"{name}_n": part for name, part in zip(state_names, torch_state_n)},
                "x": torch_x.grad, **{f"{name}0": part.grad for name, part in zip(state_names, torch_state)},
                **{name: parameter.grad for name, parameter in module.named_parameters()}}
    expected = {name: value.detach().numpy() for name, value in expected.items()}
    assert all(value.dtype == dtype for value in actual.values())
    assert_close(actual, expected, dtype, f"{mode} {dtype} vs torch")


def test_params_and_grads_are_views_of_flat_buffers():
    layer = fastrnn.GRU(3, 4, num_layers=2, dtype="float64", seed=0)
    values, grads = layer.parameter_buffers()[0]
    layer.params["weight_hh_l1"][0, 0] = 42.0
    assert 42.0 in values
    state = layer.state_dict()
    state["bias_ih_l0"][...] = -1   # a copy: the layer does not change
    assert not np.any(layer.params["bias_ih_l0"] == -1)
    x = np.ones((2, 1, 3))
    layer(x)
    layer.backward(np.ones((2, 1, 4)))
    assert np.abs(layer.grads["weight_ih_l0"]).max() > 0 and np.shares_memory(layer.grads["weight_ih_l0"], grads)
    held = layer.grads   # a mapping kept across zero_grad() still reads zeros
    layer.zero_grad()
    assert not held["weight_ih_l0"].any() and not layer.parameter_buffers()[0][1].any()
    other = fastrnn.GRU(3, 4, num_layers=2, dtype="float64", seed=1)
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(other(x)[0], layer(x)[0])


def test_seed_fixes_initial_weights_in_pytorch_range():
    first, second = (fastrnn.LSTM(2, 9, seed=5) for _ in range(2))
    for name, value in first.params.items():
        np.testing.assert_array_equal(value, second.params[name])
        assert np.abs(value).max() <= 1 / 3
    assert not np.array_equal(first.params["weight_ih_l0"], fastrnn.LSTM(2, 9, seed=6).params["weight_ih_l0"])


@pytest.mark.parametrize("layer_class", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
def test_backward_skips_the_gradients_asked_not_to_compute(layer_class):
    layer = layer_class(3, 5, num_layers=2, dtype="float64", seed=0)
    x, dy = np.random.default_rng(0).normal(size=(4, 6, 3)), np.ones((4, 6, 5))
    layer(x)
    dx, dstate0 = layer.backward(dy)
    assert dx.shape == x.shape
    assert all(part.shape == (2, 6, 5) for part in (dstate0 if isinstance(dstate0, tuple) else (dstate0,)))
    full = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.zero_grad()
    layer(x)
    assert layer.backward(dy, input_grad=False, state_grad=False) == (None, None)
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, full[name], err_msg=name)


def test_weight_rows_are_padded_and_the_padding_stays_zero():
    layer = fastrnn.GRU(5, 9, num_layers=2, seed=0)
    values, grads = layer.parameter_buffers()[0]
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1"):
        view = layer.params[name]
        assert np.shares_memory(view, values) and view.strides[0] % 32 == 0, name   # rows on 32-byte boundaries
    state = layer.state_dict()
    for view in layer.params.values():
        view[...] = np.nan
    padding = ~np.isnan(values)
    assert padding.any() and not values[padding].any()
    layer.load_state_dict(state)
    optimizer = fastrnn.optim.Adam(lr=0.1, weight_decay=0.1)
    x = np.random.default_rng(0).normal(size=(3, 2, 5)).astype(np.float32)
    for _ in range(3):
        layer.zero_grad()
        layer(x)
        layer.backward(np.ones((3, 2, 9), np.float32))
        optimizer.step(layer.parameter_buffers())
    assert not values[padding].any() and not grads[padding].any()
    assert np.isfinite(values).all() and not np.array_equal(layer.params["weight_hh_l1"], state["weight_hh_l1"])

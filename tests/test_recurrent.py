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


# ---------------------------------------------------------------------------------------------
# Cells: fastrnn.RNNCell / LSTMCell / GRUCell against torch.nn's, unrolled with the state carried
# ---------------------------------------------------------------------------------------------

CELL_STEPS = 5


def cell_pair(torch, mode, dtype, input_size, hidden_size, bias):
    kind, options = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
                     "lstm": ("LSTM", {}), "gru": ("GRU", {})}[mode]
    torch_cell = getattr(torch.nn, f"{kind}Cell")(input_size, hidden_size, bias=bias, **options).to(
        getattr(torch, dtype))
    cell = getattr(fastrnn, f"{kind}Cell")(input_size, hidden_size, bias=bias, dtype=dtype, **options)
    cell.load_state_dict({name: value.detach().numpy() for name, value in torch_cell.state_dict().items()})
    return torch_cell, cell


def unroll(cell, xs, state):
    """The cell's states over the steps of xs, the state carried from `state`."""
    states = []
    for x in xs:
        state = cell(x, state)
        states.append(state)
    return states


@pytest.mark.parametrize("mode", TORCH_CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch, bias", [(3, True), (None, True), (1, False)], ids=["batch3", "unbatched", "no_bias"])
def test_cells_unrolled_match_torch(torch, mode, dtype, batch, bias):
    torch_cell, cell = cell_pair(torch, mode, dtype, input_size=5, hidden_size=7, bias=bias)
    lstm = mode == "lstm"
    rng = np.random.default_rng(0)
    batch_shape = () if batch is None else (batch,)
    xs = rng.normal(size=(CELL_STEPS, *batch_shape, 5)).astype(dtype)
    state0 = tuple(rng.normal(size=(*batch_shape, 7)).astype(dtype) for _ in range(2 if lstm else 1))
    weights = rng.normal(size=(CELL_STEPS, *batch_shape, 7)).astype(dtype)   # loss = sum of weights * h over steps

    torch_xs = torch.tensor(xs, requires_grad=True)
    torch_state0 = tuple(torch.tensor(part, requires_grad=True) for part in state0)
    torch_states = unroll(torch_cell, torch_xs, torch_state0 if lstm else torch_state0[0])
    torch_hs = [state[0] if lstm else state for state in torch_states]
    sum(((h * torch.tensor(w)).sum() for h, w in zip(torch_hs, weights))).backward()

    cell.zero_grad()
    states = unroll(cell, xs, state0 if lstm else state0[0])
    hs = [state[0] if lstm else state for state in states]
    dxs, dstate = [None] * CELL_STEPS, None
    for step in reversed(range(CELL_STEPS)):   # the gradient of each h: its own weight plus the next step's
        if lstm:
            dstate = (weights[step], None) if dstate is None else (weights[step] + dstate[0], dstate[1])
            dxs[step], dstate = cell.backward(dstate if dstate[1] is not None else dstate[0])
        else:
            dxs[step], dstate = cell.backward(weights[step] + (0 if dstate is None else dstate))
    dstate = dstate if lstm else (dstate,)

    expected = {"h": np.stack([h.detach().numpy() for h in torch_hs]), "dx": torch_xs.grad.numpy(),
                **{f"dstate0[{index}]": part.grad.numpy() for index, part in enumerate(torch_state0)},
                **{name: value.grad.numpy() for name, value in torch_cell.named_parameters()}}
    actual = {"h": np.stack(hs), "dx": np.stack(dxs),
              **{f"dstate0[{index}]": part for index, part in enumerate(dstate)},
              **{name: cell.grads[name] for name in expected if name in cell.grads}}
    assert_close(actual, expected, dtype, f"cell {mode} {dtype} ({CELL_STEPS} steps) vs torch")
    if lstm:
        np.testing.assert_allclose(states[-1][1], torch_states[-1][1].detach().numpy(), rtol=1e-4)


@pytest.mark.parametrize("kind, options", [("RNN", {"nonlinearity": "relu"}), ("LSTM", {}),
                                           ("GRU", {"linear_before_reset": False})])
def test_a_cell_unrolled_is_its_sequence_layer(kind, options):
    # Checked against torch above; GRUCell(linear_before_reset=False), which torch lacks, is
    # checked here against the sequence layer (itself checked against the reference).
    layer = getattr(fastrnn, kind)(3, 4, dtype="float64", seed=0, **options)
    cell = getattr(fastrnn, f"{kind}Cell")(3, 4, dtype="float64", **options)
    cell.load_state_dict({name.removesuffix("_l0"): value for name, value in layer.state_dict().items()})
    xs = np.random.default_rng(1).normal(size=(6, 2, 3))
    dy = np.random.default_rng(2).normal(size=(6, 2, 4))
    y, _ = layer(xs)
    layer.zero_grad()
    dxs_layer, _ = layer.backward(dy)

    state, hs = None, []
    for x in xs:
        state = cell(x, state)
        hs.append(state[0] if kind == "LSTM" else state)
    cell.zero_grad()
    dstate, dxs = None, []
    for step in reversed(range(6)):
        if kind == "LSTM":
            dx, dstate = cell.backward((dy[step] + (0 if dstate is None else dstate[0]),
                                        None if dstate is None else dstate[1]) if dstate is not None else dy[step])
        else:
            dx, dstate = cell.backward(dy[step] + (0 if dstate is None else dstate))
        dxs.insert(0, dx)
    np.testing.assert_allclose(np.stack(hs), y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.stack(dxs), dxs_layer, rtol=1e-10, atol=1e-13)
    for name, grad in layer.grads.items():
        np.testing.assert_allclose(cell.grads[name.removesuffix("_l0")], grad, rtol=1e-10, atol=1e-13)


def test_a_cell_records_calls_only_in_training_mode():
    cell = fastrnn.GRUCell(2, 3, dtype="float64")
    x = np.ones((4, 2))
    h = cell(x)
    cell(x, h)
    assert cell.recorded_steps() == 2
    cell.backward(np.ones((4, 3)))
    assert cell.recorded_steps() == 1
    cell.eval()
    assert cell.recorded_steps() == 0
    np.testing.assert_array_equal(cell(x), h)
    with pytest.raises(ValueError, match="backward: GRUCell has no recorded call to differentiate; call it in "
                                         r"training mode first \(each call supports one backward, last call first\)"):
        cell.backward(np.ones((4, 3)))


@pytest.mark.parametrize("call, error, match", [
    (lambda cell: cell(np.ones((4, 3)), (np.ones((4, 5)), np.ones((4, 6)))), ValueError,
     r"state\[1\] \(c\): expected shape \(4, 5\) \(batch, hidden_size=5\) for this x, got \(4, 6\)"),
    (lambda cell: cell(np.ones((4, 3)), (np.ones((3, 5)), np.ones((4, 5)))), ValueError,
     r"state\[0\] \(h\): expected shape \(4, 5\) \(batch, hidden_size=5\) for this x, got \(3, 5\)"),
    (lambda cell: cell(np.ones((4, 3)), np.ones((4, 5))), TypeError,
     r"state: expected a tuple \(h, c\) for an LSTMCell, got ndarray"),
    (lambda cell: cell(np.ones((4, 2))), ValueError,
     r"x: expected \(batch, input_size=3\) or unbatched \(input_size=3,\), got shape \(4, 2\)"),
    (lambda cell: cell(np.ones((2, 4, 3))), ValueError, r"x: expected \(batch, input_size=3\)"),
    (lambda cell: cell(np.array(["a", "b", "c"])), TypeError, "x: expected real numbers"),
    (lambda cell: (cell(np.ones((4, 3))), cell.backward(np.ones((4, 6)))), ValueError,
     r"dstate: expected shape \(4, 5\) \(batch, hidden_size=5\) for this x, got \(4, 6\)"),
    (lambda cell: (cell(np.ones((4, 3))), cell.backward((np.ones((4, 5)), np.ones((4, 5)), np.ones((4, 5))))),
     ValueError, r"dstate: expected \(dh, dc\) or dh for an LSTMCell, got 3 items"),
    (lambda cell: (cell(np.ones((4, 3))), cell.backward((np.ones((4, 5)), np.ones((1, 5))))), ValueError,
     r"dstate\[1\] \(dc\): expected shape \(4, 5\)"),
    (lambda cell: cell.backward(np.ones((4, 5))), ValueError, "backward: LSTMCell has no recorded call"),
    (lambda cell: fastrnn.Sequential([cell]), ValueError, r"layers\[0\]: LSTMCell\(3, 5\) is a cell"),
])
def test_cell_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(fastrnn.LSTMCell(3, 5))


def test_a_failed_call_or_backward_leaves_the_recorded_steps_as_they_were():
    cell = fastrnn.RNNCell(2, 3, dtype="float64")
    h = cell(np.ones((1, 2)))
    with pytest.raises(ValueError):
        cell(np.ones((1, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        cell.backward(np.ones((2, 3)))
    assert cell.recorded_steps() == 1
    dx, dh0 = cell.backward(np.ones_like(h))
    assert dx.shape == (1, 2) and dh0.shape == (1, 3)


def test_stored_activations_are_time_major_and_held_until_backward():
    """A batch_first layer's stored activations are time-major (T, B, width), like the
    reference's; the layer no longer holds them after backward or eval()."""
    layer = fastrnn.LSTM(3, 4, batch_first=True, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 5, 3))   # (B, T, input_size)
    y, _ = layer(x)
    (stored,) = layer.stored_activations()
    assert {name: value.shape for name, value in stored.items()} == {"gates": (5, 2, 16), "h": (5, 2, 4),
                                                                     "c": (5, 2, 4)}
    np.testing.assert_array_equal(stored["h"], y.transpose(1, 0, 2))
    layer.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="no training-mode forward"):
        layer.stored_activations()
    layer(x)
    layer.eval()
    with pytest.raises(ValueError, match="no training-mode forward"):
        layer.stored_activations()

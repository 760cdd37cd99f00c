"""Checks of the NumPy reference (fastrnn.reference), the specification the C++ kernels are
tested against: its gradients against central finite differences, its packed-sequence and cell
semantics against hand-written formulas, and (when torch is installed) everything against
torch.nn.RNN / LSTM / GRU.
"""

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastrnn import reference
from fastrnn.reference import MODES
from finite_differences import EPS, probe_directions
from finite_differences import TOLERANCE as FD_TOLERANCE
from support import Case, public_state, state_tuple

# Single elements checked per tensor, besides one random direction through all of them: a
# 3-layer bidirectional case has ~2000 scalars at ~2 ms per forward, too many to check each
FD_ELEMENTS = 10


@st.composite
def cases(draw, modes=MODES, require_lengths=False):
    mode = draw(st.sampled_from(modes))
    steps, batch = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    num_layers = draw(st.integers(1, 3))
    lengths = st.lists(st.integers(1, steps), min_size=batch, max_size=batch).map(tuple)
    return Case(
        mode=mode, steps=steps, batch=batch, input_size=draw(st.integers(1, 5)),
        hidden_size=draw(st.integers(1, 5)), num_layers=num_layers,
        bidirectional=draw(st.booleans()),
        # rnn_relu always has biases: without them a zero layer input and zero state give a
        # pre-activation of exactly 0, the kink, where finite differences are one-sided (a
        # random pre-activation within EPS of the kink has probability ~1e-6 per element)
        bias=mode == "rnn_relu" or draw(st.booleans()),
        linear_before_reset=mode != "gru" or draw(st.booleans()),
        lengths=draw(lengths if require_lengths else st.none() | lengths),
        initial_state=draw(st.booleans()),
        dropout=draw(st.none() | st.sampled_from([0.25, 0.5])) if num_layers > 1 else None,
        seed=draw(st.integers(0, 2**32 - 1)))


@dataclass
class Data:
    x: np.ndarray
    params: dict
    state: Optional[tuple]  # tuple of (L*D, B, H) arrays, or None for zeros
    dropout_masks: Optional[list]
    dy: np.ndarray
    dstate: tuple


def make_data(case, dtype=np.float64):
    """Random inputs for a case; weights U(-1, 1) so gradients are not tiny."""
    rng = np.random.default_rng(case.seed)
    shapes = reference.param_shapes(case.mode, case.input_size, case.hidden_size,
                                     case.num_layers, case.bidirectional, case.bias)
    params = {name: rng.uniform(-1, 1, shape).astype(dtype) for name, shape in shapes.items()}
    x = rng.uniform(-1, 1, (case.steps, case.batch, case.input_size)).astype(dtype)
    state = None
    if case.initial_state:
        state = tuple(rng.uniform(-1, 1, case.state_shape).astype(dtype) for _ in case.state_parts)
    output_shape = case.output_shape
    dropout_masks = None
    if case.dropout is not None:
        keep = 1 - case.dropout
        dropout_masks = [((rng.random(output_shape) < keep) / keep).astype(dtype)
                         for _ in range(case.num_layers - 1)]
    dy = rng.normal(size=output_shape).astype(dtype)
    dstate = tuple(rng.normal(size=case.state_shape).astype(dtype) for _ in case.state_parts)
    return Data(x, params, state, dropout_masks, dy, dstate)


def run_forward(case, x, params, state, dropout_masks):
    # not case.lengths_array: that casts to int64, and test_bad_lengths_raise passes float lengths
    lengths = None if case.lengths is None else np.array(case.lengths)
    return reference.forward(
        case.mode, x, params, num_layers=case.num_layers, bidirectional=case.bidirectional,
        state=public_state(case, state), lengths=lengths,
        linear_before_reset=case.linear_before_reset, dropout_masks=dropout_masks)


def analytic_gradients(case, data):
    """{"x", "h0", ("c0"), param names: gradient} from reference.backward."""
    _, _, cache = run_forward(case, data.x, data.params, data.state, data.dropout_masks)
    dx, dstate0, grads = reference.backward(cache, data.dy, public_state(case, data.dstate))
    return {"x": dx, **dict(zip(case.state_parts, state_tuple(case, dstate0))), **grads}


def numerical_gradients(case, data):
    """Central differences of L = sum(y dy) + sum(state_n dstate) along `probe_directions`
    of each input: {name: (directions, derivatives)}."""
    rng = np.random.default_rng(case.seed + 1)
    # explicit zeros when the case has no initial state, so d state0 can be perturbed
    state = data.state or tuple(np.zeros(case.state_shape) for _ in case.state_parts)
    inputs = {"x": data.x, **dict(zip(case.state_parts, state)), **data.params}

    def loss():
        y, state_n, _ = run_forward(case, data.x, data.params, state, data.dropout_masks)
        pairs = zip(state_tuple(case, state_n), data.dstate)
        return np.sum(y * data.dy) + sum(np.sum(part * d_part) for part, d_part in pairs)

    gradients = {}
    for name, array in inputs.items():  # perturbs the array in place, then restores it
        saved = array.copy()
        directions = probe_directions(rng, array.shape, FD_ELEMENTS)
        derivatives = []
        for direction in directions:
            array[...] = saved + EPS * direction
            loss_plus = loss()
            array[...] = saved - EPS * direction
            loss_minus = loss()
            derivatives.append((loss_plus - loss_minus) / (2 * EPS))
        array[...] = saved
        gradients[name] = directions, np.array(derivatives)
    return gradients


def must_be_nonzero(case):
    """Gradients that cannot vanish for random data, so comparing them is never vacuous.

    With random dstate every layer's state_n depends on its own h0 (c0) and layer 0's on x and
    its input weights; biases always act. W_hh acts once some h it multiplies is non-zero: h0,
    or a state after a first step whose pre-activation is not exactly 0 (a bias, the random x
    of layer 0, or an upper layer's input that no dropout mask can zero). relu units may be
    dead, so nothing is certain there.
    """
    if case.mode == "rnn_relu":
        return []
    names = ["x", *case.state_parts]
    several_steps = max(case.lengths or [case.steps]) > 1
    for layer in range(case.num_layers):
        for direction in range(case.directions):
            suffix = "_reverse" if direction else ""
            if layer == 0:
                names.append(f"weight_ih_l0{suffix}")
            first_step_moves = case.bias or layer == 0 or case.dropout is None
            if case.initial_state or (several_steps and first_step_moves):
                names.append(f"weight_hh_l{layer}{suffix}")
            if case.bias:
                names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
    return names


def gradient_errors(case):
    """{name: max |analytic - numerical| / (1 + |numerical|)}, after the structural checks."""
    data = make_data(case)
    analytic = analytic_gradients(case, data)
    numerical = numerical_gradients(case, data)
    assert list(analytic) == list(numerical)
    shapes = {"x": data.x.shape, **{part: case.state_shape for part in case.state_parts},
              **{name: value.shape for name, value in data.params.items()}}
    assert {name: gradient.shape for name, gradient in analytic.items()} == shapes
    for name in must_be_nonzero(case):
        assert np.linalg.norm(analytic[name]) > 0, name
    errors = {}
    for name, (directions, expected) in numerical.items():
        actual = np.array([np.sum(analytic[name] * direction) for direction in directions])
        errors[name] = np.max(np.abs(actual - expected) / (1 + np.abs(expected)))
    return errors


MIDDLE_SHORT = Case("gru", steps=5, batch=3, input_size=2, hidden_size=3, num_layers=2,
                    bidirectional=True, linear_before_reset=False, lengths=(5, 2, 5),
                    dropout=0.5, seed=1)
END_SHORT = Case("lstm", steps=4, batch=3, input_size=3, hidden_size=2, num_layers=2,
                 bidirectional=True, lengths=(4, 4, 1), dropout=0.25, seed=2)
TINY = Case("rnn_tanh", steps=1, batch=1, input_size=1, hidden_size=1, seed=3)


@settings(max_examples=40, deadline=None)
@given(case=cases())
@example(case=MIDDLE_SHORT)
@example(case=END_SHORT)
@example(case=TINY)
@example(case=Case("gru", steps=3, batch=2, input_size=2, hidden_size=2, num_layers=3,
                   initial_state=False, lengths=(1, 3), seed=4))
@example(case=Case("lstm", steps=2, batch=1, input_size=2, hidden_size=2, num_layers=3,
                   bias=False, initial_state=False, dropout=0.25, seed=2))  # W_hh_l2 unused
def test_gradients_match_finite_differences(case):
    errors = gradient_errors(case)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= FD_TOLERANCE, (worst, errors[worst])


@settings(max_examples=40, deadline=None)
@given(case=cases(require_lengths=True))
@example(case=MIDDLE_SHORT)
@example(case=END_SHORT)
def test_lengths_match_sequences_run_alone(case):
    """Packed semantics: each sequence behaves as if run alone on its valid steps, padded
    outputs are exactly zero, and dy at padded steps changes no gradient."""
    lengths = case.lengths
    data = make_data(case)
    y, state_n, cache = run_forward(case, data.x, data.params, data.state, data.dropout_masks)
    state0 = data.state or tuple(np.zeros(case.state_shape) for _ in case.state_parts)
    for b, length in enumerate(lengths):
        # sequence b alone: its valid steps, as a batch of one
        masks = None
        if data.dropout_masks is not None:
            masks = [mask[:length, b:b + 1] for mask in data.dropout_masks]
        alone = [part[:, b:b + 1] for part in state0]
        y_alone, state_alone, _ = run_forward(replace(case, lengths=None),
                                              data.x[:length, b:b + 1], data.params, alone, masks)
        np.testing.assert_allclose(y[:length, b], y_alone[:, 0], rtol=1e-12, atol=1e-14)
        for part, part_alone in zip(state_tuple(case, state_n), state_tuple(case, state_alone)):
            np.testing.assert_allclose(part[:, b], part_alone[:, 0], rtol=1e-12, atol=1e-14)
        assert np.all(y[length:, b] == 0)
        # stored states are carried through padding: forward keeps its final state, reverse
        # still holds h0 (c0) because it has not started yet
        for index, stored in enumerate(cache["stored"]):
            reverse = case.bidirectional and index % 2 == 1
            for name, part, part_n in zip(("h", "c"), state0, state_tuple(case, state_n)):
                carried = part[index, b] if reverse else part_n[index, b]
                assert np.all(stored[name][length:, b] == carried)

    padded = ~(np.arange(case.steps)[:, None] < np.array(lengths))  # (T, B)
    noisy_dy = data.dy + padded[:, :, None] * np.random.default_rng(case.seed).normal(
        size=data.dy.shape)
    dstate = public_state(case, data.dstate)
    dx, dstate0, grads = reference.backward(cache, data.dy, dstate)
    dx_noisy, dstate0_noisy, grads_noisy = reference.backward(cache, noisy_dy, dstate)
    assert np.all(dx[padded] == 0)
    np.testing.assert_array_equal(dx, dx_noisy)
    np.testing.assert_array_equal(np.stack(state_tuple(case, dstate0)),
                                  np.stack(state_tuple(case, dstate0_noisy)))
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_noisy[name])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def one_step_case(mode, linear_before_reset=True):
    """T=1 data with non-zero state, and the weights cut into PyTorch's gate blocks."""
    case = Case(mode, steps=1, batch=2, input_size=3, hidden_size=4,
                linear_before_reset=linear_before_reset, seed=5)
    data = make_data(case)
    gates = reference.GATES[mode]
    blocks = {name: np.split(value, gates) for name, value in data.params.items()}
    return case, data, blocks


def gate_preactivations(data, blocks):
    """Per gate block j: (W_ij x + b_ij, W_hj h + b_hj) at the single step."""
    x, h = data.x[0], data.state[0][0]
    return [(x @ w_i.T + b_i, h @ w_h.T + b_h) for w_i, w_h, b_i, b_h in zip(
        blocks["weight_ih_l0"], blocks["weight_hh_l0"], blocks["bias_ih_l0"], blocks["bias_hh_l0"])]


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu"])
def test_rnn_one_step_matches_formula(mode):
    case, data, blocks = one_step_case(mode)
    ((from_x, from_h),) = gate_preactivations(data, blocks)
    activation = np.tanh if mode == "rnn_tanh" else (lambda z: np.maximum(z, 0))
    expected = activation(from_x + from_h)
    y, h_n, cache = run_forward(case, data.x, data.params, data.state, None)
    np.testing.assert_allclose(y[0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h_n[0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(cache["stored"][0]["gates"][0], expected, rtol=1e-14, atol=1e-15)


def test_lstm_one_step_matches_formula():
    case, data, blocks = one_step_case("lstm")
    (xi, hi), (xf, hf), (xg, hg), (xo, ho) = gate_preactivations(data, blocks)
    i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), np.tanh(xg + hg), sigmoid(xo + ho)
    c_new = f * data.state[1][0] + i * g
    h_new = o * np.tanh(c_new)
    y, (h_n, c_n), cache = run_forward(case, data.x, data.params, data.state, None)
    stored = cache["stored"][0]
    for actual, expected in [(y[0], h_new), (h_n[0], h_new), (c_n[0], c_new),
                             (stored["h"][0], h_new), (stored["c"][0], c_new),
                             (stored["gates"][0], np.concatenate([i, f, g, o], axis=1))]:
        np.testing.assert_allclose(actual, expected, rtol=1e-14, atol=1e-15)


def test_gru_one_step_matches_formula_in_both_formulations():
    outputs = {}
    for linear_before_reset in (True, False):
        case, data, blocks = one_step_case("gru", linear_before_reset)
        (xr, hr), (xz, hz), (xn, hn) = gate_preactivations(data, blocks)
        h = data.state[0][0]
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        if linear_before_reset:  # n = tanh(W_in x + b_in + r (W_hn h + b_hn))
            n = np.tanh(xn + r * hn)
        else:  # n = tanh(W_in x + b_in + W_hn (r h) + b_hn)
            n = np.tanh(xn + (r * h) @ blocks["weight_hh_l0"][2].T + blocks["bias_hh_l0"][2])
        h_new = (1 - z) * n + z * h
        y, h_n, cache = run_forward(case, data.x, data.params, data.state, None)
        stored = cache["stored"][0]
        np.testing.assert_allclose(y[0], h_new, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(h_n[0], h_new, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(stored["gates"][0], np.concatenate([r, z, n], axis=1),
                                   rtol=1e-14, atol=1e-15)
        assert ("hn" in stored) == linear_before_reset
        if linear_before_reset:
            np.testing.assert_allclose(stored["hn"][0], hn, rtol=1e-14, atol=1e-15)
        outputs[linear_before_reset] = y
    assert np.max(np.abs(outputs[True] - outputs[False])) > 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_computes_in_dtype_of_x(dtype):
    case = END_SHORT
    data = make_data(case, dtype)
    y, state_n, cache = run_forward(case, data.x, data.params, data.state, data.dropout_masks)
    dx, dstate0, grads = reference.backward(cache, data.dy, public_state(case, data.dstate))
    results = [y, dx, *state_tuple(case, state_n), *state_tuple(case, dstate0),
               *grads.values()]
    assert all(result.dtype == dtype for result in results)
    # the same (rounded) inputs in float64: only the arithmetic's rounding differs
    params64 = {name: value.astype(np.float64) for name, value in data.params.items()}
    y64, _, _ = run_forward(case, data.x.astype(np.float64), params64, data.state,
                            data.dropout_masks)
    tolerance = 10 * np.finfo(dtype).eps
    np.testing.assert_allclose(y, y64, rtol=tolerance, atol=tolerance)


def test_param_shapes_and_init():
    shapes = reference.param_shapes("gru", 3, 4, num_layers=2, bidirectional=True)
    assert list(shapes.items())[:5] == [
        ("weight_ih_l0", (12, 3)), ("weight_hh_l0", (12, 4)), ("bias_ih_l0", (12,)),
        ("bias_hh_l0", (12,)), ("weight_ih_l0_reverse", (12, 3))]
    assert shapes["weight_ih_l1_reverse"] == (12, 8)
    assert list(reference.param_shapes("lstm", 3, 4, bias=False)) == ["weight_ih_l0",
                                                                      "weight_hh_l0"]
    params = reference.init_params("lstm", 3, 4, num_layers=2, dtype=np.float32, seed=7)
    assert {name: value.shape for name, value in params.items()} == reference.param_shapes(
        "lstm", 3, 4, num_layers=2)
    assert all(value.dtype == np.float32 and np.all(np.abs(value) <= 0.5)
               for value in params.values())
    again = reference.init_params("lstm", 3, 4, num_layers=2, dtype=np.float32, seed=7)
    assert all(np.array_equal(params[name], again[name]) for name in params)


@pytest.mark.parametrize("lengths, error, match", [
    ([0, 2], ValueError, r"lengths: expected values in \[1, 2\] \(the steps of x\), got values from 0 to 2"),
    ([3, 2], ValueError, r"lengths: expected values in \[1, 2\]"),
    ([1.0, 2.0], TypeError, "lengths: expected integers"),
    ([1], ValueError, r"lengths: expected shape \(2,\) \(one integer per sequence\), got shape \(1,\)"),
])
def test_bad_lengths_raise(lengths, error, match):
    # The reference checks lengths with fastrnn's one check (base.sequence_lengths).
    case = Case("rnn_tanh", steps=2, batch=2, input_size=1, hidden_size=1)
    data = make_data(case)
    with pytest.raises(error, match=match):
        run_forward(replace(case, lengths=lengths), data.x, data.params, data.state, None)


# ---------------------------------------------------------------------------------------------
# Against PyTorch (skipped when torch is not installed)
# ---------------------------------------------------------------------------------------------

TORCH_CASES = [
    dict(steps=4, batch=2, input_size=3, hidden_size=5),
    dict(steps=5, batch=4, input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
         lengths=(5, 2, 3, 5)),
    dict(steps=5, batch=3, input_size=2, hidden_size=3, num_layers=2, bidirectional=True,
         bias=False, lengths=(4, 1, 2), initial_state=False),
]


def torch_module(torch, case, params):
    """The torch module of a case, in float64, holding the reference's parameters."""
    module_class = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN,
                    "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.mode]
    options = {"nonlinearity": case.mode[4:]} if case.mode.startswith("rnn_") else {}
    module = module_class(case.input_size, case.hidden_size, case.num_layers, bias=case.bias,
                          bidirectional=case.bidirectional, dtype=torch.float64, **options)
    assert [(name, tuple(p.shape)) for name, p in module.named_parameters()] == [
        (name, value.shape) for name, value in params.items()]
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(torch.from_numpy(params[name]))
    return module


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", range(len(TORCH_CASES)))
def test_matches_torch(mode, shape):
    torch = pytest.importorskip("torch")
    case = Case(mode, **TORCH_CASES[shape], seed=10 + shape)
    data = make_data(case)
    module = torch_module(torch, case, data.params)
    x = torch.tensor(data.x, requires_grad=True)
    state = data.state or tuple(np.zeros(case.state_shape) for _ in case.state_parts)
    state = [torch.tensor(part, requires_grad=True) for part in state]
    inputs = x
    if case.lengths is not None:
        inputs = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(case.lengths),
                                                         enforce_sorted=False)
    outputs, state_n = module(inputs, public_state(case, tuple(state)))
    if case.lengths is not None:
        outputs, _ = torch.nn.utils.rnn.pad_packed_sequence(outputs, total_length=case.steps)
    state_n = state_tuple(case, state_n)
    loss = (outputs * torch.from_numpy(data.dy)).sum() + sum(
        (part * torch.from_numpy(d_part)).sum() for part, d_part in zip(state_n, data.dstate))
    loss.backward()

    y, our_state_n, _ = run_forward(case, data.x, data.params, data.state, None)
    final_names = ["h_n", "c_n"][:len(state_n)]
    actual = {"y": y, **dict(zip(final_names, state_tuple(case, our_state_n))),
              **analytic_gradients(case, data)}
    expected = {"y": outputs, **dict(zip(final_names, state_n)), "x": x.grad,
                **{name: part.grad for name, part in zip(case.state_parts, state)},
                **dict(module.named_parameters())}
    assert list(actual) == list(expected)
    for name, value in expected.items():
        value = value.grad if isinstance(value, torch.nn.Parameter) else value
        np.testing.assert_allclose(actual[name], value.detach().numpy(), rtol=1e-10,
                                   atol=1e-10, err_msg=name)

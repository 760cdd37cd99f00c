"""The native RNN/LSTM/GRU kernels (fastrnn._core, each variant called directly) against the
NumPy reference: outputs, final states and every gradient, in inference and training mode, at
the sizes where vectorised code breaks; outputs that a kernel leaves unwritten (each call follows
one on NaN inputs, see support.native_results); padded time steps that must never be read; and
the activations a training-mode forward stores for backward, by name.
"""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastrnn import reference
from support import (CELL_IDS, CELLS, ISAS, Case, NativeRun, assert_close, make_data, native_results,
                     reference_forward, reference_run, result_dict, scaled_error)

DTYPES = [np.float64, np.float32]
# Vector widths are 2 to 16 (portable float64 to avx512 float32), panels twice that: every
# remainder below 33, the exact widths, one past, and odd sizes spanning several panels.
HIDDEN_SIZES = [*range(1, 34), 40, 65]
INPUT_SIZES = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 40]
# 1 and 2 take the dot-product recurrent path, 3+ the packed one in row tiles of 4 (portable),
# 6 (avx2) and 8 (avx512): these leave every remainder of each, after zero, one or two whole tiles.
BATCHES = [1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 17]

cells = pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
isas = pytest.mark.parametrize("isa", ISAS)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])


@st.composite
def lengths_of(draw, steps, batch):
    """None, all full, or a mix where shorter sequences sit anywhere in the batch."""
    choice = draw(st.sampled_from(["none", "full", "mixed"]))
    if choice == "none":
        return None
    if choice == "full":
        return (steps,) * batch
    return tuple(draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)))


@st.composite
def cases(draw, mode, linear_before_reset):
    steps, batch = draw(st.sampled_from([1, 1, 2, 3, 5])), draw(st.sampled_from(BATCHES))
    layouts = ["time_major", "batch_first"] + (["unbatched"] if batch == 1 else [])
    layout = draw(st.sampled_from(layouts))
    return Case(mode, steps=steps, batch=batch, input_size=draw(st.sampled_from(INPUT_SIZES)),
                hidden_size=draw(st.sampled_from(HIDDEN_SIZES)), num_layers=draw(st.integers(1, 3)),
                bidirectional=draw(st.booleans()), bias=draw(st.booleans()),
                linear_before_reset=linear_before_reset,
                lengths=None if layout == "unbatched" else draw(lengths_of(steps, batch)),
                initial_state=draw(st.booleans()), final_gradient=draw(st.booleans()), layout=layout,
                seed=draw(st.integers(0, 2**32 - 1)))


def check_against_reference(case, dtype, isa):
    """Inference forward, training forward and backward of one variant vs the reference."""
    data = make_data(case).rounded(dtype)
    expected_forward, expected = reference_run(case, data)
    inference, training = native_results(case, data, dtype, isa)
    name = f"{case.mode}{'' if case.linear_before_reset else '_reset_first'} {np.dtype(dtype).name} vs reference"
    assert_close(inference, expected_forward, dtype, name)
    assert_close(training, expected, dtype, name)


@cells
@isas
@dtypes
@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_reference(mode, linear_before_reset, isa, dtype, data):
    case = data.draw(cases(mode, linear_before_reset), label="case")
    check_against_reference(case, dtype, isa)


def sweep_case(mode, linear_before_reset, hidden_size):
    """A deterministic case per hidden size, cycling every other dimension through its
    awkward values so that together the sweep covers each of them."""
    steps = 1 + hidden_size % 4
    batch = BATCHES[hidden_size % len(BATCHES)]
    lengths = [None, (steps,) * batch,
               tuple(max(1, steps - (b == batch - 1) * 2) for b in range(batch)),   # short at the end
               tuple(max(1, steps - (b == batch // 2) * 3) for b in range(batch))   # short in the middle
               ][hidden_size % 4]
    return Case(mode, steps=steps, batch=batch, input_size=INPUT_SIZES[hidden_size % len(INPUT_SIZES)],
                hidden_size=hidden_size, num_layers=1 + hidden_size % 3, bidirectional=hidden_size % 2 == 0,
                bias=hidden_size % 5 != 0, linear_before_reset=linear_before_reset, lengths=lengths,
                initial_state=hidden_size % 3 != 1, final_gradient=hidden_size % 7 != 3, seed=hidden_size)


@cells
@isas
@dtypes
@pytest.mark.parametrize("hidden_size", HIDDEN_SIZES)
def test_every_hidden_size_matches_reference(mode, linear_before_reset, isa, dtype, hidden_size):
    check_against_reference(sweep_case(mode, linear_before_reset, hidden_size), dtype, isa)


@cells
@isas
@dtypes
@pytest.mark.parametrize("batch", [1, 3, 13])
def test_padded_steps_are_never_read(mode, linear_before_reset, isa, dtype, batch):
    """x and dy at padded steps set to NaN and inf: every result is finite and equal to the
    zero-padded run's (PyTorch's packed semantics: padded steps do not exist)."""
    lengths = [(3, 5, 1, 5, 2, 4, 5, 1, 3, 5, 5, 2, 4)[b] for b in range(batch)]
    lengths[0] = min(lengths[0], 4)   # batch 1: still padded
    case = Case(mode, steps=5, batch=batch, input_size=9, hidden_size=17, num_layers=2, bidirectional=True,
                linear_before_reset=linear_before_reset, lengths=tuple(lengths))
    data = make_data(case)
    padded = case.padded()
    data.x[padded], data.dy[padded] = 0, 0
    clean = NativeRun(case, data, dtype, isa)
    expected = result_dict(case, *clean.forward(), *clean.backward())

    noisy_x, noisy_dy = data.x.copy(), data.dy.copy()
    noisy_x[padded] = np.where(np.arange(case.input_size) % 2, np.nan, np.inf)
    noisy_dy[padded] = np.where(np.arange(case.output_shape[2]) % 2, -np.inf, np.nan)
    noisy = NativeRun(case, data, dtype, isa)
    actual = result_dict(case, *noisy.forward(x=noisy_x), *noisy.backward(dy=noisy_dy))
    for name, value in expected.items():
        assert np.isfinite(actual[name]).all(), name
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    # the inference path as well
    inference = result_dict(case, *noisy.forward(training=False, x=noisy_x))
    for name, value in inference.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


@cells
@isas
def test_repeated_calls_on_one_stack(mode, linear_before_reset, isa):
    """A stack reused for other data, other shapes and other lengths gives each call's own
    result: nothing of an earlier call (workspaces, stored activations) leaks into a later one."""
    first = Case(mode, steps=4, batch=13, input_size=5, hidden_size=9, num_layers=2, bidirectional=True,
                 linear_before_reset=linear_before_reset, lengths=(4, 1, 3) * 4 + (2,), seed=1)
    later = [replace(first, seed=2), replace(first, steps=2, batch=3, lengths=None, seed=3),
             replace(first, steps=6, batch=2, lengths=(2, 6), seed=4), replace(first, lengths=None, seed=5)]
    run = NativeRun(first, make_data(first), np.float64, isa)
    for case in [first, *later]:
        data = make_data(case)
        run.use(case, data)
        _, expected = reference_run(case, data)
        actual = result_dict(case, *run.forward(), *run.backward())
        assert_close(actual, expected, np.float64, "reused stack vs reference")


@cells
@isas
@pytest.mark.parametrize("input_gradient, state_gradient", [(False, True), (True, False), (False, False)])
def test_input_and_state_gradients_can_be_skipped(mode, linear_before_reset, isa, input_gradient, state_gradient):
    case = Case(mode, steps=3, batch=7, input_size=5, hidden_size=6, num_layers=2,
                linear_before_reset=linear_before_reset, lengths=(3, 1, 2, 3, 3, 2, 1))
    data = make_data(case)
    run = NativeRun(case, data, np.float64, isa)
    run.forward()
    full_dx, full_dstate0, full_grads = run.backward()
    run.forward()
    dx, dstate0, grads = run.backward(input_gradient=input_gradient, state_gradient=state_gradient)
    assert full_dx is not None and full_dstate0 is not None
    if input_gradient:
        np.testing.assert_array_equal(dx, full_dx)
    else:
        assert dx is None
    if state_gradient:
        for part, full_part in zip(dstate0, full_dstate0):
            np.testing.assert_array_equal(part, full_part)
    else:
        assert dstate0 is None
    for name, grad in grads.items():
        np.testing.assert_array_equal(grad, full_grads[name], err_msg=name)


@isas
def test_lstm_returns_the_gradient_of_c0(isa):
    case = Case("lstm", steps=2, batch=1, input_size=1, hidden_size=1)
    data = make_data(case)
    run = NativeRun(case, data, np.float64, isa)
    run.forward()
    _, (_, dc0), _ = run.backward()
    _, (_, expected), _ = reference.backward(reference.forward("lstm", data.x, data.params, state=data.state)[2],
                                             data.dy, data.dstate)
    assert scaled_error(dc0, expected, np.float64) <= 1e-10


def expected_stored(case, cache, index):
    """The reference's stored buffers of layer and direction `index`, with "reset_h" = r * h_{t-1}
    added for GRU without linear_before_reset (the reference recomputes it in backward)."""
    stored = dict(cache["stored"][index])
    if case.mode == "gru" and not case.linear_before_reset:
        h0, h = cache["state0"][0][index], stored["h"]
        reverse = index % case.directions == 1
        h_prev = np.concatenate([h[1:], h0[None]]) if reverse else np.concatenate([h0[None], h[:-1]])
        stored = {"gates": stored["gates"], "reset_h": stored["gates"][..., :case.hidden_size] * h_prev,
                  "h": stored["h"]}
    return stored


@cells
@isas
@dtypes
@pytest.mark.parametrize("num_layers, lengths, layout", [(1, None, "time_major"), (1, (5, 2, 4), "time_major"),
                                                         (2, None, "batch_first"), (2, (3, 5, 1), "time_major")])
def test_stored_activations_match_reference(mode, linear_before_reset, isa, dtype, num_layers, lengths, layout):
    """Each stored buffer by its reference name: the acts at valid steps, the states (carried
    through padded steps) at every step."""
    case = Case(mode, steps=5, batch=3, input_size=4, hidden_size=9, num_layers=num_layers, bidirectional=True,
                linear_before_reset=linear_before_reset, lengths=lengths, layout=layout)
    data = make_data(case).rounded(dtype)
    data.x[case.padded()] = 0
    run = NativeRun(case, data, dtype, isa)
    run.forward()
    stored = run.stack.stored_activations()
    cache = reference_forward(case, data)[2]
    valid = ~case.padded()
    assert len(stored) == num_layers * case.directions
    actual, expected = {}, {}
    for index, buffers in enumerate(stored):
        reference_buffers = expected_stored(case, cache, index)
        assert list(buffers) == list(reference_buffers)
        for name, buffer in buffers.items():
            assert buffer.dtype == dtype and buffer.shape == reference_buffers[name].shape, name
            steps = slice(None) if name in ("h", "c") else valid
            actual[f"{name}[{index}]"] = buffer[steps]
            expected[f"{name}[{index}]"] = reference_buffers[name][steps]
    cell = f"{mode}{'' if linear_before_reset else '_reset_first'}"
    assert_close(actual, expected, dtype, f"stored {cell} {np.dtype(dtype).name} vs reference")


@isas
def test_stored_activations_need_a_training_forward_not_yet_differentiated(isa):
    case = Case("gru", steps=2, batch=2, input_size=3, hidden_size=4)
    run = NativeRun(case, make_data(case), np.float64, isa)
    message = "stored_activations: no training-mode forward to read"
    with pytest.raises(ValueError, match=message):
        run.stack.stored_activations()
    run.forward(training=False)
    with pytest.raises(ValueError, match=message):
        run.stack.stored_activations()
    run.forward()
    assert list(run.stack.stored_activations()[0]) == ["gates", "hn", "h"]
    run.backward()   # consumes them
    with pytest.raises(ValueError, match=message):
        run.stack.stored_activations()

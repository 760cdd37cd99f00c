"""Dropout between stacked layers: the masks the kernels draw (observed through a layer built to
copy them out), kernels with dropout against the reference given those masks, gradients against
finite differences, and the layer API's seeding and eval().
"""

import numpy as np
import pytest

from support import (CELL_IDS, CELLS, ISAS, Case, Data, NativeRun, assert_close, make_data, make_layer,
                     native_results, public_state, reference_run, state_tuple)

# The masks are a function of the seed and the position (layer, time, sequence, unit) only:
# the tests observe them through one cell kind and use them for all.


def dropout_masks(case, dropout, seed, dtype=np.float64, isa="portable"):
    """The masks a training forward of `case`'s shape multiplies into the outputs of layers
    0..L-2, observed through an RNN whose layer k outputs relu(1) = 1 everywhere and whose
    layer k+1 copies its (masked) input: relu(mask * 1) = mask. One run per mask."""
    masks = []
    for layer in range(case.num_layers - 1):
        probe = Case("rnn_relu", case.steps, case.batch, input_size=1, hidden_size=case.hidden_size,
                     num_layers=layer + 2, bidirectional=case.bidirectional)
        params = make_data(probe).params
        for name in params:
            params[name][...] = 0
        hidden, directions = case.hidden_size, case.directions
        for direction, suffix in enumerate(["", "_reverse"][:directions]):
            params[f"bias_ih_l{layer}{suffix}"][...] = 1
            copy = params[f"weight_ih_l{layer + 1}{suffix}"]
            copy[:, direction * hidden:(direction + 1) * hidden] = np.eye(hidden)
        data = Data(params, np.zeros((case.steps, case.batch, 1)), None, None, None)
        y, _ = NativeRun(probe, data, dtype, isa).forward(training=True, dropout=dropout, seed=seed)
        masks.append(y)
    return masks


@pytest.mark.parametrize("dropout", [0.25, 0.5, 0.8])
def test_masks_drop_a_fraction_p_and_scale_the_rest(dropout):
    case = Case("rnn_relu", steps=6, batch=13, input_size=1, hidden_size=40, num_layers=3, bidirectional=True)
    masks = dropout_masks(case, dropout, seed=12345)
    for mask in masks:
        dropped = mask == 0
        # within 5 standard deviations of the binomial fraction
        sigma = np.sqrt(dropout * (1 - dropout) / mask.size)
        assert abs(dropped.mean() - dropout) < 5 * sigma, dropped.mean()
        np.testing.assert_array_equal(mask[~dropped], 1 / (1 - dropout))
        # no structure: time steps, sequences and the two directions draw their own
        assert not np.array_equal(dropped[0], dropped[1])
        assert not np.array_equal(dropped[:, 0], dropped[:, 1])
        assert not np.array_equal(dropped[..., :40], dropped[..., 40:])
    assert not np.array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], dropout_masks(case, dropout, seed=12346)[0])


@pytest.mark.parametrize("isa", ISAS)
def test_masks_are_the_same_for_every_variant_and_dtype(isa):
    case = Case("rnn_relu", steps=3, batch=7, input_size=1, hidden_size=9, num_layers=2, bidirectional=True)
    expected = dropout_masks(case, 0.5, seed=99)[0]
    for dtype in (np.float64, np.float32):
        mask = dropout_masks(case, 0.5, seed=99, dtype=dtype, isa=isa)[0]
        np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [
    dict(steps=4, batch=7, input_size=5, hidden_size=9, num_layers=2, bidirectional=True,
         lengths=(4, 1, 3, 4, 2, 4, 4)),
    dict(steps=3, batch=2, input_size=3, hidden_size=17, num_layers=3, initial_state=False),
], ids=["2_layers_bidirectional_lengths", "3_layers"])
def test_kernels_with_dropout_match_reference(mode, linear_before_reset, isa, dtype, shape):
    """Training forward and backward use the same masks, as the reference with those masks
    computes; inference ignores dropout."""
    case = Case(mode, linear_before_reset=linear_before_reset, dropout=0.5, seed=7, **shape)
    seed = 2**63 + 12345   # the high bits of the seed count too
    masks = dropout_masks(case, case.dropout, seed, dtype, isa)
    data = make_data(case).rounded(dtype)
    inference, training = native_results(case, data, dtype, isa, dropout_seed=seed)
    expected_inference, _ = reference_run(case, data)
    _, expected = reference_run(case, data, dropout_masks=masks)
    name = f"{mode}{'' if linear_before_reset else '_reset_first'} {np.dtype(dtype).name} dropout vs reference"
    assert_close(inference, expected_inference, dtype, name)
    assert_close(training, expected, dtype, name)
    assert np.abs(training["y"] - expected_inference["y"]).max() > 1e-3   # the masks do something


LAYER = dict(input_size=3, hidden_size=5, num_layers=3, bidirectional=True, dtype="float64")


@pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
def test_layer_dropout_is_seeded_and_off_in_eval(mode, linear_before_reset):
    x = np.random.default_rng(0).normal(size=(4, 2, 3))
    y = {}
    for name, dropout, seed in [("a", 0.5, 1), ("again", 0.5, 1), ("other_seed", 0.5, 2), ("none", 0.0, 1)]:
        layer = make_layer(mode, linear_before_reset, dropout=dropout, seed=seed, **LAYER)
        y[name] = layer(x)[0]
        y[name + " second call"] = layer(x)[0]
        y[name + " eval"] = layer.eval()(x)[0]
    np.testing.assert_array_equal(y["a"], y["again"])
    np.testing.assert_array_equal(y["a second call"], y["again second call"])
    assert not np.allclose(y["a"], y["a second call"])   # each forward draws a new mask
    assert not np.allclose(y["a"], y["none"])
    np.testing.assert_array_equal(y["a eval"], y["none"])   # same initial weights, no dropout
    np.testing.assert_array_equal(y["none"], y["none eval"])
    assert not np.allclose(y["other_seed eval"], y["none"])   # another seed, other weights


def layer_loss(layer, case, inputs, dy, dstate, mask_seed):
    """sum(y * dy) + sum(state_n * dstate) at inputs {"x", "h0", ("c0"), "params"}, with the
    dropout masks of `mask_seed`."""
    layer._parameters.values[...] = inputs["params"]
    layer._rng = np.random.default_rng(mask_seed)
    state = public_state(case, tuple(inputs[part] for part in case.state_parts))
    y, state_n = layer(inputs["x"], state)
    return np.sum(y * dy) + sum(np.sum(part * d_part) for part, d_part in zip(state_tuple(case, state_n), dstate))


@pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
def test_layer_gradients_with_dropout_match_finite_differences(mode, linear_before_reset):
    """Three layers with dropout 0.5, float64: the layer's backward against central
    differences along random directions, the masks held fixed by re-seeding the layer."""
    case = Case(mode, steps=4, batch=2, input_size=3, hidden_size=5, num_layers=3, bidirectional=True, seed=4)
    data = make_data(case)
    layer = make_layer(mode, linear_before_reset, dropout=0.5, **LAYER)
    layer.load_state_dict(data.params)
    inputs = {"x": data.x, **dict(zip(case.state_parts, data.state)), "params": layer._parameters.values.copy()}
    mask_seed = 77
    layer_loss(layer, case, inputs, data.dy, data.dstate, mask_seed)
    dx, dstate0 = layer.backward(data.dy, public_state(case, data.dstate))
    analytic = {"x": dx, **dict(zip(case.state_parts, state_tuple(case, dstate0))),
                "params": layer._parameters.grads.copy()}
    rng = np.random.default_rng(5)
    epsilon = 1e-6
    for name in inputs:
        for _ in range(3):
            direction = rng.normal(size=inputs[name].shape)
            losses = [layer_loss(layer, case, {**inputs, name: inputs[name] + sign * epsilon * direction},
                                 data.dy, data.dstate, mask_seed) for sign in (1, -1)]
            numerical = (losses[0] - losses[1]) / (2 * epsilon)
            actual = np.sum(analytic[name] * direction)
            # central differences: error ~ epsilon^2 + 1e-16 |loss| / epsilon ~ 1e-9 here
            assert abs(actual - numerical) <= 1e-6 * (1 + abs(numerical)), (name, actual, numerical)

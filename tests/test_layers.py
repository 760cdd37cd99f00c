"""The small layers of fastrnn.layers: forward against the formula, backward against finite
differences (float64), modes, seeds and argument errors."""

import re
import tracemalloc

import numpy as np
import pytest

import fastrnn
from fastrnn import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from finite_differences import check_gradient
from support import assert_close


def backward_check(layer, x, forward=None, **forward_args):
    """Finite-difference check of layer.backward for L = sum(y * dy): input (when float) and
    every parameter tensor."""
    forward = forward or (lambda: layer.forward(x, **forward_args))
    rng = np.random.default_rng(0)
    y = forward()
    dy = rng.normal(size=y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)

    def loss():
        return float(np.sum(forward() * dy))

    if np.issubdtype(x.dtype, np.floating):
        check_gradient(loss, x, dx, rng)
    for name, grad in layer.grads.items():
        check_gradient(loss, layer.params[name], grad.copy(), rng)


def test_dense_is_x_weight_t_plus_bias_over_the_last_axis():
    layer = Dense(3, 2, dtype="float64", seed=0)
    x = np.random.default_rng(1).normal(size=(4, 5, 3))
    expected = np.einsum("ntf,of->nto", x, layer.params["weight"]) + layer.params["bias"]
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    assert layer.params["weight"].shape == (2, 3) and layer.params["bias"].shape == (2,)
    bound = 1 / np.sqrt(3)
    assert np.all(np.abs(layer._parameters.values) <= bound)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3)])
def test_dense_backward(shape, bias):
    layer = Dense(3, 2, bias=bias, dtype="float64", seed=0)
    backward_check(layer, np.random.default_rng(2).normal(size=shape))


def test_dense_backward_can_skip_the_input_gradient():
    layer = Dense(3, 2, dtype="float64", seed=0)
    x, dy = np.random.default_rng(3).normal(size=(2, 4, 3)), np.ones((2, 4, 2))
    layer(x)
    assert layer.backward(dy).shape == x.shape
    full = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.zero_grad()
    layer(x)
    assert layer.backward(dy, input_grad=False) is None
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, full[name], err_msg=name)


def test_dense_default_is_float32_and_converts_its_input():
    layer = Dense(3, 2)
    y = layer(np.ones((2, 3), dtype=np.float64))
    assert layer.params["weight"].dtype == np.float32 and y.dtype == np.float32


def test_embedding_looks_up_rows_and_accumulates_repeated_ids():
    layer = Embedding(4, 3, dtype="float64", seed=0)
    ids = np.array([[0, 2, 2], [3, 0, 2]])
    np.testing.assert_array_equal(layer(ids), layer.params["weight"][ids])
    dy = np.ones((2, 3, 3))
    layer.zero_grad()
    assert layer.backward(dy) is None
    np.testing.assert_array_equal(layer.grads["weight"][:, 0], [2, 0, 3, 1])   # counts of each id


def test_embedding_backward():
    layer = Embedding(5, 3, dtype="float64", seed=0)
    backward_check(layer, np.array([[1, 4, 1], [0, 0, 3]]))


def test_one_hot():
    layer = OneHot(4, dtype="float64")
    np.testing.assert_array_equal(layer(np.array([[1, 3]])), [[[0, 1, 0, 0], [0, 0, 0, 1]]])
    assert layer.backward(np.ones((1, 2, 4))) is None and not layer.params


@pytest.mark.parametrize("layer_class", [ReLU, Tanh])
def test_activations(layer_class):
    layer = layer_class()
    x = np.random.default_rng(3).normal(size=(3, 4, 2))
    expected = np.maximum(x, 0) if layer_class is ReLU else np.tanh(x)
    np.testing.assert_array_equal(layer(x), expected)
    backward_check(layer, x)


@pytest.mark.parametrize("make", [ReLU, lambda: Dropout(0.0)])
def test_backward_checks_dy_after_a_forward_of_a_number(make):
    # ReLU kept a bool for a number, whose missing .shape raised AttributeError; Dropout(0)
    # returned any dy unchecked.
    layer = make()
    layer(3.0)
    with pytest.raises(ValueError, match=re.escape("dy: expected the shape of the forward's output (), got (2,)")):
        layer.backward([1.0, 2.0])


@pytest.mark.parametrize("layer_class", [ReLU, Tanh])
def test_activations_refuse_non_numbers_naming_x(layer_class):
    for x, dtype in (("a", "<U1"), (None, "object")):
        with pytest.raises(TypeError, match=f"x: expected real numbers, got dtype {dtype}"):
            layer_class()(x)


def test_dropout_scales_kept_elements_and_is_the_identity_in_eval_mode():
    layer = Dropout(0.25, seed=0)
    x = np.ones((200, 50))
    y = layer(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs(np.mean(y == 0) - 0.25) < 0.02
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)   # same mask
    assert layer.eval()(x) is x


def test_dropout_masks_are_reproducible_from_the_seed():
    x = np.ones((10, 10), dtype=np.float32)
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    for _ in range(3):
        np.testing.assert_array_equal(first(x), second(x))
    assert first(x).dtype == np.float32


def test_last_step_selects_each_sequences_last_valid_step():
    layer = LastStep()
    x = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3)
    np.testing.assert_array_equal(layer(x), x[:, -1])
    lengths = np.array([2, 4])
    np.testing.assert_array_equal(layer(x, lengths), [x[0, 1], x[1, 3]])
    backward_check(layer, x.copy(), lengths=lengths)


def test_backward_needs_a_training_mode_forward():
    layer = Dense(2, 2)
    with pytest.raises(ValueError, match="no training-mode forward"):
        layer.backward(np.ones((1, 2)))
    layer.eval()(np.ones((1, 2)))
    with pytest.raises(ValueError, match="no training-mode forward"):
        layer.backward(np.ones((1, 2)))


@pytest.mark.parametrize("make, x, error, match", [
    (lambda: OneHot(3), np.array([[0.0, 1.0]]), TypeError, r"x: expected integer ids in \[0, 3\), got dtype float64"),
    (lambda: OneHot(3), np.array([[0, 3]]), ValueError, r"x: expected ids in \[0, 3\), got values from 0 to 3"),
    (lambda: Embedding(3, 2), np.array([[-1, 2]]), ValueError, r"x: expected ids in \[0, 3\)"),
    (lambda: Dense(3, 2), np.ones((2, 4)), ValueError, r"x: expected 3 features in the last axis, got shape \(2, 4\)"),
    (lambda: Dense(3, 2), np.array([["a", "b", "c"]]), TypeError, "x: expected real numbers, got dtype <U1"),
    (lambda: LastStep(), np.ones((2, 3)), ValueError, r"LastStep expects \(batch, steps, features\)"),
])
def test_input_errors_name_the_argument(make, x, error, match):
    with pytest.raises(error, match=match):
        make()(x)


@pytest.mark.parametrize("make, error, match", [
    (lambda: Dense(0, 2), ValueError, "in_features: expected a positive integer, got 0"),
    (lambda: Dense(2, 2.5), TypeError, "out_features: expected an integer, got float"),
    (lambda: Embedding(3, 2, dtype="int32"), ValueError, "dtype: expected 'float32' or 'float64', got int32"),
    (lambda: Dropout(1.0), ValueError, r"p: expected a probability in \[0, 1\), got 1.0"),
])
def test_constructor_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("make, described", [
    (lambda: Dense(10**6, 10**6), "Dense(in_features=1000000, out_features=1000000, bias=True, dtype='float32')"),
    (lambda: Embedding(10**6, 10**6, dtype="float64"),
     "Embedding(num_embeddings=1000000, embedding_dim=1000000, dtype='float64')"),
])
def test_parameters_that_cannot_fit_in_memory_raise_before_allocating(make, described):
    # Worded as the recurrent layers' check; these sizes once went straight to the allocation.
    with pytest.raises(ValueError, match=re.escape(described) + r": its float(32|64) parameters and their gradients "
                                         r"would take \d+\.\d GiB, more than this machine's \d+\.\d GiB of memory"):
        make()


@pytest.mark.parametrize("lengths, error, match", [
    (np.array([0, 1]), ValueError, r"lengths: expected values in \[1, 3\] \(the steps of x\), got values from 0 to 1"),
    (np.array([1, 5]), ValueError, r"lengths: expected values in \[1, 3\] \(the steps of x\), got values from 1 to 5"),
    (np.array([1.0, 2.0]), TypeError, "lengths: expected integers .*got dtype float64"),
    (np.array([1, 2, 3]), ValueError, r"lengths: expected shape \(2,\) \(one integer per sequence\), got shape \(3,\)"),
])
def test_last_step_checks_lengths(lengths, error, match):
    with pytest.raises(error, match=match):
        LastStep()(np.arange(24.0).reshape(2, 3, 4), lengths=lengths)


def test_inputs_whose_output_cannot_fit_are_refused_before_they_are_scanned(run_apart):
    # The ids (or lengths) were scanned first: minutes over these views of 2**40 values.
    printed = run_apart("""
import numpy as np
from fastrnn import Embedding, LastStep, OneHot
ids = np.broadcast_to(np.int64(0), (2**20, 2**20))
x, lengths = np.broadcast_to(np.float32(0), (2**40, 3, 4)), np.broadcast_to(np.int64(1), (2**40,))
for call in (lambda: Embedding(3, 2)(ids), lambda: OneHot(3)(ids), lambda: LastStep()(x, lengths)):
    try:
        call()
    except ValueError as error:
        print(error)
""")
    expected = [r"x: an output of shape \(1048576, 1048576, 2\) \(for x of shape \(1048576, 1048576\)\)",
                r"x: an output of shape \(1048576, 1048576, 3\) \(for x of shape \(1048576, 1048576\)\)",
                r"x: an output of shape \(1099511627776, 4\) \(for x of shape \(1099511627776, 3, 4\)\)"]
    lines = printed.splitlines()
    assert len(lines) == len(expected), printed
    for line, start in zip(lines, expected):
        assert re.fullmatch(start + r" would take \d+\.\d GiB, more than this machine's \d+\.\d GiB of memory", line)


@pytest.mark.parametrize("lengths", [None, np.array([1, 1])])
def test_last_step_needs_at_least_one_step(lengths):
    with pytest.raises(ValueError, match=r"x: LastStep expects .*at least one step, got shape \(2, 0, 4\)"):
        LastStep()(np.zeros((2, 0, 4)), lengths=lengths)


@pytest.mark.parametrize("make, x, dy_shape", [
    (lambda: Dense(2, 3), np.ones((4, 5, 2), np.float32), (4, 5, 3)),
    (lambda: Embedding(3, 2), np.array([[0, 1, 2]]), (1, 3, 2)),
    (ReLU, np.ones((4, 3)), (4, 3)),
    (Tanh, np.ones((4, 3)), (4, 3)),
    (lambda: Dropout(0.5, seed=0), np.ones((4, 3)), (4, 3)),
    (LastStep, np.ones((2, 3, 4)), (2, 4)),
])
def test_backward_checks_dy_against_the_forward_output(make, x, dy_shape):
    layer = make()
    assert layer(x).shape == dy_shape
    expected = re.escape(f"dy: expected the shape of the forward's output {dy_shape}, got ")
    for wrong in (dy_shape[::-1], dy_shape[:-1] + (dy_shape[-1] + 1,), dy_shape[-1:]):
        layer(x)
        with pytest.raises(ValueError, match=expected + re.escape(str(wrong))):
            layer.backward(np.ones(wrong))
    layer(x)
    with pytest.raises(TypeError, match="dy: expected real numbers, got dtype <U1"):
        layer.backward(np.full(dy_shape, "a"))


def test_dense_backward_accepts_dy_as_a_list():
    layer = Dense(2, 3, dtype="float64", seed=0)
    x, dy = np.ones((4, 2)), np.arange(12.0).reshape(4, 3)
    layer(x)
    expected = layer.backward(dy)
    layer(x)
    np.testing.assert_array_equal(layer.backward(dy.tolist()), expected)


def gradients_after_writing_into_the_input(layer, x, write):
    """(dx, parameter gradients) of one forward/backward, with write(x, y) run between them."""
    layer.zero_grad()
    y = layer(x)
    write(x, y)
    dx = layer.backward(np.linspace(-1, 1, y.size).reshape(y.shape))
    return dx, {name: grad.copy() for name, grad in layer.grads.items()}


@pytest.mark.parametrize("make, x, write", [
    (lambda: Dense(3, 2, dtype="float64", seed=0), np.linspace(-1, 1, 12).reshape(2, 2, 3),
     lambda x, y: x.fill(5)),
    (lambda: Dense(3, 2, dtype="float32", seed=0), np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)[::2],
     lambda x, y: x.fill(5)),
    (lambda: Embedding(4, 2, dtype="float64", seed=0), np.array([[0, 1, 2]]), lambda x, y: x.fill(3)),
    (Tanh, np.linspace(-1, 1, 6).reshape(2, 3), lambda x, y: y.fill(5)),
])
def test_writing_into_inputs_or_outputs_after_forward_leaves_the_gradients_alone(make, x, write):
    layer = make()
    untouched = gradients_after_writing_into_the_input(layer, x.copy(), lambda x, y: None)
    written = gradients_after_writing_into_the_input(layer, x, write)
    if untouched[0] is None:
        assert written[0] is None
    else:
        np.testing.assert_array_equal(written[0], untouched[0])
    assert untouched[1].keys() == written[1].keys()
    for name, grad in untouched[1].items():
        np.testing.assert_array_equal(written[1][name], grad, err_msg=name)


def test_one_hot_memory_is_in_proportion_to_the_output():
    ids = np.array([[0, 2999], [5, 5]])
    tracemalloc.start()
    try:
        layer = OneHot(3000, dtype="float64")
        y = layer(ids)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * y.nbytes   # an identity matrix would be 72 MB
    np.testing.assert_array_equal(y, np.eye(3000)[ids])
    assert y.dtype == np.float64 and OneHot(5)(ids % 5).dtype == np.float32


@pytest.mark.parametrize("x", [np.ones((20, 30), np.float16), np.ones((20, 30), int), np.ones((20, 30)).tolist()])
def test_dropout_converts_other_real_inputs_to_float64(x):
    y = Dropout(0.5, seed=0)(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, Dropout(0.5, seed=0)(np.ones((20, 30))))
    assert Dropout(0.5).eval()(x).dtype == np.float64


def test_dropout_rejects_non_numbers():
    with pytest.raises(TypeError, match="x: expected real numbers, got dtype <U1"):
        Dropout(0.5)(np.array(["a", "b"]))


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]], ids=["full", "lengths"])
def test_laststep_on_a_bidirectional_output_is_torch_h_n(mode, num_layers, lengths):
    """LastStep after a bidirectional layer: the forward direction at the last valid step, the
    reverse direction at step 0, i.e. PyTorch's h_n of the top layer (both directions); the
    gradients of a loss on it flow back as through torch's h_n."""
    torch = pytest.importorskip("torch")
    torch_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    ours_class = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU}.get(mode, fastrnn.RNN)
    options = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
    sizes = dict(input_size=2, hidden_size=3, num_layers=num_layers, batch_first=True, bidirectional=True, **options)
    torch.manual_seed(0)
    module = torch_class(**sizes, dtype=torch.float64)
    layer = ours_class(**sizes, dtype="float64")
    layer.load_state_dict({name: value.numpy() for name, value in module.state_dict().items()})
    rng = np.random.default_rng(0)
    x, weights = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 6))

    torch_x = torch.tensor(x, requires_grad=True)
    inputs = torch_x if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        torch_x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    _, state = module(inputs)
    h_n = (state[0] if mode == "lstm" else state)[-2:]             # the top layer's two directions
    expected = torch.cat([h_n[0], h_n[1]], dim=1)
    (expected * torch.from_numpy(weights)).sum().backward()

    last_step = LastStep(bidirectional=True)
    y, _ = layer(x, lengths=lengths)
    output = last_step(y, lengths)
    dx, _ = layer.backward(last_step.backward(weights))
    actual = {"output": output, "dx": dx, **layer.grads}
    wanted = {"output": expected.detach().numpy(), "dx": torch_x.grad.numpy(),
              **{name: parameter.grad.numpy() for name, parameter in module.named_parameters()}}
    assert_close({name: actual[name] for name in wanted}, wanted, "float64",
                 f"LastStep bidirectional {mode} vs torch h_n")


def test_laststep_follows_the_layers_before_it_in_a_sequential():
    bidirectional = fastrnn.LSTM(2, 3, batch_first=True, bidirectional=True)
    assert fastrnn.Sequential([bidirectional, Tanh(), LastStep()]).layers[2].bidirectional is True
    assert fastrnn.Sequential([fastrnn.LSTM(2, 3, batch_first=True), LastStep()]).layers[1].bidirectional is False
    after_dense = fastrnn.Sequential([fastrnn.LSTM(2, 3, batch_first=True, bidirectional=True), Dense(6, 6),
                                      LastStep()])
    assert after_dense.layers[2].bidirectional is False            # a Dense mixes the directions
    plain = fastrnn.Sequential([fastrnn.GRU(2, 3, batch_first=True, bidirectional=True), LastStep(bidirectional=False)])
    assert plain.layers[1].bidirectional is False                 # an explicit choice stays
    y = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(LastStep()(y), y[:, 2])          # alone: the plain last step
    np.testing.assert_array_equal(LastStep(bidirectional=True)(y), np.concatenate([y[:, 2, :2], y[:, 0, 2:]], axis=1))
    with pytest.raises(ValueError, match=r"LastStep\(bidirectional=True\) expects an even number of features"):
        LastStep(bidirectional=True)(np.ones((2, 3, 5)))
    with pytest.raises(TypeError, match="bidirectional: expected True, False or None, got str"):
        LastStep(bidirectional="yes")

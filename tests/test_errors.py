"""Bad arguments to the layer API: each raises ValueError or TypeError whose message names the
argument and says what was expected and what came; a rejected call changes nothing. Inputs of
another float dtype or memory layout are converted and give the contiguous input's results; an
input whose converted copy cannot be allocated raises MemoryError naming it. Sizes too large
for any machine raise ValueError before anything is allocated.
"""

import re

import numpy as np
import pytest

import fastrnn
from support import HUGE, huge_view

# The layers below: input 3, hidden 4, 2 layers. I is the input size, the letter of the shapes
# (T, B, I) in the messages, however like an l it looks to pycodestyle.
T, B, I, H, L = 5, 2, 3, 4, 2   # noqa: E741


def lstm():
    return fastrnn.LSTM(I, H, num_layers=L, seed=0)


def gru():
    return fastrnn.GRU(I, H, num_layers=L, seed=0)


X = np.zeros((T, B, I), np.float32)
STATE = np.zeros((L, B, H), np.float32)
DY = np.zeros((T, B, H), np.float32)


def forward(layer_factory, x=X, state=None, lengths=None):
    return lambda: layer_factory()(x, state, lengths=lengths)


def backward(layer_factory, dy=DY, dstate=None, prepare=lambda layer: layer(X)):
    def call():
        layer = layer_factory()
        prepare(layer)
        layer.backward(dy, dstate)
    return call


def load(state_change):
    def call():
        layer = lstm()
        state = layer.state_dict()
        state_change(state)
        layer.load_state_dict(state)
    return call


def forward_then_eval(layer):
    layer(X)
    layer.eval()


def eval_forward(layer):
    layer.eval()
    layer(X)


def two_backwards(layer):
    layer(X)
    layer.backward(DY)


# (call, exception, words the message must contain, in order)
BAD_CALLS = {
    "x_1d": (forward(lstm, np.zeros(3, np.float32)), ValueError, ["x", "3-D", "(3,)"]),
    "x_4d": (forward(lstm, np.zeros((1, T, B, I), np.float32)), ValueError, ["x", "3-D", "(1, 5, 2, 3)"]),
    "x_features": (forward(lstm, np.zeros((T, B, I + 1), np.float32)), ValueError, ["x", "input_size=3", "(5, 2, 4)"]),
    "x_no_steps": (forward(lstm, np.zeros((0, B, I), np.float32)), ValueError, ["x", "(0, 2, 3)"]),
    "x_list": (forward(lstm, X.tolist()), TypeError, ["x", "ndarray", "list"]),
    "x_int": (forward(lstm, X.astype(np.int64)), TypeError, ["x", "floating", "int64"]),
    "x_complex": (forward(lstm, X.astype(np.complex64)), TypeError, ["x", "floating", "complex64"]),
    "x_bool": (forward(lstm, X.astype(bool)), TypeError, ["x", "floating", "bool"]),
    "state_shape": (forward(gru, state=np.zeros((L, B + 1, H))), ValueError, ["state", "(2, 2, 4)", "(2, 3, 4)"]),
    "state_unbatched_shape": (forward(gru, X[:, 0], np.zeros((L, B, H))), ValueError, ["state", "(2, 4)", "(2, 2, 4)"]),
    "state_c_shape": (forward(lstm, state=(STATE, STATE[:1])), ValueError, ["state", "(c)", "(2, 2, 4)", "(1, 2, 4)"]),
    "state_tuple_for_gru": (forward(gru, state=(STATE,)), TypeError, ["state", "array", "(2, batch, 4)", "tuple"]),
    "state_array_for_lstm": (forward(lstm, state=STATE), TypeError, ["state", "tuple (h, c)", "ndarray"]),
    "state_three_parts": (forward(lstm, state=(STATE,) * 3), ValueError, ["state", "2 arrays", "3"]),
    "state_int": (forward(gru, state=STATE.astype(np.int32)), TypeError, ["state", "floating", "int32"]),
    "lengths_zero": (forward(lstm, lengths=[0, T]), ValueError, ["lengths", "[1, 5]", "0"]),
    "lengths_too_long": (forward(lstm, lengths=[T, T + 1]), ValueError, ["lengths", "[1, 5]", "6"]),
    "lengths_negative_unsigned": (forward(lstm, lengths=np.array([2**64 - 1, 1], np.uint64)), ValueError,
                                  ["lengths", "[1, 5]"]),
    "lengths_shape": (forward(lstm, lengths=[T]), ValueError, ["lengths", "(2,)", "(1,)"]),
    "lengths_2d": (forward(lstm, lengths=[[T, T]]), ValueError, ["lengths", "(2,)", "(1, 2)"]),
    "lengths_float": (forward(lstm, lengths=[5.0, 5.0]), TypeError, ["lengths", "integer", "float64"]),
    "lengths_bool": (forward(lstm, lengths=[True, True]), TypeError, ["lengths", "integer", "bool"]),
    "dy_shape": (backward(lstm, DY[:, :1]), ValueError, ["dy", "(5, 2, 4)", "(5, 1, 4)"]),
    "dy_int": (backward(lstm, DY.astype(np.int16)), TypeError, ["dy", "floating", "int16"]),
    "dstate_shape": (backward(gru, dstate=STATE[:1]), ValueError, ["dstate", "(2, 2, 4)", "(1, 2, 4)"]),
    "dstate_array_for_lstm": (backward(lstm, dstate=STATE), TypeError, ["dstate", "tuple (h, c)", "ndarray"]),
    "backward_before_forward": (backward(lstm, prepare=lambda layer: None), ValueError, ["backward", "forward"]),
    "backward_after_eval": (backward(lstm, prepare=forward_then_eval), ValueError,
                            ["backward", "training-mode forward"]),
    "backward_of_eval_forward": (backward(lstm, prepare=eval_forward), ValueError, ["backward", "training-mode"]),
    "second_backward": (backward(lstm, prepare=two_backwards), ValueError, ["backward", "one backward"]),
    "state_dict_missing": (load(lambda state: state.pop("bias_hh_l1")), ValueError, ["missing", "bias_hh_l1"]),
    "state_dict_extra": (load(lambda state: state.update(weight_ih_l2=np.zeros((16, 4)))), ValueError,
                         ["unexpected", "weight_ih_l2"]),
    "state_dict_shape": (load(lambda state: state.update(weight_hh_l0=np.zeros((4, 16)))), ValueError,
                         ["weight_hh_l0", "(16, 4)", "(4, 16)"]),
    "state_dict_complex": (load(lambda state: state.update(bias_ih_l0=np.zeros(16, complex))), TypeError,
                           ["bias_ih_l0", "complex128"]),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_call_raises_a_clear_error(name):
    call, exception, words = BAD_CALLS[name]
    with pytest.raises(exception) as raised:
        call()
    pattern = ".*".join(re.escape(word) for word in words)
    assert re.search(pattern, str(raised.value)), str(raised.value)


BAD_CONSTRUCTIONS = [
    ("input_size", dict(input_size=0), ValueError, "0"),
    ("hidden_size", dict(hidden_size=-1), ValueError, "-1"),
    ("num_layers", dict(num_layers=0), ValueError, "0"),
    ("input_size", dict(input_size=3.0), TypeError, "float"),
    ("hidden_size", dict(hidden_size="4"), TypeError, "str"),
    ("num_layers", dict(num_layers=1.5), TypeError, "float"),
    ("input_size", dict(input_size=True), TypeError, "bool"),
    ("dropout", dict(dropout=1.0), ValueError, "1.0"),
    ("dropout", dict(dropout=-0.1), ValueError, "-0.1"),
    ("dropout", dict(dropout=float("nan")), ValueError, "nan"),
    ("dtype", dict(dtype="float16"), ValueError, "float16"),
    ("dtype", dict(dtype="int32"), ValueError, "int32"),
    ("dtype", dict(dtype="banana"), TypeError, "banana"),
]


@pytest.mark.parametrize("layer_class", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
@pytest.mark.parametrize("argument, change, exception, received", BAD_CONSTRUCTIONS)
def test_bad_constructor_argument_raises(layer_class, argument, change, exception, received):
    with pytest.raises(exception, match=f"{argument}: expected .*{re.escape(received)}"):
        layer_class(**{"input_size": I, "hidden_size": H, **change})


def construct(kind, through, **arguments):
    """A layer of kind RNN, LSTM or GRU built through the public class or fastrnn._core."""
    if through == "public":
        return getattr(fastrnn, kind)(**arguments)
    options = {"RNN": {"nonlinearity": "tanh"}, "LSTM": {}, "GRU": {"linear_before_reset": True}}[kind]
    return getattr(fastrnn._core, f"{kind}_float32")(arguments.pop("input_size"), arguments.pop("hidden_size"),
                                                      arguments.pop("num_layers", 1), bias=True,
                                                      bidirectional=arguments.pop("bidirectional", False), **options)


@pytest.mark.parametrize("through", ["public", "_core"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("sizes, message", [
    (dict(num_layers=10**9), "would take .* GiB, more than this machine's"),   # once a quadratic hang
    (dict(hidden_size=10**6), "would take .* GiB, more than this machine's"),
    (dict(input_size=2**61, hidden_size=8), "more than fastrnn can hold"),       # once a wrapped-around count
    (dict(hidden_size=2**31), "more than fastrnn can hold"),
    (dict(num_layers=2**62), "more than fastrnn can hold"),
    # directions * hidden_size overflowed int64 in the estimate, which came out negative
    (dict(hidden_size=2**62, num_layers=3, bidirectional=True), "more than fastrnn can hold"),
])
def test_sizes_too_large_raise_before_allocating(kind, through, sizes, message):
    arguments = {"input_size": I, "hidden_size": H, **sizes}
    described = ", ".join(f"{name}={arguments[name]}" for name in ("input_size", "hidden_size"))
    with pytest.raises(ValueError, match=f"{kind}\\({described}.*: .*{message}"):
        construct(kind, through, **arguments)


@pytest.mark.parametrize("through", ["public", "_core"])
@pytest.mark.parametrize("argument", ["input_size", "hidden_size", "num_layers"])
def test_sizes_beyond_int64_name_the_argument(through, argument):
    arguments = {"input_size": I, "hidden_size": H, argument: 2**63}
    with pytest.raises(ValueError, match=f"^{argument}: 9223372036854775808 is more than fastrnn can hold$"):
        construct("LSTM", through, **arguments)


def forward_then_backward(dy=DY, dstate=None):
    def call(layer):
        layer(X)
        layer.backward(dy, dstate)
    return call


# Arguments the binding must copy to convert (broadcast views), whose copy cannot be allocated.
UNCONVERTIBLE = {
    "x": lambda layer: layer(huge_view(np.float32, (HUGE, B, I))),
    "state[0] (h)": lambda layer: layer(X, (huge_view(np.float64, (L, HUGE, H)), STATE)),
    "state[1] (c)": lambda layer: layer(X, (STATE, huge_view(np.float32, (L, HUGE, H)))),
    # The Python check refuses its shape first; the native one must still convert it safely.
    "lengths": lambda layer: layer._native.forward(layer._parameters.values, X, None, huge_view(np.int32, (HUGE,)),
                                                   True, False, 0.0, 0),
    "dy": forward_then_backward(huge_view(np.float32, (T, HUGE, H))),
    "dstate[0] (h)": forward_then_backward(dstate=(huge_view(np.float32, (L, HUGE, H)), STATE)),
    "dstate[1] (c)": forward_then_backward(dstate=(STATE, huge_view(np.float64, (L, HUGE, H)))),
}


@pytest.mark.parametrize("name", list(UNCONVERTIBLE))
def test_a_copy_that_cannot_be_allocated_raises_memory_error_naming_the_argument(name):
    # The conversion's MemoryError, the argument named in front of NumPy's message (it used to
    # be dropped, and the binding used the null array it left: a segfault).
    with pytest.raises(MemoryError, match=f"^{re.escape(name)}: Unable to allocate .* TiB"):
        UNCONVERTIBLE[name](lstm())


@pytest.fixture
def sparse_input(tmp_path):
    """A float32 input of the given shape mapped from a sparse file: it takes neither disk space
    nor memory until read, so its shape can be far larger than the machine."""
    def make(shape):
        path = tmp_path / "x.float32"
        with open(path, "wb") as file:
            file.truncate(int(np.prod(shape)) * 4)
        return np.memmap(path, np.float32, "r", shape=shape)
    return make


@pytest.mark.parametrize("layer_factory, message", [
    (lambda: fastrnn.LSTM(1, 64, bidirectional=True),
     r"about .* values of outputs and workspaces for LSTM\(input_size=1, hidden_size=64, num_layers=1, "
     r"bidirectional=True\), more than fastrnn can hold"),
    (lambda: fastrnn.LSTM(1, 4), r"this call's outputs and workspaces would take .* GiB, more than this machine's"),
])
def test_a_call_too_large_raises_before_allocating(sparse_input, layer_factory, message):
    # 2**40 rows of one feature: a valid input of 4 TiB that no call can serve. It is refused
    # before anything is allocated: for the first layer, for more values than the bound that keeps
    # the kernels' size arithmetic from overflowing; for the second, for more bytes than any machine has.
    x = sparse_input((2**20, 2**20, 1))
    with pytest.raises(ValueError, match=r"^x: shape \(1048576, 1048576, 1\): " + message):
        layer_factory()(x)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", None, "Tanh"])
def test_bad_nonlinearity_raises(nonlinearity):
    with pytest.raises(ValueError, match=f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}"):
        fastrnn.RNN(I, H, nonlinearity=nonlinearity)


def test_rejected_calls_change_nothing():
    """A forward or backward that raises leaves the last training forward to differentiate, and
    a load_state_dict that raises loads nothing."""
    rng = np.random.default_rng(0)
    x, dy, state = rng.normal(size=X.shape), rng.normal(size=DY.shape), rng.normal(size=STATE.shape)
    reference = lstm()
    reference(x, (state, state))
    expected = reference.backward(dy)
    layer = lstm()
    layer(x, (state, state))
    for bad in (lambda: layer(x, state), lambda: layer(x, lengths=[0, 1]), lambda: layer.backward(dy[:1]),
                lambda: layer.load_state_dict({**layer.state_dict(), "weight_hh_l0": np.zeros(3)})):
        with pytest.raises((TypeError, ValueError)):
            bad()
    dx, (dh0, _) = layer.backward(dy)
    np.testing.assert_array_equal(dx, expected[0])
    np.testing.assert_array_equal(dh0, expected[1][0])
    for name, grad in reference.grads.items():
        np.testing.assert_array_equal(layer.grads[name], grad)


def test_read_only_input_is_accepted():
    x = np.random.default_rng(0).normal(size=X.shape).astype(np.float32)
    expected, _ = lstm()(x)
    x.flags.writeable = False
    layer = lstm()
    np.testing.assert_array_equal(layer(x)[0], expected)
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0], expected)


@pytest.mark.parametrize("batch_first", [False, True])
def test_changing_the_inputs_after_forward_does_not_change_backward(batch_first):
    """Backward differentiates the forward that ran: it keeps its own copies of x and lengths."""
    rng = np.random.default_rng(2)
    x, dy = rng.normal(size=(T, B, I)).astype(np.float32), rng.normal(size=(T, B, H)).astype(np.float32)
    if batch_first:
        x, dy = x.swapaxes(0, 1).copy(), dy.swapaxes(0, 1).copy()

    def gradients(change_inputs):
        layer = fastrnn.LSTM(I, H, num_layers=L, batch_first=batch_first, seed=0)
        given_x, lengths = x.copy(), np.array([T, 2])
        layer(given_x, lengths=lengths)
        if change_inputs:
            given_x[...] = 7
            lengths[:] = [2, T]
        dx, _ = layer.backward(dy)
        return [dx, *(grad.copy() for grad in layer.grads.values())]

    for changed, unchanged in zip(gradients(True), gradients(False)):
        np.testing.assert_array_equal(changed, unchanged)


@pytest.mark.parametrize("value, exception, words", [
    (np.zeros(16, complex), TypeError, ["bias_ih_l0", "real numbers", "complex128"]),
    (np.array([None] * 16), TypeError, ["bias_ih_l0", "real numbers", "object"]),
    ("zeros", TypeError, ["bias_ih_l0", "real numbers", "<U5"]),
    (np.full(16, 1e300), ValueError, ["bias_ih_l0", "1e+300", "too large for float32"]),
])
def test_assigning_a_parameter_checks_what_load_state_dict_checks(value, exception, words):
    # params[name] = value used to take complex (with a ComplexWarning) and object arrays, and
    # called a string a shape () mismatch.
    pattern = ".*".join(re.escape(word) for word in words)
    layer = lstm()
    before = layer.state_dict()
    with pytest.raises(exception, match=pattern):
        layer.params["bias_ih_l0"] = value
    with pytest.raises(exception, match=pattern):
        layer.load_state_dict({**layer.state_dict(), "bias_ih_l0": value})
    np.testing.assert_array_equal(layer.params["bias_ih_l0"], before["bias_ih_l0"])


def results(layer, x, state, dy, dstate, lengths):
    """What an LSTM's forward and backward return, as one flat list of arrays."""
    layer.zero_grad()
    y, state_n = layer(x, state, lengths=lengths)
    dx, (dh0, dc0) = layer.backward(dy, dstate)
    return [y, *state_n, dx, dh0, dc0, layer.parameter_buffers()[0][1].copy()]


def with_layout(array, layout):
    """The same values as a non-contiguous view (every other element of a bigger array, or a
    transpose of a transposed copy) or in another dtype."""
    if layout == "strided":
        bigger = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
        bigger[..., ::2] = array
        return bigger[..., ::2]
    if layout == "fortran":
        return np.asfortranarray(array)
    return array.astype(layout)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["strided", "fortran", "float16", "float64", "float32", "longdouble"])
def test_other_layouts_and_dtypes_are_converted(dtype, layout):
    rng = np.random.default_rng(1)
    # values a float16 holds exactly, so every dtype carries the same numbers
    x, dy = (rng.integers(-64, 64, shape) / 64 for shape in ((T, B, I), (T, B, 2 * H)))
    state, dstate = ([rng.integers(-64, 64, (2 * L, B, H)) / 64 for _ in range(2)] for _ in range(2))
    lengths = np.array([T, 2])
    layer = fastrnn.LSTM(I, H, num_layers=L, bidirectional=True, dtype=dtype, seed=0)
    contiguous = results(layer, x.astype(dtype), tuple(part.astype(dtype) for part in state), dy.astype(dtype),
                         tuple(part.astype(dtype) for part in dstate), lengths)
    converted = results(layer, with_layout(x, layout), tuple(with_layout(part, layout) for part in state),
                        with_layout(dy, layout), tuple(with_layout(part, layout) for part in dstate),
                        np.array([T, 0, 2, 0], np.int32)[::2])
    for actual, expected in zip(converted, contiguous):
        assert actual.dtype == dtype
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("lengths", [[0, T], [T, T + 1], [T], [[T, T]], [5.0, 5.0]], ids=str)
def test_the_native_lengths_check_fails_with_the_python_checks_message(lengths):
    # Users meet base.sequence_lengths first; the native check, which keeps the kernels safe for
    # any caller, must say the same.
    layer = lstm()
    with pytest.raises((TypeError, ValueError)) as python_error:
        fastrnn.base.sequence_lengths(np.array(lengths), B, T)
    with pytest.raises(type(python_error.value)) as native_error:
        layer._native.forward(layer._parameters.values, X, None, np.array(lengths), True, False, 0.0, 0)
    assert str(native_error.value) == str(python_error.value)

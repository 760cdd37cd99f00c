"""Sequential: whole-model gradients against finite differences (hypothesis picks the
architecture), training (hihello, fit's history and validation, reproducibility, NaN stop),
stateful truncated BPTT, generation and the errors users meet first."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn
from fastrnn import GRU, LSTM, RNN, Dense, Dropout, Embedding, LastStep, OneHot, Sequential, Tanh, _core, losses, optim
from fastrnn.data import Vocabulary, sequence_batches
from fastrnn.generation import sample
from finite_differences import check_gradient
from support import HUGE, huge_view

RECURRENT = {
    "rnn_tanh": lambda *args, **options: RNN(*args, nonlinearity="tanh", **options),
    "rnn_relu": lambda *args, **options: RNN(*args, nonlinearity="relu", **options),
    "lstm": LSTM,
    "gru": lambda *args, **options: GRU(*args, linear_before_reset=True, **options),
    "gru_cho": lambda *args, **options: GRU(*args, linear_before_reset=False, **options),
}


@st.composite
def problems(draw):
    """(model, x, y, lengths, loss name): Embedding or OneHot -> 1-2 recurrent layers (any
    kind, stacked or not, uni- or bidirectional) -> [Tanh] -> [LastStep] -> Dense, float64."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vocabulary, batch, steps = draw(st.integers(2, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    options = {"dtype": "float64", "batch_first": True}
    if draw(st.booleans()):
        features = draw(st.integers(1, 3))
        layers = [Embedding(vocabulary, features, dtype="float64", seed=seed)]
    else:
        features, layers = vocabulary, [OneHot(vocabulary, dtype="float64")]
    for index in range(draw(st.integers(1, 2))):
        hidden, bidirectional = draw(st.integers(1, 4)), draw(st.booleans())
        make = RECURRENT[draw(st.sampled_from(sorted(RECURRENT)))]
        layers.append(make(features, hidden, num_layers=draw(st.integers(1, 2)), bidirectional=bidirectional,
                           seed=seed + index, **options))
        features = hidden * (2 if bidirectional else 1)
    if draw(st.booleans()):
        layers.append(Tanh())
    last_step = draw(st.booleans())
    if last_step:
        layers.append(LastStep())
    outputs = draw(st.integers(1, 4))
    layers.append(Dense(features, outputs, dtype="float64", seed=seed))
    loss = draw(st.sampled_from(["cross_entropy", "mse"]))
    x = rng.integers(0, vocabulary, (batch, steps))
    target_shape = (batch,) if last_step else (batch, steps)
    y = (rng.integers(0, outputs, target_shape) if loss == "cross_entropy"
         else rng.normal(size=target_shape + (outputs,)))
    lengths = rng.integers(1, steps + 1, batch) if draw(st.booleans()) else None
    return Sequential(layers), x, y, lengths, loss


def step_mask(lengths, steps):
    return (np.arange(steps) < lengths[:, None]).astype(np.float64)


@settings(max_examples=80, deadline=None)
@given(problem=problems())
def test_whole_model_gradients_match_finite_differences(problem):
    model, x, y, lengths, loss_name = problem
    loss_function = losses.get(loss_name)
    per_step = not isinstance(model.layers[-2], LastStep)
    weights = step_mask(lengths, x.shape[1]) if per_step and lengths is not None else None

    def loss():
        return loss_function(model.forward(x, lengths), y, weights)[0]

    _, doutput = loss_function(model.forward(x, lengths), y, weights)
    model.zero_grad()
    model.backward(doutput)
    rng = np.random.default_rng(0)
    for name, grad in model.grads.items():   # every parameter tensor of every layer
        check_gradient(loss, model.params[name], grad.copy(), rng, elements=4)


def test_train_step_applies_the_masked_gradient():
    model = Sequential([Embedding(4, 3, dtype="float64", seed=0), GRU(3, 5, batch_first=True, dtype="float64", seed=1),
                        Dense(5, 4, dtype="float64", seed=2)])
    rng = np.random.default_rng(0)
    x, y, lengths = rng.integers(0, 4, (3, 5)), rng.integers(0, 4, (3, 5)), np.array([5, 2, 1])
    _, doutput = losses.cross_entropy(model.forward(x, lengths), y, step_mask(lengths, 5))
    model.zero_grad()
    model.backward(doutput)
    expected = model._parameters.values - 0.1 * model._parameters.grads
    model.compile(optim.SGD(lr=0.1), "cross_entropy")
    model.train_step(x, y, lengths)
    np.testing.assert_allclose(model._parameters.values, expected, rtol=1e-13)


def test_layers_share_one_model_buffer():
    lstm, dense = LSTM(5, 7, batch_first=True), Dense(7, 5)
    weight = dense.params["weight"].copy()
    model = Sequential([OneHot(5), lstm, dense])
    np.testing.assert_array_equal(model.params["2.weight"], weight)
    model.params["2.weight"][0, 0] = 42   # the same memory, seen from the layer
    assert dense.params["weight"][0, 0] == 42
    assert np.shares_memory(lstm._parameters.values, model._parameters.values)
    assert model._parameters.values.ctypes.data % 64 == 0 and dense._parameters.values.ctypes.data % 64 == 0
    assert list(model.state_dict())[:2] == ["1.weight_ih_l0", "1.weight_hh_l0"]


def test_a_recurrent_last_layer_with_padded_rows_shares_the_model_buffer():
    gru = GRU(3, 25, batch_first=True, seed=0)   # rows and biases padded: its buffer runs past its last tensor
    state = gru.state_dict()
    model = Sequential([gru])
    assert np.shares_memory(gru._parameters.values, model._parameters.values)
    for name, value in state.items():
        np.testing.assert_array_equal(model.params[f"0.{name}"], value)


def hihello():
    vocabulary = Vocabulary("hielo")
    x, y = vocabulary.encode("hihell")[None], vocabulary.encode("ihello")[None]
    model = Sequential([OneHot(5), LSTM(5, 5, batch_first=True, seed=0), Dense(5, 5, seed=0)])
    return model.compile(optim.Adam(lr=0.1), "cross_entropy"), x, y, vocabulary


def test_hihello_learns_ihello():
    model, x, y, vocabulary = hihello()
    history = model.fit(x, y, epochs=100, verbose=0)
    assert vocabulary.decode(model.predict(x).argmax(axis=-1)) == "ihello"
    assert history.history["accuracy"][-1] == 1.0 and history.history["loss"][-1] < 0.05


def test_fit_history_reports_epoch_means_and_validation():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (20, 7)), rng.integers(0, 6, (20, 7))
    model = Sequential([Embedding(6, 4, seed=0), RNN(4, 8, batch_first=True, seed=0), Dense(8, 6, seed=0)], seed=0)
    model.compile("adam", "cross_entropy")
    before = model.evaluate(x[:16], y[:16])
    history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and history.epoch == [0, 1, 2]
    assert history.history["loss"][0] == pytest.approx(before["loss"], rel=1e-6)   # one batch: its loss
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[16:], y[16:])["loss"], rel=1e-6)
    assert model.history is history


def test_many_to_one_with_lengths_and_mse():
    rng = np.random.default_rng(1)
    x, lengths = rng.normal(size=(30, 6, 2)), rng.integers(1, 7, 30)
    y = np.array([x[i, :length].sum(axis=0) for i, length in enumerate(lengths)])
    model = Sequential([LSTM(2, 16, batch_first=True, seed=0), LastStep(), Dense(16, 2, seed=0)], seed=0)
    model.compile(optim.Adam(lr=0.02), "mse")
    history = model.fit(x, y, epochs=30, batch_size=10, lengths=lengths, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert "accuracy" not in history.history
    assert model.predict(x, lengths).shape == (30, 2)


def build_with_randomness(seed):
    return Sequential([Embedding(6, 4, seed=seed), LSTM(4, 8, num_layers=2, dropout=0.3, batch_first=True, seed=seed),
                       Dropout(0.2, seed=seed), Dense(8, 6, seed=seed)], seed=seed)


def test_the_same_seeds_give_a_bitwise_identical_run():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (24, 5)), rng.integers(0, 6, (24, 5))
    runs = []
    for seed in (3, 3, 4):
        model = build_with_randomness(seed).compile(optim.Adam(lr=0.01), "cross_entropy")
        history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)   # shuffled, with dropout
        runs.append((model._parameters.values.copy(), history.history))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_a_nan_loss_stops_fit_before_the_update_and_names_the_batch():
    model = Sequential([LSTM(1, 4, batch_first=True, seed=0), Dense(4, 1, seed=0)])
    model.compile(optim.SGD(lr=0.1), "mse")
    x, y = np.ones((6, 5, 1)), np.zeros((6, 5, 1))
    x[4, 2] = np.nan
    with pytest.raises(FloatingPointError, match=r"fit: at epoch 1, batch 3 of 3: the loss became nan \(the weights "
                       r"were not updated\); lower the learning rate \(now 0.1\) or clip gradients, e.g. "
                       r"fastrnn.optim.SGD\(clip_norm=1.0\)"):
        model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(model._parameters.values))


# ------------------------------------------------------------------------------ stateful


def char_model(dtype="float64", seed=0):
    return Sequential([OneHot(4, dtype=dtype), LSTM(4, 6, batch_first=True, dtype=dtype, seed=seed),
                       Dense(6, 4, dtype=dtype, seed=seed)], seed=seed)


def test_stateful_steps_carry_the_state_and_cut_the_gradient():
    ids = np.random.default_rng(0).integers(0, 4, 40)
    x, y = sequence_batches(ids, batch_size=2, seq_len=3)
    model, reference = char_model(), char_model()
    model.compile(optim.SGD(lr=0.5), "cross_entropy")
    one_hot, lstm, dense = reference.layers
    values, grads = reference.parameter_buffers()[0]
    state = None
    for chunk in range(3):
        rows = slice(2 * chunk, 2 * chunk + 2)
        model.train_step(x[rows], y[rows], stateful=True)
        # by hand: start from the previous chunk's final state, no gradient into it (dstate=None)
        output, state = lstm(one_hot(x[rows]), state)
        _, doutput = losses.cross_entropy(dense(output), y[rows])
        reference.zero_grad()
        lstm.backward(dense.backward(doutput))
        values -= 0.5 * grads
        np.testing.assert_allclose(model._parameters.values, values, rtol=1e-12)
    model.reset_states()
    fresh = char_model().compile(optim.SGD(lr=0.5), "cross_entropy")
    fresh.load_state_dict(model.state_dict())
    assert model.train_step(x[:2], y[:2], stateful=True) == fresh.train_step(x[:2], y[:2])


def test_fit_stateful_equals_stateful_train_steps_reset_each_epoch():
    ids = np.random.default_rng(1).integers(0, 4, 60)
    x, y = sequence_batches(ids, batch_size=3, seq_len=4)
    fitted, stepped = char_model(), char_model()
    fitted.compile(optim.Adam(lr=0.01), "cross_entropy")
    stepped.compile(optim.Adam(lr=0.01), "cross_entropy")
    fitted.fit(x, y, epochs=2, batch_size=3, shuffle=False, stateful=True, verbose=0)
    for _ in range(2):
        stepped.reset_states()
        for start in range(0, len(x), 3):
            stepped.train_step(x[start:start + 3], y[start:start + 3], stateful=True)
    np.testing.assert_array_equal(fitted._parameters.values, stepped._parameters.values)


def test_fit_resumes_at_initial_epoch_and_calls_callbacks():
    x = np.random.default_rng(0).integers(0, 4, (8, 5))
    seen = []

    class Recorder:
        def on_epoch_end(self, epoch, logs):
            seen.append(("object", epoch))

    def add_metric(epoch, logs):
        seen.append(("function", epoch))
        logs["doubled"] = 2 * logs["loss"]

    model = char_model()
    model.compile("adam", "cross_entropy")
    history = model.fit(x, x, epochs=4, initial_epoch=2, verbose=0, callbacks=[add_metric, Recorder()])
    assert seen == [("function", 2), ("object", 2), ("function", 3), ("object", 3)]
    assert len(history.history["loss"]) == 2
    assert history.history["doubled"] == [2 * loss for loss in history.history["loss"]]
    with pytest.raises(ValueError, match="initial_epoch"):
        model.fit(x, x, epochs=2, initial_epoch=2, verbose=0)
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(x, x, verbose=0, callbacks=[3])


# ------------------------------------------------------------------------------ generation


def test_greedy_generation_equals_predicting_the_growing_sequence():
    model = char_model()
    prime = np.array([1, 3, 0])
    generated = model.generate(prime, 6, temperature=0)
    sequence = list(prime)
    for _ in range(6):
        sequence.append(int(model.predict(np.array([sequence]))[0, -1].argmax()))
    assert list(generated) == sequence[3:]


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = char_model(dtype="float32", seed=5)
    prime = np.array([0, 1])
    np.testing.assert_array_equal(model.generate(prime, 30, seed=1), model.generate(prime, 30, seed=1))
    np.testing.assert_array_equal(model.generate(prime, 30, top_k=1, seed=2), model.generate(prime, 30, temperature=0))


def test_sample_follows_the_tempered_softmax_within_top_k():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    rng = np.random.default_rng(0)
    draws = np.bincount([sample(logits, 1.0, None, rng) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(draws, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    draws = np.bincount([sample(logits, 1.0, 2, rng) for _ in range(2000)], minlength=4) / 2000
    np.testing.assert_allclose(draws, [0, 0, 3 / 7, 4 / 7], atol=0.04)
    assert sample(logits, 0) == 3


@pytest.mark.parametrize("arguments, error, match", [
    ((None,), TypeError, "logits: expected real numbers, got dtype object"),
    (([[1.0, 2.0]],), ValueError, r"logits: expected a non-empty 1-D array \(one logit per id\), got shape \(1, 2\)"),
    ((np.zeros(0),), ValueError, r"logits: expected a non-empty 1-D array .*, got shape \(0,\)"),
    ((np.zeros(3), -1.0), ValueError, r"temperature: expected a value in \[0, inf\), got -1.0"),
    ((np.zeros(3), 1.0, 0), ValueError, "top_k: expected a positive integer, got 0"),
])
def test_sample_argument_errors_name_the_argument(arguments, error, match):
    # logits=None raised AttributeError; a negative temperature and top_k=0 were taken.
    with pytest.raises(error, match=match):
        sample(*arguments)


def test_native_generation_samples_the_tempered_softmax_within_top_k():
    # A head with zero weights makes every step's logits its bias: the draws show the sampler.
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    model = char_model()
    model.layers[-1].params["weight"] = np.zeros((4, 6))
    model.layers[-1].params["bias"] = np.log(probabilities)
    assert fastrnn.generation._native_generation_layers(model) is not None

    def frequencies(count, **options):
        return np.bincount(model.generate(np.array([0]), count, **options), minlength=4) / count

    np.testing.assert_allclose(frequencies(8000, seed=0), probabilities, atol=0.02)
    np.testing.assert_allclose(frequencies(8000, temperature=0.5, seed=1), probabilities**2 / (probabilities**2).sum(),
                               atol=0.02)
    np.testing.assert_allclose(frequencies(4000, top_k=2, seed=2), [0, 0, 3 / 7, 4 / 7], atol=0.03)


def test_native_and_python_generation_agree_greedily(monkeypatch):
    model = char_model(dtype="float32", seed=3)
    prime = np.array([2, 0, 1])
    native = model.generate(prime, 20, temperature=0)
    monkeypatch.setattr(fastrnn.generation, "_native_generation_layers", lambda model: None)
    np.testing.assert_array_equal(model.generate(prime, 20, temperature=0), native)


def test_generate_takes_and_returns_text_with_a_vocabulary():
    vocabulary = Vocabulary("abcd")
    model = Sequential([Embedding(4, 3, seed=0), GRU(3, 8, batch_first=True, seed=0), Dense(8, 4, seed=0)],
                       vocabulary=vocabulary)
    text = model.generate("abc", 12, temperature=0.5, seed=0)
    assert isinstance(text, str) and len(text) == 12 and set(text) <= set("abcd")


@pytest.mark.parametrize("model, prime, match", [
    (Sequential([LSTM(2, 3, batch_first=True), Dense(3, 2)]), np.array([0]), "generate: needs a character model"),
    (Sequential([OneHot(4), LSTM(4, 3, batch_first=True), Dense(3, 5)]), np.array([0]),
     "generate: the model outputs 5 values per step, expected 4 logits"),
    (Sequential([OneHot(4), LSTM(4, 3, batch_first=True), Dense(3, 4)]), "ab", "prime: text needs model.vocabulary"),
    (Sequential([OneHot(4), LSTM(4, 3, batch_first=True), Dense(3, 4)]), np.array([[0]]),
     r"prime: expected a non-empty 1-D sequence of ids, got shape \(1, 1\)"),
])
def test_generate_errors(model, prime, match):
    with pytest.raises(ValueError, match=match):
        model.generate(prime, 3)


def test_generate_refuses_bidirectional_layers():
    model = Sequential([OneHot(4), GRU(4, 3, batch_first=True, bidirectional=True), Dense(6, 4)])
    with pytest.raises(ValueError, match=r"generate: layers\[1\] GRU\(4, 3, batch_first=True, bidirectional=True\) "
                                         "is bidirectional"):
        model.generate(np.array([0]), 3)


@pytest.mark.parametrize("options, error, match", [
    ({"temperature": "1"}, TypeError, "temperature: expected a number, got str"),
    ({"temperature": -0.5}, ValueError, r"temperature: expected a value in \[0, inf\), got -0.5"),
    ({"length": "3"}, TypeError, "length: expected an integer number of tokens, got str"),
    ({"length": -1}, ValueError, r"length: expected a number of tokens in \[0, \d+\], got -1"),
    # NumPy could not even describe an int64 array this long ("array is too big", no argument named)
    ({"length": 2**62}, ValueError, rf"length: expected a number of tokens in \[0, \d+\], got {2**62}"),
])
def test_generate_argument_errors_name_the_argument(options, error, match):
    with pytest.raises(error, match=match):
        char_model().generate(np.array([0]), **{"length": 3, **options})


def native_generation(**changes):
    """_core.generate_float32 for a model OneHot(5) -> LSTM(5, 4) -> Dense(4, 5), with `changes`
    to its arguments, and the LSTM."""
    lstm = LSTM(5, 4, batch_first=True, seed=0)
    arguments = dict(stacks=[lstm._native], weights=[lstm._parameters.values], states=[None],
                     input_table=np.eye(5, dtype=np.float32), head_weight=np.ones((5, 4), np.float32),
                     head_bias=np.zeros(5, np.float32), logits=np.zeros(5, np.float32), length=3, temperature=0.0,
                     top_k=0, seed=0)
    arguments.update(changes)
    return lambda: _core.generate_float32(**arguments), lstm


@pytest.mark.parametrize("name, changes", [
    ("input_table", dict(input_table=huge_view(np.float64, (HUGE, 5)))),
    ("head_weight", dict(head_weight=huge_view(np.float32, (HUGE, 4)))),
    ("head_bias", dict(head_bias=huge_view(np.float64, (HUGE,)))),
    ("logits", dict(logits=huge_view(np.float64, (HUGE,)))),
    ("states[0][1] (c)", dict(states=[(np.zeros((1, 1, 4), np.float32), huge_view(np.float64, (1, HUGE, 4)))])),
])
def test_native_generation_names_an_argument_whose_copy_cannot_be_allocated(name, changes):
    # Conversion failures used to be reported as a wrong shape, the MemoryError dropped.
    generate, lstm = native_generation(**changes)
    with pytest.raises(MemoryError, match=f"^{re.escape(name)}: Unable to allocate .* TiB"):
        generate()
    lstm(np.zeros((1, 2, 5)))   # and the layer is free again


def test_the_vocabulary_has_one_token_per_input_id():
    def layers():
        return [Embedding(5, 4), LSTM(4, 8, batch_first=True), Dense(8, 5)]

    match = r"vocabulary: expected 5 tokens, one per id that layers\[0\] Embedding\(.*\) takes, got 2"
    with pytest.raises(ValueError, match=match):
        Sequential(layers(), vocabulary=Vocabulary("ab"))
    model = Sequential(layers(), vocabulary=Vocabulary("abcde"))
    with pytest.raises(ValueError, match=match):
        model.vocabulary = Vocabulary("ab")
    assert model.vocabulary.tokens == list("abcde")
    with pytest.raises(TypeError, match="vocabulary: expected a fastrnn.data.Vocabulary, got str"):
        model.vocabulary = "abcde"


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("layers, error, match", [
    (lambda: [OneHot(5), LSTM(5, 5), Dense(5, 5)], ValueError,
     r"layers\[1\]: LSTM\(5, 5\) must be built with batch_first=True"),
    (lambda: [OneHot(5), LSTM(4, 5, batch_first=True)], ValueError,
     r"layers\[1\]: LSTM\(4, 5, batch_first=True\) expects input_size=4 features, got 5"),
    (lambda: [OneHot(5), GRU(5, 3, batch_first=True, bidirectional=True), Dense(3, 2)], ValueError,
     r"layers\[2\]: Dense\(.*\) expects in_features=3, got 6"),
    (lambda: [Dense(2, 3), OneHot(3)], ValueError, r"layers\[1\]: .* takes integer ids, so it must be the first layer"),
    (lambda: [OneHot(5, dtype="float64"), LSTM(5, 5, batch_first=True)], ValueError,
     r"layers: expected one dtype for all layers, got \['float32', 'float64'\]"),
    (lambda: ["lstm"], TypeError, r"layers\[0\]: expected a fastrnn layer \(not a model: list its layers\), "
                                  "got str"),
    (lambda: [Sequential([OneHot(3)])], TypeError, r"layers\[0\]: expected a fastrnn layer \(not a model"),
    (lambda: [Dense(3, 3)] * 2, ValueError, r"layers\[1\]: Dense\(.*\) appears twice"),
    (lambda: [], ValueError, "layers: expected at least one layer"),
])
def test_construction_errors(layers, error, match):
    with pytest.raises(error, match=match):
        Sequential(layers())


def test_a_layer_belongs_to_one_sequential():
    # A second model used to move the layer's parameters into its own buffer: the first model's
    # optimizer then stepped a buffer the layer no longer read, and the layer never trained.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 5, 2)), rng.normal(size=(4, 5, 1))
    lstm = LSTM(2, 3, batch_first=True, seed=0)
    model = Sequential([lstm, Dense(3, 1, seed=0)]).compile(optim.SGD(lr=0.5), "mse")
    with pytest.raises(ValueError, match=r"layers\[0\]: LSTM\(2, 3, batch_first=True\) already belongs to another "
                                         "model"):
        Sequential([lstm, Dense(3, 2)])
    before = lstm.state_dict()
    model.fit(x, y, epochs=5, verbose=0)
    assert all(not np.array_equal(lstm.params[name], before[name]) for name in before)


def test_layers_that_fit_in_memory_one_by_one_but_not_together_are_refused(monkeypatch):
    layers = [Dense(256, 256), Dense(256, 256)]   # 514 KiB each with their gradients

    def check_on_a_1_mib_machine(size_in_bytes, subject):
        if size_in_bytes > 2**20:
            raise ValueError(f"{subject} would take {size_in_bytes} bytes, more than this machine's")

    monkeypatch.setattr(fastrnn.base, "check_memory", check_on_a_1_mib_machine)
    with pytest.raises(ValueError, match="Sequential of 2 layers: its float32 parameters and their gradients would "
                                         "take .* bytes, more than this machine's"):
        Sequential(layers)
    assert Sequential(layers[:1]).layers == layers[:1]


def test_a_rejected_sequential_leaves_its_layers_free():
    dense = Dense(3, 3)
    with pytest.raises(TypeError, match="vocabulary"):
        Sequential([dense], vocabulary="abc")
    assert Sequential([dense]).layers == [dense]


def compiled_char_model():
    return char_model(dtype="float32").compile("adam", "cross_entropy")


@pytest.mark.parametrize("x, y, options, error, match", [
    (np.zeros((4, 6), int), np.zeros((3, 6), int), {}, ValueError,
     r"y: expected 4 targets \(one per sequence of x, shape \(4, 6\)\), got shape \(3, 6\)"),
    (np.zeros((4, 6), int), np.zeros((4, 5), int), {}, ValueError,
     r"y: expected integer class ids of shape \(4, 6\) \(one per output step\), got shape \(4, 5\)"),
    (np.zeros((4, 6), int), np.full((4, 6), 7), {}, ValueError, r"y: expected ids in \[0, 4\), got values from 7 to 7"),
    (np.zeros((4, 6)), np.zeros((4, 6), int), {}, TypeError, r"x: expected integer ids in \[0, 4\), got dtype float64"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"lengths": [6, 6, 7, 1]}, ValueError,
     r"lengths: expected values in \[1, 6\] \(the steps of x\), got values from 1 to 7"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"lengths": [6, 6]}, ValueError,
     r"lengths: expected shape \(4,\) \(one integer per sequence\)"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"lengths": [6.0, 6.0, 6.0, 1.0]}, TypeError,
     r"lengths: expected integers \(one per sequence\), got dtype float64"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"stateful": True}, ValueError, "needs shuffle=False"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"stateful": True, "shuffle": False, "batch_size": 3}, ValueError,
     r"batch_size: stateful training needs len\(x\) = 4 to be a multiple of batch_size = 3"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"validation_split": 1.5}, ValueError,
     r"validation_split: expected a value in \[0, 1\), got 1.5"),
    (np.zeros((4, 6), int), np.zeros((4, 6), int), {"validation_split": "0.5"}, TypeError,
     "validation_split: expected a number, got str"),
])
def test_fit_errors_name_the_argument(x, y, options, error, match):
    with pytest.raises(error, match=match):
        compiled_char_model().fit(x, y, verbose=0, **options)


def test_compile_errors():
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        char_model().compile("adamax", "cross_entropy")
    with pytest.raises(ValueError, match="loss: expected one of"):
        char_model().compile("adam", "hinge")
    with pytest.raises(ValueError, match=r"fit: the model is not compiled; call compile\(optimizer, loss\) first"):
        char_model().fit(np.zeros((1, 2), int), np.zeros((1, 2), int))

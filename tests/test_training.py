"""End-to-end parity: a few steps of plain SGD on a small sequence task, once with the NumPy
reference and once with the native kernels through the layer API, from the same initial
weights: the loss sequences agree. And the training loop on a model of one's own.
"""

import numpy as np
import pytest

import fastrnn
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


# ---------------------------------------------------------------------------------------------
# A model of one's own: fastrnn.Model gives a subclass fit, evaluate, predict, save and load
# ---------------------------------------------------------------------------------------------


class TwoEndsClassifier(fastrnn.Model):
    """The course's bidirectional many-to-one classifier, written by hand: the forward direction's
    output at each sequence's last valid step and the reverse direction's at step 0, each
    projected, summed, and projected to the classes."""

    def __init__(self, features, hidden, classes, seed=0):
        self.hidden = hidden
        self.arguments = {"features": features, "hidden": hidden, "classes": classes, "seed": seed}
        super().__init__({
            "rnn": fastrnn.GRU(features, hidden, batch_first=True, bidirectional=True, dtype="float64", seed=seed),
            "forward_head": fastrnn.Dense(hidden, 8, dtype="float64", seed=seed + 1),
            "reverse_head": fastrnn.Dense(hidden, 8, dtype="float64", seed=seed + 2),
            "classify": fastrnn.Dense(8, classes, dtype="float64", seed=seed + 3),
        }, seed=seed)

    def forward(self, x, lengths=None, targets=None):
        y, _ = self.rnn(x, lengths=lengths)
        last = np.full(len(x), x.shape[1]) if lengths is None else lengths
        rows = np.arange(len(x))
        self._steps = (y.shape, rows, last - 1)
        summed = self.forward_head(y[rows, last - 1, :self.hidden]) + self.reverse_head(y[:, 0, self.hidden:])
        return self.classify(summed)

    def backward(self, doutput):
        shape, rows, last = self._steps
        dsummed = self.classify.backward(doutput)
        dy = np.zeros(shape)
        dy[rows, last, :self.hidden] = self.forward_head.backward(dsummed)
        dy[:, 0, self.hidden:] += self.reverse_head.backward(dsummed)
        self.rnn.backward(dy, input_grad=False, state_grad=False)

    def get_config(self):
        return self.arguments


def two_ends_task(count, seed):
    """Noise sequences of 3-7 steps whose class is the signs of their first and last inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 7, 2))
    lengths = rng.integers(3, 8, count)
    labels = (x[:, 0, 0] > 0) + 2 * (x[np.arange(count), lengths - 1, 1] > 0)
    return x, labels, lengths


def test_a_model_subclass_trains_with_fit_and_round_trips_through_save_and_load(tmp_path):
    x, labels, lengths = two_ends_task(512, seed=0)
    model = TwoEndsClassifier(2, 12, 4).compile(fastrnn.optim.Adam(lr=0.02), "cross_entropy")
    assert list(model.params)[:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    assert model.rnn is model.layers[0]
    [(values, _)] = model.parameter_buffers()   # one flat buffer that every layer's parameters view
    assert np.shares_memory(values, model.classify.params["weight"])

    history = model.fit(x, labels, lengths=lengths, epochs=15, batch_size=32, verbose=0)
    test_x, test_labels, test_lengths = two_ends_task(256, seed=1)
    accuracy = model.evaluate(test_x, test_labels, lengths=test_lengths)["accuracy"]
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert accuracy > 0.9   # both ends are read: one end alone gives at most 0.5

    path = tmp_path / "classifier.npz"
    model.save(path)
    loaded = fastrnn.load(path)
    assert type(loaded) is TwoEndsClassifier and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(test_x, lengths=test_lengths),
                                  model.predict(test_x, lengths=test_lengths))


def test_a_model_subclass_backward_matches_finite_differences():
    model = TwoEndsClassifier(2, 3, 4)
    x, labels, lengths = two_ends_task(5, seed=2)
    weights = np.random.default_rng(3).normal(size=(5, 4))

    def loss():
        return float(np.sum(model.forward(x, lengths) * weights))

    loss()
    model.zero_grad()
    model.backward(weights)
    analytic = model.grads["rnn.weight_hh_l0_reverse"].copy()
    parameter = model.params["rnn.weight_hh_l0_reverse"]
    numeric = np.zeros_like(analytic)
    for index in np.ndindex(parameter.shape):
        saved = parameter[index]
        parameter[index] = saved + 1e-6
        up = loss()
        parameter[index] = saved - 1e-6
        numeric[index] = (up - loss()) / 2e-6
        parameter[index] = saved
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_loading_a_model_whose_class_this_program_does_not_define_names_the_class(tmp_path):
    path = tmp_path / "model.npz"
    TwoEndsClassifier(2, 3, 4).save(path)
    name = fastrnn.training.model_class_name(TwoEndsClassifier)
    del fastrnn.base.MODEL_CLASSES[name]
    try:
        with pytest.raises(ValueError, match=f"class: '{name}' is not a model class defined in this program; import "
                                             "the module that defines it"):
            fastrnn.load(path)
    finally:
        fastrnn.base.MODEL_CLASSES[name] = TwoEndsClassifier


def test_a_model_subclass_must_define_the_protocol():
    class Incomplete(fastrnn.Model):
        pass

    model = Incomplete([fastrnn.Dense(2, 2)]).compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match=r"Incomplete must define forward\(x, lengths=None, targets=None\)"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 2)), verbose=0)
    with pytest.raises(NotImplementedError, match=r"Incomplete must define get_config\(\)"):
        model.save("unused.npz")


def test_fit_and_evaluate_report_plain_floats():
    x, labels, lengths = two_ends_task(16, seed=0)
    model = TwoEndsClassifier(2, 3, 4).compile("adam", "cross_entropy")
    history = model.fit(x, labels, lengths=lengths, epochs=2, verbose=0, validation_split=0.25)
    evaluated = model.evaluate(x, labels, lengths=lengths)
    values = [value for series in history.history.values() for value in series] + list(evaluated.values())
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(type(value) is float for value in values), values


# ---------------------------------------------------------------------------------------------
# Resuming: a saved compiled model continues training exactly
# ---------------------------------------------------------------------------------------------


def char_model_with_dropout():
    model = fastrnn.Sequential([fastrnn.Embedding(7, 5, seed=1),
                                fastrnn.LSTM(5, 8, num_layers=2, dropout=0.3, batch_first=True, seed=2),
                                fastrnn.Dense(8, 7, seed=3)], seed=4)
    return model.compile(fastrnn.optim.Adam(lr=0.01, clip_norm=1.0), "cross_entropy")


@pytest.mark.parametrize("threads", [1, 2])
def test_two_epochs_equal_one_saved_loaded_and_one_more_bitwise(tmp_path, restore_threads, threads):
    # Adam's moments and step count, the shuffling generator and the dropout generators are all
    # part of what continues: without any of them the second epoch differs.
    fastrnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 7, (40, 6)), rng.integers(0, 7, (40, 6))
    whole = char_model_with_dropout()
    whole_history = whole.fit(x, y, epochs=2, batch_size=8, verbose=0).history

    first = char_model_with_dropout()
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.save(tmp_path / "checkpoint.npz")
    resumed = fastrnn.load(tmp_path / "checkpoint.npz")
    assert resumed.epochs_done == 1 and resumed.optimizer.iterations == 5
    resumed_history = resumed.fit(x, y, epochs=2, batch_size=8, verbose=0, initial_epoch=resumed.epochs_done).history

    assert resumed_history["loss"] == whole_history["loss"][1:]
    for name, value in whole.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_a_model_compiled_with_a_loss_of_its_own_saves_its_weights_only(tmp_path):
    model = char_model_with_dropout()
    model.compile("adam", lambda output, y, weights: fastrnn.losses.cross_entropy(output, y, weights))
    model.save(tmp_path / "model.npz")
    loaded = fastrnn.load(tmp_path / "model.npz")
    assert loaded.optimizer is None and loaded.loss is None and loaded.epochs_done == 0


@pytest.mark.parametrize("edit, match", [
    (lambda training: training.pop("optimizer"), r"training: the saved training state is malformed \(KeyError"),
    (lambda training: training.update(epochs_done=-1), "epochs_done: expected a non-negative integer, got -1"),
    (lambda training: training["optimizer"].update({"class": "Lion"}), "training: .*KeyError: 'lion'"),
])
def test_a_malformed_training_state_is_a_bad_file(tmp_path, edit, match):
    import json
    path = tmp_path / "model.npz"
    model = char_model_with_dropout()
    model.fit(np.zeros((8, 3), int), np.zeros((8, 3), int), epochs=1, verbose=0)
    model.save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    config = json.loads(str(arrays["__config__"]))
    edit(config["training"])
    arrays["__config__"] = np.array(json.dumps(config))
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    with pytest.raises(ValueError, match=match):
        fastrnn.load(path)

"""Saving and loading (round trip, damaged and foreign files), and weight import/export:
Keras weight lists against a NumPy transcription of Keras' cell formulas, PyTorch
state_dicts against torch itself when it is installed."""

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn import GRU, LSTM, RNN, Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Sequential, Tanh
from fastrnn.data import Vocabulary
from fastrnn.io import from_keras, from_torch, to_keras, to_torch


def every_layer_model():
    return Sequential([Embedding(7, 4, seed=1), GRU(4, 5, num_layers=2, bidirectional=True, linear_before_reset=False,
                                                    dropout=0.2, batch_first=True, seed=2),
                       Dense(10, 6, seed=3), ReLU(), Dropout(0.1, seed=4), RNN(6, 3, nonlinearity="relu",
                                                                                 batch_first=True, seed=5),
                       Tanh(), LSTM(3, 4, batch_first=True, seed=6), Dense(4, 7, bias=False, seed=7)],
                      vocabulary=Vocabulary("abcdefg"))


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    model = every_layer_model()
    x = np.random.default_rng(0).integers(0, 7, (3, 5))
    path = tmp_path / "model.fastrnn"   # any name: no suffix is added
    model.save(path)
    loaded = fastrnn.load(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, lengths=[5, 1, 3]), model.predict(x, lengths=[5, 1, 3]))
    assert loaded.vocabulary.tokens == list("abcdefg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fastrnn"]


def test_last_step_float64_model_round_trip(tmp_path):
    model = Sequential([LSTM(2, 3, batch_first=True, dtype="float64", seed=0), LastStep(),
                        Dense(3, 1, dtype="float64", seed=0)])
    model.save(tmp_path / "m.npz")
    loaded = fastrnn.load(tmp_path / "m.npz")
    x = np.random.default_rng(1).normal(size=(2, 4, 2))
    assert loaded.dtype == np.float64 and loaded.vocabulary is None
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    every_layer_model().save(path)
    return path


def saved_arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def save_arrays(path, arrays):
    with open(path, "wb") as file:   # np.savez(path) would add ".npz" to the name
        np.savez(file, **arrays)


def rewrite_archive(path, change):
    """Rewrites the npz at `path` with its arrays passed through change(arrays) -> arrays."""
    save_arrays(path, change(saved_arrays(path)))


def save_npy(path, array):
    with open(path, "wb") as file:   # np.save(path) would add ".npy" to the name
        np.save(file, array)


def with_config(edit):
    def change(arrays):
        config = json.loads(str(arrays["__config__"]))
        edit(config)
        return {**arrays, "__config__": np.array(json.dumps(config))}
    return change


@pytest.mark.parametrize("damage, match", [
    (lambda path: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2]),
     r"not a valid fastrnn model file \(BadZipFile"),
    (lambda path: path.write_bytes(b"\x00" * 100), r"not a valid fastrnn model file \(BadZipFile"),
    (lambda path: path.write_text("hello"), r"not a valid fastrnn model file \(BadZipFile"),
    (lambda path: save_npy(path, np.zeros(3)), r"not a valid fastrnn model file \(BadZipFile"),
    (lambda path: save_npy(path, np.array([{"a": 1}], dtype=object)), r"not a valid fastrnn model file \(BadZipFile"),
    (lambda path: rewrite_archive(path, lambda arrays: {**arrays,
                                                        "2.weight": np.array([{"a": 1}] * 60).reshape(6, 10)}),
     "2.weight: expected real numbers, got dtype object"),   # a pickle: never read
    (lambda path: rewrite_archive(path, lambda arrays: {**arrays, "__config__": np.array([{"a": 1}])}),
     r"__config__: expected a text \(a 0-d unicode array\) .* got dtype object"),
    (lambda path: rewrite_archive(path, lambda arrays: {"w": np.zeros(3)}), "no __config__ array"),
    (lambda path: rewrite_archive(path, with_config(lambda config: config.update(format="keras"))),
     "expected format 'fastrnn' version 2 \\(or 'fastrnn.Sequential' version 1\\), got 'keras'"),
    (lambda path: rewrite_archive(path, with_config(
        lambda config: config["config"]["layers"][0].update({"class": "Conv1D"}))),
     "not a valid fastrnn model file .*Conv1D"),
    (lambda path: rewrite_archive(path, with_config(
        lambda config: config["config"]["layers"][2]["config"].update(units=3))),
     "unexpected keyword argument 'units'"),
    (lambda path: rewrite_archive(path, lambda arrays: {**arrays, "2.weight": np.zeros((2, 2))}),
     r"2.weight: expected shape \(6, 10\), got \(2, 2\)"),
    (lambda path: rewrite_archive(path, lambda arrays: {k: v for k, v in arrays.items() if k != "0.weight"}),
     "layers: their parameters are 28 arrays, more than the file's 27"),
    (lambda path: rewrite_archive(path, lambda arrays: {**{k: v for k, v in arrays.items() if k != "0.weight"},
                                                        "0.wieght": arrays["0.weight"]}),
     r"arrays: missing keys \['0.weight'\], unexpected keys \['0.wieght'\]"),
    (lambda path: rewrite_archive(path, lambda arrays: {**arrays, "__config__": np.array("[" * 100000)}),
     "not a valid fastrnn model file .*RecursionError"),
    (lambda path: rewrite_archive(path, with_config(lambda config: config.update(version=True))),
     r"expected format 'fastrnn' version 2 \(or 'fastrnn.Sequential' version 1\), got 'fastrnn' version True"),
    (lambda path: rewrite_archive(path, lambda arrays: {**arrays, "2.weight": np.full((6, 10), 1e300)}),
     r"2.weight: 1e\+300 is too large for float32"),
])
def test_damaged_or_foreign_files_raise_value_error(saved, damage, match):
    damage(saved)
    with pytest.raises(ValueError, match=match) as raised:
        fastrnn.load(saved)
    assert str(raised.value).startswith(f"{saved}: ")


# Sizes are checked against the machine's memory before anything is allocated: the recurrent
# layers' native check names the layer, the model's total the model.
@pytest.mark.parametrize("index, layer, match", [
    (0, {"class": "Embedding", "config": {"num_embeddings": 10**15, "embedding_dim": 4}},
     r"Sequential of 9 layers: its float32 parameters and their gradients would take .* GiB, more than this machine's"),
    (7, {"class": "LSTM", "config": {"input_size": 3, "hidden_size": 10**6, "batch_first": True}},
     r"LSTM\(input_size=3, hidden_size=1000000, num_layers=1\): .* would take .* GiB, more than this machine's"),
])
def test_a_configuration_too_large_to_build_raises_value_error(saved, index, layer, match):
    rewrite_archive(saved, with_config(lambda config: config["config"]["layers"].__setitem__(index, layer)))
    with pytest.raises(ValueError, match=match):
        fastrnn.load(saved)


def test_a_model_buffer_too_large_to_allocate_raises_value_error(saved, monkeypatch):
    # Each layer's buffer fits, the model's (their sum) does not: only buffers larger than any
    # single layer's fail here.
    largest_layer = max(layer._parameters.size for layer in every_layer_model().layers if layer._parameters)
    allocate = fastrnn.base.aligned_zeros

    def aligned_zeros(size, dtype, alignment=64):
        if size > largest_layer:
            raise MemoryError(f"Unable to allocate {size} values")
        return allocate(size, dtype, alignment)

    monkeypatch.setattr(fastrnn.base, "aligned_zeros", aligned_zeros)
    with pytest.raises(ValueError, match=r"not enough memory to load this model \(Unable to allocate"):
        fastrnn.load(saved)


def test_a_flipped_byte_in_the_weights_is_caught(saved):
    with zipfile.ZipFile(saved) as archive:
        member = archive.getinfo("1.weight_ih_l0.npy")
    data = bytearray(saved.read_bytes())
    data[member.header_offset + 200] ^= 0xFF   # inside the stored array, past the headers
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid fastrnn model file .*CRC"):
        fastrnn.load(saved)


def refused_at_once(path, match):
    """Loads `path`, which must raise ValueError naming the file and matching `match`; returns
    the peak of the memory Python and NumPy allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as raised:
            fastrnn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(raised.value).startswith(f"{path}: ")
    return peak


def write_bomb(path, arrays, name, header, unit=b"\0"):
    """An .npz of `arrays` plus the member `name`: an .npy `header` (descr and shape) and the
    data it declares, `unit` repeated, deflated: a few hundred KB that inflate to tens of MB."""
    size = np.dtype(header["descr"]).itemsize * int(np.prod(header["shape"]))
    chunk = unit * (2**20 // len(unit))
    assert size % len(chunk) == 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, array)
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {**header, "fortran_order": False})
            for _ in range(size // len(chunk)):
                member.write(chunk)


# 64 MiB that a regression would inflate, against the 8 MiB refusing takes at most.
BOMB_BYTES, AT_ONCE_BYTES = 2**26, 2**23


@pytest.mark.parametrize("name, header, unit, match", [
    # the configuration, a little over its bound: refused from its header
    ("__config__", {"descr": f"<U{BOMB_BYTES // 4 + 2**18}", "shape": ()}, " ".encode("utf-32-le"),
     r"__config__: expected a text \(a 0-d unicode array\) of at most 67108864 bytes, got dtype <U17039360"),
    # a parameter's array declaring another shape: refused from its header
    ("2.weight", {"descr": "<f4", "shape": (BOMB_BYTES // 4,)}, b"\0",
     r"2.weight: expected shape \(6, 10\), got \(16777216,\)"),
    # an array the model does not have: never read
    ("extra", {"descr": "<f4", "shape": (BOMB_BYTES // 4,)}, b"\0", r"unexpected keys \['extra'\]"),
])
def test_a_zip_bomb_member_is_refused_before_it_is_decompressed(saved, name, header, unit, match):
    # load decompressed every member before it looked at the configuration.
    arrays = saved_arrays(saved)
    arrays.pop(name, None)
    if name == "extra":
        arrays.pop("0.weight")   # so that the names, not the count of arrays, tell
    write_bomb(saved, arrays, name, header, unit)
    assert saved.stat().st_size < 2**20
    assert refused_at_once(saved, match) < AT_ONCE_BYTES


def test_a_code_point_beyond_unicode_raises_value_error(saved):
    # A one-character string holding U+110000 made json raise SystemError (invalid maximum
    # character passed to PyUnicode_New).
    arrays = saved_arrays(saved)
    text = str(arrays["__config__"])
    codes = np.array(text).reshape(1).view(np.uint32).copy()
    codes[text.index('"vocabulary": ["a"') + len('"vocabulary": ["')] = 0x110000
    save_arrays(saved, {**arrays, "__config__": codes.view(f"U{len(text)}").reshape(())})
    refused_at_once(saved, r"__config__: code point U\+110000 is beyond Unicode's last, U\+10FFFF")


def test_layers_whose_features_do_not_chain_are_refused_before_any_is_allocated(saved):
    # Every layer was built and initialised first: Dense(10, 5 * 10**7) in a 14 KB file peaked
    # at 5.7 GiB before the check refused it; here 10**6, 160 MB for a regression.
    rewrite_archive(saved, with_config(
        lambda config: config["config"]["layers"][2]["config"].update(out_features=10**6)))
    assert refused_at_once(saved, r"layers\[5\]: RNN\(6, 3, .*\) expects input_size=6 features, got 1000000") < \
        AT_ONCE_BYTES


def test_more_parameters_than_the_file_has_arrays_are_refused_before_any_is_allocated(saved):
    # Each of a stack's tensors was listed, allocated and initialised before the file's arrays
    # were looked at: about 10 s per 100,000 layers, which a few bytes of num_layers declare.
    # 10**4 here: seconds for a regression.
    rewrite_archive(saved, with_config(lambda config: config["config"]["layers"][5]["config"].update(num_layers=10**4)))
    assert refused_at_once(saved, "layers: their parameters are 40024 arrays, more than the file's 28") < \
        AT_ONCE_BYTES


@pytest.mark.parametrize("layer", every_layer_model().layers + [
    LSTM(2, 3, num_layers=3, bias=False, bidirectional=True), GRU(2, 3, bias=False), RNN(2, 3, num_layers=2)])
def test_load_counts_the_arrays_of_a_planned_layer_as_the_layer_has_them(layer):
    planned = type(layer)._plan(layer.get_config())
    assert planned._parameters is None
    assert fastrnn.model._array_count(planned) == len(layer.params)


def write_config(path, layers, vocabulary=None):
    """A model file holding only the configuration of `layers` (entries as get_config gives them),
    deflated as numpy.savez_compressed writes it."""
    config = {"format": "fastrnn", "version": fastrnn.io.VERSION, "class": "fastrnn.model.Sequential",
              "config": {"layers": layers, "vocabulary": vocabulary}}
    with open(path, "wb") as file:
        np.savez_compressed(file, __config__=np.array(json.dumps(config)))


def test_a_file_of_100k_layers_loads_in_linear_time(tmp_path, run_apart):
    # A 51 KB file: checking that no layer appears twice compared each layer with all those
    # before it, and the load took 100 s.
    path = tmp_path / "deep.npz"
    write_config(path, [{"class": "ReLU", "config": {}}] * 100_000)
    assert path.stat().st_size < 100_000
    assert run_apart(f"import fastrnn; print(len(fastrnn.load({str(path)!r}).layers))").split() == ["100000"]


def test_only_fastrnn_layers_can_be_saved(tmp_path):
    class Custom(ReLU):
        pass

    with pytest.raises(ValueError, match=r"model.layers\[1\]: Custom is not a fastrnn layer"):
        Sequential([Dense(2, 2), Custom()]).save(tmp_path / "m.npz")


# ---------------------------------------------------------------------------------------------
# Keras: its formulas, transcribed (x @ kernel; gates i, f, c, o for LSTM and z, r, h for GRU)
# ---------------------------------------------------------------------------------------------


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def keras_simple_rnn(x, kernel, recurrent_kernel, bias, activation=np.tanh):
    h = np.zeros((x.shape[0], kernel.shape[1]))
    outputs = []
    for t in range(x.shape[1]):
        h = activation(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def keras_lstm(x, kernel, recurrent_kernel, bias):
    units = recurrent_kernel.shape[0]
    h = c = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def keras_gru(x, kernel, recurrent_kernel, bias, reset_after):
    units = recurrent_kernel.shape[0]
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        x_z, x_r, x_h = np.split(x[:, t] @ kernel + input_bias, 3, axis=1)
        if reset_after:
            h_z, h_r, h_h = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=1)
            z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
            candidate = np.tanh(x_h + r * h_h)
        else:
            z = sigmoid(x_z + h @ recurrent_kernel[:, :units])
            r = sigmoid(x_r + h @ recurrent_kernel[:, units:2 * units])
            candidate = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * units:])
        h = z * h + (1 - z) * candidate
        outputs.append(h)
    return np.stack(outputs, axis=1)


def keras_bidirectional(cell, x, forward_weights, backward_weights):
    """Keras' Bidirectional(merge_mode='concat'): the backward layer reads the reversed sequence
    and its outputs are reversed back."""
    backward = cell(x[:, ::-1], *backward_weights)[:, ::-1]
    return np.concatenate([cell(x, *forward_weights), backward], axis=-1)


KERAS_CASES = {
    # name: (our layer, its Keras cell, Keras weight shapes for input 3 and 4 units)
    "simple_rnn": (lambda: RNN(3, 4, batch_first=True, dtype="float64"), keras_simple_rnn,
                   [(3, 4), (4, 4), (4,)]),
    "simple_rnn_relu": (lambda: RNN(3, 4, nonlinearity="relu", batch_first=True, dtype="float64"),
                        lambda x, *w: keras_simple_rnn(x, *w, activation=lambda z: np.maximum(z, 0)),
                        [(3, 4), (4, 4), (4,)]),
    "lstm": (lambda: LSTM(3, 4, batch_first=True, dtype="float64"), keras_lstm, [(3, 16), (4, 16), (16,)]),
    "gru_reset_after": (lambda: GRU(3, 4, batch_first=True, dtype="float64"),
                        lambda x, *w: keras_gru(x, *w, reset_after=True), [(3, 12), (4, 12), (2, 12)]),
    "gru_reset_before": (lambda: GRU(3, 4, linear_before_reset=False, batch_first=True, dtype="float64"),
                         lambda x, *w: keras_gru(x, *w, reset_after=False), [(3, 12), (4, 12), (12,)]),
}


def random_weights(rng, shapes):
    return [rng.uniform(-0.8, 0.8, shape) for shape in shapes]


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_import_matches_keras_formulas(case):
    make_layer, cell, shapes = KERAS_CASES[case]
    rng = np.random.default_rng(0)
    embeddings, recurrent, dense = random_weights(rng, [(5, 3)]), random_weights(rng, shapes), \
        random_weights(rng, [(4, 2), (2,)])
    model = Sequential([Embedding(5, 3, dtype="float64"), make_layer(), Dense(4, 2, dtype="float64")])
    from_keras(model, embeddings + recurrent + dense)   # keras_model.get_weights() order
    x = rng.integers(0, 5, (2, 6))
    expected = cell(embeddings[0][x], *recurrent) @ dense[0] + dense[1]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(to_keras(model), embeddings + recurrent + dense):
        np.testing.assert_array_equal(ours, theirs)   # export gives the same list back


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_export_of_a_trained_style_layer_matches_keras_formulas(case):
    """Our layers have two biases (both non-zero here); Keras' single bias is their sum."""
    make_layer, cell, _ = KERAS_CASES[case]
    layer = make_layer()
    layer.load_state_dict({name: np.random.default_rng(1).uniform(-0.8, 0.8, value.shape)
                           for name, value in layer.params.items()})
    x = np.random.default_rng(2).normal(size=(2, 5, 3))
    np.testing.assert_allclose(layer(x)[0], cell(x, *to_keras(layer)), rtol=1e-10, atol=1e-12)


def test_keras_stacked_bidirectional_lstm_order():
    """Two Keras Bidirectional(LSTM) layers: [forward, backward] weights of the first, then of
    the second, as our LSTM(num_layers=2, bidirectional=True) stack."""
    rng = np.random.default_rng(3)
    first = [random_weights(rng, [(3, 8), (2, 8), (8,)]) for _ in range(2)]
    second = [random_weights(rng, [(4, 8), (2, 8), (8,)]) for _ in range(2)]
    layer = LSTM(3, 2, num_layers=2, bidirectional=True, batch_first=True, dtype="float64")
    from_keras(layer, sum(first + second, []))
    x = rng.normal(size=(2, 4, 3))
    hidden = keras_bidirectional(keras_lstm, x, *first)
    np.testing.assert_allclose(layer(x)[0], keras_bidirectional(keras_lstm, hidden, *second), rtol=1e-10)


def keras_bidirectional_last(cell, x, forward_weights, backward_weights):
    """Keras' Bidirectional(..., return_sequences=False): each direction's last output, the
    backward layer's after reading the whole reversed sequence."""
    return np.concatenate([cell(x, *forward_weights)[:, -1], cell(x[:, ::-1], *backward_weights)[:, -1]], axis=-1)


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_bidirectional_many_to_one_import_matches_keras_formulas(case):
    """A Keras Embedding -> Bidirectional(cell, return_sequences=False) -> Dense model, imported
    into Embedding -> bidirectional layer -> LastStep -> Dense, predicts what Keras does."""
    make_layer, cell, shapes = KERAS_CASES[case]
    rng = np.random.default_rng(4)
    embeddings, directions, dense = random_weights(rng, [(5, 3)]), [random_weights(rng, shapes) for _ in range(2)], \
        random_weights(rng, [(8, 2), (2,)])
    config = make_layer().get_config()
    native = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}[type(make_layer()).__name__]
    recurrent = native(**{**config, "bidirectional": True})
    model = Sequential([Embedding(5, 3, dtype="float64"), recurrent, LastStep(), Dense(8, 2, dtype="float64")])
    from_keras(model, embeddings + directions[0] + directions[1] + dense)
    x = rng.integers(0, 5, (3, 6))
    expected = keras_bidirectional_last(cell, embeddings[0][x], *directions) @ dense[0] + dense[1]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)


def test_keras_errors():
    layer = LSTM(3, 4, batch_first=True)
    with pytest.raises(ValueError,
                       match=r"weights: expected 3 arrays of shapes \[\(3, 16\), \(4, 16\), \(16,\)\], got 2"):
        from_keras(layer, [np.zeros((3, 16)), np.zeros((4, 16))])
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(4, 16\), got \(16, 4\)"):
        from_keras(layer, [np.zeros((3, 16)), np.zeros((16, 4)), np.zeros(16)])


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def torch_char_model(torch, kind):
    class CharModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(6, 3)
            self.rnn = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True)
            self.head = torch.nn.Linear(10, 6)

        def forward(self, x):
            return self.head(self.rnn(self.embedding(x))[0])

    torch.manual_seed(0)
    return CharModel().double()


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_torch_import_and_export_give_torchs_outputs(kind):
    torch = pytest.importorskip("torch")
    module = torch_char_model(torch, kind)
    ours = Sequential([Embedding(6, 3, dtype="float64"),
                       getattr(fastrnn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True,
                                              dtype="float64"),
                       Dense(10, 6, dtype="float64")])
    x = np.random.default_rng(0).integers(0, 6, (2, 7))
    from_torch(ours, module.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(ours.predict(x), module(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)
    ours.params["2.bias"][...] = 0.5
    to_torch(ours, module)
    with torch.no_grad():
        np.testing.assert_allclose(ours.predict(x), module(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)


def test_torch_names_must_end_alike():
    layer = Dense(2, 3)
    with pytest.raises(ValueError, match="state_dict: 'fc.bias' does not match 'weight'"):
        from_torch(layer, {"fc.bias": np.zeros(3), "fc.weight": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"state_dict: expected 2 tensors \['weight', 'bias'\], got 1"):
        from_torch(layer, {"fc.weight": np.zeros((3, 2))})


def test_one_hot_models_need_no_keras_arrays_for_the_encoder():
    model = Sequential([OneHot(3), Dense(3, 2)])
    assert [a.shape for a in to_keras(model)] == [(3, 2), (2,)]


def bidirectional_classifier():
    return Sequential([GRU(2, 3, batch_first=True, bidirectional=True, dtype="float64", seed=0), LastStep(),
                       Dense(6, 2, dtype="float64", seed=1)])


def test_laststep_after_a_bidirectional_layer_keeps_its_meaning_through_save_and_load(tmp_path):
    model = bidirectional_classifier()
    assert model.layers[1].bidirectional is True
    model.save(tmp_path / "model.npz")
    loaded = fastrnn.load(tmp_path / "model.npz")
    assert loaded.layers[1].bidirectional is True
    x, lengths = np.random.default_rng(0).normal(size=(3, 4, 2)), np.array([4, 2, 1])
    np.testing.assert_array_equal(loaded.predict(x, lengths), model.predict(x, lengths))


def as_version_1(arrays):
    """The configuration of a saved Sequential as version 1 files held it, their LastStep without
    arguments."""
    config = json.loads(str(arrays["__config__"]))["config"]
    for entry in config["layers"]:
        if entry["class"] == "LastStep":
            entry["config"] = {}
    return {"format": "fastrnn.Sequential", "version": 1, **config}


def test_a_file_from_before_the_bidirectional_laststep_loads_with_its_plain_laststep(tmp_path):
    # Version 1 files were trained with every feature taken at the last valid step.
    model = bidirectional_classifier()
    path = tmp_path / "model.npz"
    model.save(path)
    rewrite_archive(path, lambda arrays: {**arrays, "__config__": np.array(json.dumps(as_version_1(arrays)))})
    loaded = fastrnn.load(path)
    assert loaded.layers[1].bidirectional is False
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    plain = Sequential([GRU(2, 3, batch_first=True, bidirectional=True, dtype="float64"), LastStep(bidirectional=False),
                        Dense(6, 2, dtype="float64")])
    plain.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(loaded.predict(x), plain.predict(x))
    assert not np.allclose(loaded.predict(x), model.predict(x))

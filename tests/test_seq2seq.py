"""Seq2Seq against the same encoder-decoder written in PyTorch and differentiated by autograd
(float64): outputs and every parameter's gradient, the encoder's reached only through the
bridged state; for every decoder input, both bridge rules, fewer decoder than encoder layers,
and variable-length sources. Then decoding, saving, and the construction errors.
"""

import json

import numpy as np
import pytest

import fastrnn
from fastrnn import GRU, LSTM, RNN, Dense, Embedding, OneHot, Seq2Seq
from support import assert_close

IDS, STEPS, BATCH = 7, 6, 5


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def build(kind, decoder_inputs, directions, encoder_layers, decoder_layers, bidirectional):
    """A fastrnn Seq2Seq over ids and the same model's layers in torch (a ModuleDict whose
    state_dict names are the Seq2Seq's parameter names), with torch's initial weights."""
    import torch
    torch.manual_seed(0)
    hidden = 4
    decoder_hidden = hidden * (2 if bidirectional and directions == "concat" else 1)
    decoder_input = 1 if decoder_inputs == "zeros" else 3
    modules = torch.nn.ModuleDict({
        "source_embedding": torch.nn.Embedding(IDS, 3),
        "encoder": getattr(torch.nn, kind)(3, hidden, num_layers=encoder_layers, bidirectional=bidirectional,
                                           batch_first=True),
        "decoder": getattr(torch.nn, kind)(decoder_input, decoder_hidden, num_layers=decoder_layers, batch_first=True),
        "head": torch.nn.Linear(decoder_hidden, IDS),
    })
    if decoder_inputs != "zeros":
        modules["target_embedding"] = torch.nn.Embedding(IDS, decoder_input)
    modules = modules.double()
    recurrent = getattr(fastrnn, kind)
    model = Seq2Seq(recurrent(3, hidden, num_layers=encoder_layers, bidirectional=bidirectional, batch_first=True,
                              dtype="float64"),
                    recurrent(decoder_input, decoder_hidden, num_layers=decoder_layers, batch_first=True,
                              dtype="float64"),
                    Dense(decoder_hidden, IDS, dtype="float64"), source_embedding=Embedding(IDS, 3, dtype="float64"),
                    target_embedding=None if decoder_inputs == "zeros" else Embedding(IDS, decoder_input,
                                                                                      dtype="float64"),
                    decoder_inputs=decoder_inputs, directions=directions, start_token=2)
    model.load_state_dict({name: value.detach().numpy() for name, value in modules.state_dict().items()})
    return model, modules


def torch_forward(torch, modules, x, lengths, targets, decoder_inputs, directions, decoder_layers):
    source = modules["source_embedding"](torch.tensor(x))
    packed = torch.nn.utils.rnn.pack_padded_sequence(source, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    _, final = modules["encoder"](packed)
    encoder = modules["encoder"]
    directions_count = 2 if encoder.bidirectional else 1

    def bridge(part):
        top = part.view(encoder.num_layers, directions_count, len(x), encoder.hidden_size)[-decoder_layers:]
        if directions == "sum":
            return top.sum(1)
        return top.permute(0, 2, 1, 3).reshape(decoder_layers, len(x), directions_count * encoder.hidden_size)

    state = tuple(bridge(part) for part in final) if isinstance(final, tuple) else bridge(final)
    steps = targets.shape[1]
    if decoder_inputs == "zeros":
        decoded, _ = modules["decoder"](torch.zeros(len(x), steps, 1, dtype=torch.float64), state)
        return modules["head"](decoded)
    if decoder_inputs == "teacher":
        shifted = np.concatenate([np.full((len(x), 1), 2), targets[:, :-1]], axis=1)
        decoded, _ = modules["decoder"](modules["target_embedding"](torch.tensor(shifted)), state)
        return modules["head"](decoded)
    previous, outputs = torch.full((len(x),), 2), []
    for _ in range(steps):
        decoded, state = modules["decoder"](modules["target_embedding"](previous)[:, None], state)
        outputs.append(modules["head"](decoded[:, 0]))
        previous = outputs[-1].detach().argmax(-1)   # the choice carries no gradient
    return torch.stack(outputs, 1)


CASES = [  # kind, decoder inputs, directions, encoder layers, decoder layers, bidirectional
    ("LSTM", "zeros", "concat", 2, 2, True), ("LSTM", "teacher", "sum", 2, 1, True),
    ("LSTM", "previous", "concat", 1, 1, False), ("GRU", "zeros", "sum", 2, 2, True),
    ("GRU", "teacher", "concat", 2, 1, True), ("GRU", "previous", "concat", 2, 2, True),
    ("RNN", "teacher", "concat", 1, 1, False),
]


@pytest.mark.parametrize("kind, decoder_inputs, directions, encoder_layers, decoder_layers, bidirectional", CASES)
def test_outputs_and_gradients_match_torch_autograd(torch, kind, decoder_inputs, directions, encoder_layers,
                                                    decoder_layers, bidirectional):
    model, modules = build(kind, decoder_inputs, directions, encoder_layers, decoder_layers, bidirectional)
    rng = np.random.default_rng(1)
    x = rng.integers(0, IDS, (BATCH, STEPS))
    lengths = np.array([6, 2, 5, 1, 4])
    targets = rng.integers(0, IDS, (BATCH, STEPS - 1))   # the output is shorter than the source here
    weights = rng.normal(size=(BATCH, STEPS - 1, IDS))   # loss = sum(weights * output)

    expected_output = torch_forward(torch, modules, x, lengths, targets, decoder_inputs, directions, decoder_layers)
    (expected_output * torch.tensor(weights)).sum().backward()
    output = model.forward(x, lengths, targets)
    model.zero_grad()
    model.backward(weights)

    expected = {"output": expected_output.detach().numpy(),
                **{name: value.grad.numpy() for name, value in modules.named_parameters()}}
    actual = {"output": output, **{name: model.grads[name] for name in expected if name != "output"}}
    assert_close(actual, expected, "float64", f"seq2seq {kind} {decoder_inputs} vs torch autograd")
    assert np.abs(model.grads["encoder.weight_hh_l0"]).max() > 0   # reached through the state alone


def sorting_model(decoder_inputs="zeros", seed=0):
    return Seq2Seq(LSTM(IDS, 16, batch_first=True, seed=seed), LSTM(1 if decoder_inputs == "zeros" else 4, 16,
                                                                    batch_first=True, seed=seed),
                   Dense(16, IDS, seed=seed), source_embedding=OneHot(IDS),
                   target_embedding=None if decoder_inputs == "zeros" else Embedding(IDS, 4, seed=seed),
                   decoder_inputs=decoder_inputs, seed=seed)


@pytest.mark.parametrize("decoder_inputs", ["zeros", "teacher", "previous"])
def test_decode_is_the_argmax_of_predict_and_sampling_follows_the_seed(decoder_inputs):
    model = sorting_model(decoder_inputs)
    x = np.random.default_rng(0).integers(0, IDS, (9, 5))
    greedy = model.decode(x, steps=4)
    assert greedy.shape == (9, 4) and greedy.dtype.kind == "i"
    np.testing.assert_array_equal(greedy, model.predict(x, steps=4).argmax(-1))
    np.testing.assert_array_equal(model.decode(x, temperature=2.0, seed=5), model.decode(x, temperature=2.0, seed=5))
    assert not np.array_equal(model.decode(x, temperature=50.0, seed=5), model.decode(x, temperature=50.0, seed=6))


@pytest.mark.parametrize("decoder_inputs", ["zeros", "teacher", "previous"])
def test_save_and_load_round_trip(tmp_path, decoder_inputs):
    model = sorting_model(decoder_inputs).compile("adam", "cross_entropy")
    x = np.random.default_rng(0).integers(0, IDS, (32, 5))
    model.fit(x, np.sort(x, axis=1), epochs=2, verbose=0)
    model.save(tmp_path / "model.npz")
    loaded = fastrnn.load(tmp_path / "model.npz")
    assert type(loaded) is Seq2Seq and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_learns_to_sort_short_sequences():
    # What the sort demo teaches, small: zero inputs, the state alone carries the sequence.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (2000, 4))
    model = Seq2Seq(LSTM(5, 64, batch_first=True, seed=0), LSTM(1, 64, batch_first=True, seed=1), Dense(64, 5, seed=2),
                    source_embedding=OneHot(5), seed=0).compile(fastrnn.optim.Adam(lr=0.01), "cross_entropy")
    model.fit(x, np.sort(x, axis=1), epochs=15, batch_size=64, verbose=0)
    test = rng.integers(0, 5, (500, 4))
    per_position = (model.decode(test) == np.sort(test, axis=1)).mean()
    copying = (test == np.sort(test, axis=1)).mean()
    assert per_position > 0.9 > copying + 0.3, (per_position, copying)


def test_a_file_whose_layers_take_more_arrays_than_it_holds_is_refused_before_allocating(tmp_path):
    path = tmp_path / "model.npz"
    sorting_model().save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    config = json.loads(str(arrays["__config__"]))
    config["config"]["encoder"]["config"]["num_layers"] = 10**6
    arrays["__config__"] = np.array(json.dumps(config))
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    with pytest.raises(ValueError, match="layers: their parameters are 4000006 arrays, more than the file's 10"):
        fastrnn.load(path)


@pytest.mark.parametrize("arguments, error, match", [
    (lambda: dict(encoder=LSTM(3, 4, batch_first=True), decoder=LSTM(1, 5, batch_first=True), head=Dense(5, 3)),
     ValueError, r"encoder LSTM\(3, 4, batch_first=True\) and decoder LSTM\(1, 5, batch_first=True\): the encoder's "
                 "states have 4 features, the decoder's hidden_size is 5"),
    (lambda: dict(encoder=LSTM(3, 4, batch_first=True, bidirectional=True), decoder=LSTM(1, 4, batch_first=True),
                  head=Dense(4, 3)),
     ValueError, r"the encoder's states \(directions='concat'\) have 8 features, the decoder's hidden_size is 4"),
    (lambda: dict(encoder=LSTM(3, 4, batch_first=True), decoder=GRU(1, 4, batch_first=True), head=Dense(4, 3)),
     ValueError, r"an LSTM's state is \(h, c\), the other's h alone"),
    (lambda: dict(encoder=GRU(3, 4, batch_first=True), decoder=GRU(1, 4, num_layers=2, batch_first=True),
                  head=Dense(4, 3)),
     ValueError, "the decoder's 2 layers take the top encoder layers' states, but the encoder has 1"),
    (lambda: dict(encoder=GRU(3, 4, batch_first=True), decoder=GRU(1, 4, batch_first=True, bidirectional=True),
                  head=Dense(8, 3)),
     ValueError, "is bidirectional, but a decoder emits one step at a time"),
    (lambda: dict(encoder=GRU(3, 4), decoder=GRU(1, 4, batch_first=True), head=Dense(4, 3)),
     TypeError, r"encoder: expected an RNN, LSTM or GRU built with batch_first=True, got GRU\(3, 4\)"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=Dense(5, 3)),
     ValueError, r"decoder RNN\(1, 4, batch_first=True\) feeds head Dense\(.*\), which expects in_features=5, got 4"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=Dense(4, 3),
                  source_embedding=OneHot(5)),
     ValueError, r"source_embedding OneHot\(.*\) feeds encoder RNN\(3, 4, .*\), which expects input_size=3 features, "
                 "got 5"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(2, 4, batch_first=True), head=Dense(4, 3),
                  decoder_inputs="previous"),
     ValueError, r"head: its 3 outputs go back into decoder RNN\(2, 4, .*\) \(decoder_inputs='previous', no "
                 "target_embedding\\), which takes 2"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(2, 4, batch_first=True), head=Dense(4, 3),
                  target_embedding=Embedding(4, 2), decoder_inputs="teacher"),
     ValueError, r"head: its 3 outputs are the ids target_embedding Embedding\(.*\) takes back, 4"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(2, 4, batch_first=True), head=Dense(4, 3),
                  target_embedding=Embedding(3, 2), decoder_inputs="teacher", start_token=3),
     ValueError, r"start_token: expected an id in \[0, 3\), got 3"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=Dense(4, 3),
                  target_embedding=Embedding(3, 1)),
     ValueError, "target_embedding: decoder_inputs='zeros' feeds the decoder no targets; pass None"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=Dense(4, 3),
                  decoder_inputs="teachers"),
     ValueError, r"decoder_inputs: expected one of \('zeros', 'teacher', 'previous'\), got 'teachers'"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=Dense(4, 3),
                  directions="mean"),
     ValueError, r"directions: expected one of \('concat', 'sum'\), got 'mean'"),
    (lambda: dict(encoder=RNN(3, 4, batch_first=True), decoder=RNN(1, 4, batch_first=True), head=RNN(4, 3)),
     TypeError, "head: expected a Dense layer"),
])
def test_construction_errors_name_the_argument(arguments, error, match):
    with pytest.raises(error, match=match):
        Seq2Seq(**arguments())


def test_backward_without_a_training_forward_and_decode_of_features_are_refused():
    model = sorting_model()
    with pytest.raises(ValueError, match="backward: Seq2Seq has no training-mode forward to differentiate"):
        model.backward(np.zeros((2, 3, IDS)))
    features = Seq2Seq(RNN(3, 4, batch_first=True), RNN(2, 4, batch_first=True), Dense(4, 2),
                       decoder_inputs="previous")
    with pytest.raises(ValueError, match="decode: the model's outputs are features fed back as they are, not ids; "
                                         "use predict"):
        features.decode(np.zeros((2, 3, 3)))
    assert features.predict(np.zeros((2, 3, 3)), steps=7).shape == (2, 7, 2)


def test_teacher_forced_targets_must_be_ids_the_target_embedding_takes():
    model = sorting_model("teacher").compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected ids in \[0, 7\), got values from 9 to 9"):
        model.fit(np.zeros((4, 3), int), np.full((4, 3), 9), verbose=0)

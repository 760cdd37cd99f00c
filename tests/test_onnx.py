"""fastrnn.onnx.export: the exported graphs pass onnx's full checks, and ONNX Runtime computes
what model.predict does, for random models of every layer kind, with and without lengths and
states; a demo's trained character model generates the same text when ONNX Runtime drives it.

ONNX Runtime implements RNN, LSTM and GRU for float32 only ("LSTM operator does not support
double yet"), so a float64 export is checked twice: its graph equals the float32 export's but
for the element type, and run in ONNX Runtime with its values rounded to float32 it matches the
float64 model to float32 accuracy. Graphs without recurrent operators run in float64 as they are.
"""
import importlib
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import GRU, LSTM, RNN, Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Sequential, Tanh
from fastrnn.demos import charlm
from support import record

onnx = pytest.importorskip("onnx", reason="onnx is not installed (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the test extra)")
import fastrnn.onnx  # noqa: E402  (after the skips: it needs onnx)
from onnx import TensorProto, numpy_helper  # noqa: E402

CLASSES = 7


def random_model(rng, dtype="float32"):
    """A random Sequential of the layers export supports, and its input kind ("ids" or features)."""
    kind = rng.choice(["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_first"])
    hidden, num_layers, bidirectional = int(rng.integers(1, 9)), int(rng.integers(1, 3)), bool(rng.integers(2))
    options = dict(num_layers=num_layers, bidirectional=bidirectional, bias=bool(rng.integers(4)), batch_first=True,
                   dtype=dtype, seed=int(rng.integers(1000)))
    first = rng.choice(["embedding", "one_hot", "features"])
    layers = {"embedding": [Embedding(CLASSES, 5, dtype=dtype, seed=1)], "one_hot": [OneHot(CLASSES, dtype=dtype)],
              "features": []}[first]
    features = {"embedding": 5, "one_hot": CLASSES, "features": 3}[first]
    if rng.integers(2):
        layers += [Dense(features, 4, dtype=dtype, seed=2), Tanh()]
        features = 4
    if kind.startswith("rnn"):
        layers.append(RNN(features, hidden, nonlinearity=kind[4:], **options))
    elif kind == "lstm":
        layers.append(LSTM(features, hidden, **options))
    else:
        layers.append(GRU(features, hidden, linear_before_reset=kind == "gru", **options))
    width = hidden * (2 if bidirectional else 1)
    layers += [Dropout(0.3), ReLU()] if rng.integers(2) else []
    if rng.integers(2):
        layers.append(LastStep())
    layers.append(Dense(width, 3, bias=bool(rng.integers(4)), dtype=dtype, seed=3))
    return Sequential(layers), first


def inputs_for(model, first, batch, steps, rng):
    if first == "features":
        return rng.standard_normal((batch, steps, model.layers[0].input_size if model.layers[0].recurrent
                                    else model.layers[0].in_features)).astype(model.dtype)
    return rng.integers(0, CLASSES, (batch, steps))


def layer_kind(model):
    """The recurrent layer's kind, as the closing notes report parity: rnn_tanh, rnn_relu, lstm,
    gru (linear_before_reset) or gru_reset_first."""
    layer = next(layer for _, layer in recurrent_layers(model))
    if isinstance(layer, RNN):
        return f"rnn_{layer.nonlinearity}"
    if isinstance(layer, GRU):
        return "gru" if layer.linear_before_reset else "gru_reset_first"
    return "lstm"


def recurrent_layers(model):
    return [(index, layer) for index, layer in enumerate(model.layers) if layer.recurrent]


def random_states(model, batch, rng):
    """Initial states for model.run (one entry per layer) and the same as ONNX inputs."""
    states, feeds = model.fresh_states(), {}
    for index, layer in recurrent_layers(model):
        shape = (layer.num_layers * (2 if layer.bidirectional else 1), batch, layer.hidden_size)
        parts = [rng.standard_normal(shape).astype(model.dtype) for _ in range(2 if isinstance(layer, LSTM) else 1)]
        states[index] = tuple(parts) if isinstance(layer, LSTM) else parts[0]
        feeds.update({f"{name}0_{index}": part for name, part in zip("hc", parts)})
    return states, feeds


def run_in_runtime(proto, feeds):
    return runner(proto)(feeds)


def runner(proto):
    """A function of the feeds that runs `proto` in ONNX Runtime and returns its outputs by name."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def as_float32(proto):
    """`proto` with every float64 type and initializer made float32."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for tensor in proto.graph.initializer:
        if tensor.data_type == TensorProto.DOUBLE:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    for info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        if info.type.tensor_type.elem_type == TensorProto.DOUBLE:
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == TensorProto.DOUBLE:
                attribute.i = TensorProto.FLOAT
    return proto


def float32_copy(model):
    copy = Sequential.from_config(_config_in(model.get_config(), "float32"))
    copy.load_state_dict({name: value.astype(np.float32) for name, value in model.state_dict().items()})
    return copy


def _config_in(config, dtype):
    """A Sequential configuration with every layer's dtype set to `dtype`."""
    layers = [{**entry, "config": {**entry["config"], **({"dtype": dtype} if "dtype" in entry["config"] else {})}}
              for entry in config["layers"]]
    return {**config, "layers": layers}


@pytest.mark.parametrize("seed", range(40))
def test_onnx_runtime_computes_what_predict_does(seed):
    rng = np.random.default_rng(seed)
    model, first = random_model(rng)
    with_lengths, with_states = bool(seed % 2), bool(seed // 2 % 2)
    proto = fastrnn.onnx.to_model(model, lengths=with_lengths, states=with_states)
    for batch in (1, 17):
        steps = int(rng.integers(1, 7))
        x = inputs_for(model, first, batch, steps, rng)
        lengths = rng.integers(1, steps + 1, batch) if with_lengths else None
        states, state_feeds = random_states(model, batch, rng) if with_states else (model.fresh_states(), {})
        model.eval()
        expected = model.run(x, lengths, states)
        got = run_in_runtime(proto, {"x": x, **({"lengths": lengths} if with_lengths else {}), **state_feeds})
        np.testing.assert_allclose(got["y"], expected, rtol=1e-5, atol=1e-5)
        worst = np.abs(got["y"] - expected).max()
        for index, layer in recurrent_layers(model) if with_states else []:
            final = states[index] if isinstance(layer, LSTM) else (states[index],)
            for name, part in zip("hc", final):
                np.testing.assert_allclose(got[f"{name}n_{index}"], part, rtol=1e-5, atol=1e-5)
                worst = max(worst, np.abs(got[f"{name}n_{index}"] - part).max())
        record(f"onnx {layer_kind(model)} float32: ONNX Runtime vs predict (max |difference|)", float(worst))


@pytest.mark.parametrize("seed", range(12))
def test_a_float64_export_is_the_float32_graph_in_float64(seed):
    rng = np.random.default_rng(100 + seed)
    model, first = random_model(rng, "float64")
    proto = fastrnn.onnx.to_model(model, lengths=True)
    same_in_float32 = fastrnn.onnx.to_model(float32_copy(model), lengths=True)
    assert as_float32(proto).graph == same_in_float32.graph
    x = inputs_for(model, first, 17, 5, rng)
    lengths = rng.integers(1, 6, 17)
    got = run_in_runtime(as_float32(proto), {"x": x.astype(np.float32) if first == "features" else x,
                                             "lengths": lengths})
    np.testing.assert_allclose(got["y"], model.predict(x, lengths), rtol=1e-5, atol=1e-5)


def test_float64_graphs_without_recurrent_operators_run_exactly():
    model = Sequential([Embedding(CLASSES, 5, dtype="float64", seed=0), Tanh(), Dense(5, 4, dtype="float64", seed=1),
                        ReLU(), LastStep(), Dense(4, 3, dtype="float64", seed=2)])
    x, lengths = np.random.default_rng(0).integers(0, CLASSES, (17, 6)), np.arange(17) % 6 + 1
    got = run_in_runtime(fastrnn.onnx.to_model(model, lengths=True), {"x": x, "lengths": lengths})
    np.testing.assert_allclose(got["y"], model.predict(x, lengths), rtol=1e-12, atol=1e-12)


def test_the_graph_passes_full_checks_with_dynamic_batch_and_steps(tmp_path):
    model = Sequential([OneHot(CLASSES), LSTM(CLASSES, 8, num_layers=2, batch_first=True), Dense(8, CLASSES)])
    path = tmp_path / "model.onnx"
    fastrnn.onnx.export(model, path, lengths=True, states=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [info.name for info in proto.graph.input] == ["x", "lengths", "h0_1", "c0_1"]
    assert [info.name for info in proto.graph.output] == ["hn_1", "cn_1", "y"]
    x_shape = [dim.dim_param or dim.dim_value for dim in proto.graph.input[0].type.tensor_type.shape.dim]
    assert x_shape == ["batch", "steps"]
    assert {node.op_type for node in proto.graph.node} >= {"OneHot", "LSTM", "MatMul"}


class MyDense(Dense):
    pass


def test_a_layer_it_cannot_export_is_named_and_nothing_is_written(tmp_path):
    model = Sequential([OneHot(CLASSES), GRU(CLASSES, 4, batch_first=True), MyDense(4, CLASSES)])
    path = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match=r"layers\[2\]: MyDense\(.*cannot be exported to ONNX"):
        fastrnn.onnx.export(model, path)
    assert not path.exists()
    with pytest.raises(TypeError, match="model: expected a fastrnn.Sequential or Seq2Seq, got LSTM"):
        fastrnn.onnx.export(LSTM(2, 3), path)


def test_without_onnx_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "fastrnn.onnx")
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[onnx\]"'):
        importlib.import_module("fastrnn.onnx")


def test_a_demo_model_saved_loaded_and_exported_generates_the_same_text(tmp_path, capsys):
    checkpoint = tmp_path / "charlm.npz"
    charlm.main(["--quick", "--checkpoint", str(checkpoint)])
    model = fastrnn.load(checkpoint)
    run = runner(fastrnn.onnx.to_model(model, states=True))
    ids = model.vocabulary.encode("def __init__(self):\n        return ")
    np.testing.assert_allclose(run(zero_state_feeds(model, ids[None]))["y"], model.predict(ids[None]),
                               rtol=1e-5, atol=1e-5)
    # Greedy generation, one token per ONNX Runtime call, the states carried through its inputs.
    feeds, generated = zero_state_feeds(model, ids[None]), []
    for _ in range(120):
        outputs = run(feeds)
        token = int(np.argmax(outputs["y"][0, -1]))
        generated.append(token)
        feeds = {"x": np.array([[token]]), **{name.replace("n_", "0_"): value for name, value in outputs.items()
                                              if name != "y"}}
    assert model.vocabulary.decode(generated) == model.generate(model.vocabulary.decode(ids), 120, temperature=0)


def zero_state_feeds(model, x):
    feeds = {"x": x}
    for index, layer in recurrent_layers(model):
        shape = (layer.num_layers * (2 if layer.bidirectional else 1), len(x), layer.hidden_size)
        for name in "hc"[:2 if isinstance(layer, LSTM) else 1]:
            feeds[f"{name}0_{index}"] = np.zeros(shape, model.dtype)
    return feeds


@pytest.mark.parametrize("seed", range(16))
def test_onnx_runtime_computes_what_a_seq2seq_predicts(seed):
    rng = np.random.default_rng(200 + seed)
    kind = [RNN, LSTM, GRU][seed % 3]
    encoder_layers, bidirectional = int(rng.integers(1, 3)), bool(seed // 3 % 2)
    decoder_layers = int(rng.integers(1, encoder_layers + 1))
    directions = "sum" if seed % 4 == 1 else "concat"
    hidden = int(rng.integers(1, 6))
    decoder_hidden = hidden * (2 if bidirectional and directions == "concat" else 1)
    source = [OneHot(CLASSES), Embedding(CLASSES, 4, seed=1), None][seed % 3]
    features = {OneHot: CLASSES, Embedding: 4, type(None): 3}[type(source)]
    model = fastrnn.Seq2Seq(encoder=kind(features, hidden, num_layers=encoder_layers, bidirectional=bidirectional,
                                         batch_first=True, seed=2),
                            decoder=kind(2, decoder_hidden, num_layers=decoder_layers, batch_first=True, seed=3),
                            head=Dense(decoder_hidden, CLASSES, seed=4), source_embedding=source, directions=directions)
    proto = fastrnn.onnx.to_model(model, lengths=True)
    for batch in (1, 17):
        steps = int(rng.integers(1, 7))
        x = rng.integers(0, CLASSES, (batch, steps)) if source else rng.standard_normal((batch, steps, 3))
        x = x.astype(np.float32) if source is None else x
        lengths = rng.integers(1, steps + 1, batch)
        got = run_in_runtime(proto, {"x": x, "lengths": lengths})
        np.testing.assert_allclose(got["y"], model.predict(x, lengths), rtol=1e-5, atol=1e-5)


def test_a_seq2seq_that_feeds_its_outputs_back_is_refused_by_name(tmp_path):
    model = fastrnn.Seq2Seq(encoder=LSTM(CLASSES, 4, batch_first=True), decoder=LSTM(CLASSES, 4, batch_first=True),
                            head=Dense(4, CLASSES), source_embedding=OneHot(CLASSES), target_embedding=OneHot(CLASSES),
                            decoder_inputs="teacher")
    with pytest.raises(ValueError, match=r"Seq2Seq\(decoder_inputs='teacher'\) cannot be exported to ONNX"):
        fastrnn.onnx.export(model, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()

"""fastrnn.onnx: a trained Sequential or Seq2Seq as an ONNX model, for ONNX Runtime and other ONNX
back ends (the onnx extra: pip install "fastrnn[onnx]").

    import fastrnn.onnx
    fastrnn.onnx.export(model, "model.onnx", lengths=True, states=True)

The graph computes model.predict: recurrent layers become ONNX's RNN, LSTM and GRU operators
(one per layer of a stack, both directions in one), with PyTorch's gate orders converted to
ONNX's (LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h), fastrnn's GRU formulation kept by
linear_before_reset, and B = [W_b, R_b]. Batch and time are dynamic. Inputs and outputs:
  x        (batch, steps) int64 ids, or (batch, steps, features) in the model's dtype;
  lengths  with lengths=True: (batch,) int64, each sequence's valid steps (the operators'
           sequence_lens): as model.predict(x, lengths);
  h0_<i>, c0_<i>   with states=True, for the recurrent layer model.layers[i]: its initial
           state (num_layers * directions, batch, hidden_size), c0 for an LSTM;
  y        the model's output;
  hn_<i>, cn_<i>   with states=True: the final states, to feed back as h0/c0 (one step at a
           time, for generation).
Dropout is the identity, as in predict. A Seq2Seq exports with decoder_inputs="zeros" (the
decoder's output does not feed back): x, lengths -> y, the decoder running as many steps as the
source has (predict's default).
"""

from typing import NamedTuple, Optional

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    raise ImportError('fastrnn.onnx needs the onnx package: pip install "fastrnn[onnx]" (or pip install onnx)') \
        from None

from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import Sequential
from .recurrent import GRU, LSTM, RNN
from .seq2seq import Seq2Seq

__all__ = ["OPSET", "export", "to_model"]

OPSET = 17   # the default domain's version the graph uses (ONNX Runtime 1.14 and later run it)

# PyTorch's gate blocks in the order ONNX's operators take them.
GATE_ORDER = {RNN: [0], LSTM: [0, 3, 1, 2], GRU: [1, 0, 2]}
ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def __dir__():   # dir() and editors' completion: the public names only
    return __all__


def export(model, path, *, lengths=False, states=False):
    """Writes `model` (a fastrnn.Sequential or Seq2Seq) to `path` as an ONNX model; returns the
    onnx.ModelProto. lengths=True adds the lengths input, states=True the recurrent layers'
    initial and final states (see the module's documentation). The graph is checked by
    onnx.checker with full checking and shape inference before anything is written; a layer
    that cannot be exported raises ValueError naming it, and nothing is written."""
    proto = to_model(model, lengths=lengths, states=states)
    onnx.save(proto, path)
    return proto


def to_model(model, *, lengths=False, states=False):
    """export's ONNX model, checked, without writing it."""
    if isinstance(model, Sequential):
        graph = _sequential(model, lengths, states)
    elif isinstance(model, Seq2Seq):
        graph = _seq2seq(model, lengths, states)
    else:
        raise TypeError(f"model: expected a fastrnn.Sequential or Seq2Seq, got {type(model).__name__}")
    proto = graph.model(f"fastrnn {type(model).__name__}")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _sequential(model, lengths, states):
    graph = _Graph(model.dtype)
    first = model.layers[0]
    x, lengths = _inputs(graph, model.input_ids() is not None, getattr(first, "in_features", None) or
                         getattr(first, "input_size", None), lengths)
    features = None   # of x's last axis; None for ids
    for index, layer in enumerate(model.layers):
        exporter = _EXPORTERS.get(type(layer))
        if exporter is None:
            raise ValueError(f"layers[{index}]: {layer!r} cannot be exported to ONNX (fastrnn.onnx exports "
                             f"{', '.join(cls.__name__ for cls in _EXPORTERS)})")
        x = exporter(graph, layer, x, _Call(index, features, lengths, states))
        features = layer.output_features(features)
    graph.output(x, "y")
    return graph


def _seq2seq(model, lengths, states):
    """Seq2Seq.predict's graph: the encoder, the bridge, the decoder over zeros for as many steps
    as the source has, the head."""
    if states:
        raise ValueError("states: a Seq2Seq's states stay inside the graph (the encoder's final state starts "
                         "the decoder); export it without states=True")
    if model.decoder_inputs != "zeros":
        raise ValueError(f"Seq2Seq(decoder_inputs={model.decoder_inputs!r}) cannot be exported to ONNX: its decoder "
                         "takes its own outputs back one step at a time, a loop fastrnn.onnx does not write; "
                         "decoder_inputs='zeros' exports")
    graph = _Graph(model.dtype)
    source_embedding = model.source_embedding
    x, lengths = _inputs(graph, source_embedding is not None, model.encoder.input_size, lengths)
    source = x if source_embedding is None else \
        _EXPORTERS[type(source_embedding)](graph, source_embedding, x, _Call(0, None, lengths, False))
    _, finals = _recurrent_stack(graph, model.encoder, source, lengths, {})
    initial = {part: _bridge(graph, model, final) for part, final in finals.items()}
    # The decoder's inputs: zeros (batch, steps of x, decoder input size).
    batch_and_steps = graph.node("Slice", [graph.node("Shape", [x]), graph.integers([0]), graph.integers([2])])
    shape = graph.node("Concat", [batch_and_steps, graph.integers([model.decoder.input_size])], axis=0)
    zeros = graph.node("ConstantOfShape", [shape], value=numpy_helper.from_array(np.zeros(1, graph.dtype)))
    decoded, _ = _recurrent_stack(graph, model.decoder, zeros, None, initial)
    graph.output(_dense(graph, model.head, decoded, None), "y")
    return graph


def _bridge(graph, model, final):
    """Seq2Seq's bridge (see fastrnn.seq2seq) in the graph: the encoder's final state part
    (layers * directions, batch, hidden) -> the decoder's initial one."""
    encoder, decoder = model.encoder, model.decoder
    directions, hidden = _directions(encoder), encoder.hidden_size
    top = graph.node("Slice", [final, graph.integers([(encoder.num_layers - decoder.num_layers) * directions]),
                               graph.integers([encoder.num_layers * directions]), graph.integers([0])])
    if directions == 1:
        return top
    by_direction = graph.node("Reshape", [top, graph.integers([decoder.num_layers, directions, -1, hidden])])
    if model.directions == "sum":
        return graph.node("ReduceSum", [by_direction, graph.integers([1])], keepdims=0)
    side_by_side = graph.node("Transpose", [by_direction], perm=[0, 2, 1, 3])
    return graph.node("Reshape", [side_by_side, graph.integers([0, 0, directions * hidden])])


def _inputs(graph, ids, features, lengths):
    """The graph's input x, ids (batch, steps) or (batch, steps, features), and its lengths
    input (or None)."""
    x = graph.input("x", TensorProto.INT64 if ids else graph.float_type,
                    ["batch", "steps"] if ids else ["batch", "steps", features])
    return x, graph.input("lengths", TensorProto.INT64, ["batch"]) if lengths else None


class _Call(NamedTuple):
    """What an exporter needs besides its layer and input."""
    index: int                 # the layer's index in model.layers
    features: Optional[int]    # of the input's last axis (None: ids)
    lengths: Optional[str]     # the lengths input, if any
    states: bool               # whether recurrent layers take and give their states


class _Graph:
    """Nodes and initializers in the making, with unique names."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.float_type = ONNX_TYPES[self.dtype]
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, name, element_type, shape):
        self.inputs.append(helper.make_tensor_value_info(name, element_type, shape))
        return name

    def output(self, value, name):
        """Names `value` `name` among the graph's outputs (its shape left to inference)."""
        self.node("Identity", [value], name=name)
        self.outputs.append(helper.make_tensor_value_info(name, self.float_type, None))

    def constant(self, array, hint, dtype=None):
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype or self.dtype), name))
        return name

    def integers(self, values, hint="shape"):
        return self.constant(np.asarray(values, np.int64), hint, np.int64)

    def node(self, op, inputs, outputs=1, name=None, **attributes):
        """Adds op(inputs) and returns its output name (or names, for outputs > 1)."""
        names = [name] if name else [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def model(self, name):
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="fastrnn")
        # Fill in every value's shape, so a back end need not infer them; strict: fail on mistakes.
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)


def _embedding(graph, layer, ids, call):
    return graph.node("Gather", [graph.constant(layer.params["weight"], "embedding"), ids], axis=0)


def _one_hot(graph, layer, ids, call):
    # ONNX Runtime's OneHot makes float32 values, cast to the model's dtype (0 and 1 are exact in
    # either; in float32 the cast is a no-op, so both dtypes' graphs have the same nodes).
    values = graph.constant([0, 1], "one_hot_values", np.float32)
    one_hot = graph.node("OneHot", [ids, graph.integers([layer.num_classes], "depth"), values], axis=-1)
    return graph.node("Cast", [one_hot], to=graph.float_type)


def _dense(graph, layer, x, call):
    y = graph.node("MatMul", [x, graph.constant(layer.params["weight"].T, "weight")])
    return graph.node("Add", [y, graph.constant(layer.params["bias"], "bias")]) if layer.bias else y


def _elementwise(op):
    return lambda graph, layer, x, call: graph.node(op, [x])


def _identity(graph, layer, x, call):
    return x


def _last_step(graph, layer, x, call):
    """x (batch, steps, features) -> each sequence's last valid step (batch, features); after a
    bidirectional layer the reverse half comes from step 0, where that direction ends."""
    if call.lengths is None:
        last = graph.node("Gather", [x, graph.integers(-1, "last")], axis=1)
    else:
        steps = graph.node("Sub", [call.lengths, graph.integers(1, "one")])
        last = graph.node("GatherND", [x, graph.node("Unsqueeze", [steps, graph.integers([1], "axis")])],
                          batch_dims=1)
    if not layer.bidirectional:
        return last
    first = graph.node("Gather", [x, graph.integers(0, "first")], axis=1)
    half = call.features // 2
    forward = graph.node("Slice", [last, graph.integers([0]), graph.integers([half]), graph.integers([1])])
    reverse = graph.node("Slice", [first, graph.integers([half]), graph.integers([2 * half]), graph.integers([1])])
    return graph.node("Concat", [forward, reverse], axis=1)


def _recurrent(graph, layer, x, call):
    parts = _state_parts(layer)
    initial = {}
    if call.states:
        shape = [layer.num_layers * _directions(layer), "batch", layer.hidden_size]
        initial = {part: graph.input(f"{part}0_{call.index}", graph.float_type, shape) for part in parts}
    sequence, finals = _recurrent_stack(graph, layer, x, call.lengths, initial)
    for part in parts if call.states else ():
        graph.output(finals[part], f"{part}n_{call.index}")
    return sequence


def _directions(layer):
    return 2 if layer.bidirectional else 1


def _state_parts(layer):
    return ("h", "c") if isinstance(layer, LSTM) else ("h",)


def _recurrent_stack(graph, layer, x, lengths, initial):
    """A recurrent layer as num_layers ONNX operators, time-major inside: x (batch, steps,
    features) -> (the output (batch, steps, directions * hidden), its final state parts by name,
    each (num_layers * directions, batch, hidden)). `initial` names the initial state parts given
    (the others are zeros); `lengths` the lengths input, or None."""
    directions, hidden, parts = _directions(layer), layer.hidden_size, _state_parts(layer)
    sequence_lens = "" if lengths is None else graph.node("Cast", [lengths], to=TensorProto.INT32)
    attributes = {"hidden_size": hidden, "direction": "bidirectional" if layer.bidirectional else "forward"}
    if isinstance(layer, RNN):
        attributes["activations"] = [layer.nonlinearity.capitalize()] * directions
    if isinstance(layer, GRU):
        attributes["linear_before_reset"] = int(layer.linear_before_reset)
    sequence = graph.node("Transpose", [x], perm=[1, 0, 2])
    finals = {part: [] for part in parts}
    for depth in range(layer.num_layers):
        weights, recurrent_weights, biases = _stacked_parameters(layer, depth)
        inputs = [sequence, graph.constant(weights, "W"), graph.constant(recurrent_weights, "R"),
                  graph.constant(biases, "B") if layer.bias else "", sequence_lens]
        for part in parts:
            inputs.append(graph.node("Slice", [initial[part], graph.integers([depth * directions]),
                                               graph.integers([(depth + 1) * directions]), graph.integers([0])])
                          if part in initial else "")
        outputs = graph.node(type(layer).__name__, inputs, outputs=1 + len(parts), **attributes)
        for part, final in zip(parts, outputs[1:]):
            finals[part].append(final)
        # Y (steps, directions, batch, hidden) -> (steps, batch, directions * hidden)
        y = graph.node("Transpose", [outputs[0]], perm=[0, 2, 1, 3])
        sequence = graph.node("Reshape", [y, graph.integers([0, 0, directions * hidden])])
    finals = {part: values[0] if len(values) == 1 else graph.node("Concat", values, axis=0)
              for part, values in finals.items()}
    return graph.node("Transpose", [sequence], perm=[1, 0, 2]), finals


def _stacked_parameters(layer, depth):
    """W (D, G*H, in), R (D, G*H, H) and B (D, 2*G*H) of layer `depth`, directions stacked, gate
    blocks in ONNX's order."""
    order = GATE_ORDER[type(layer)]
    hidden = layer.hidden_size

    def reordered(tensor):
        return np.concatenate([tensor[gate * hidden:(gate + 1) * hidden] for gate in order])

    stacks = ([], [], [])
    for suffix in ["", "_reverse"][:2 if layer.bidirectional else 1]:
        params = layer.params
        stacks[0].append(reordered(params[f"weight_ih_l{depth}{suffix}"]))
        stacks[1].append(reordered(params[f"weight_hh_l{depth}{suffix}"]))
        if layer.bias:
            stacks[2].append(np.concatenate([reordered(params[f"bias_ih_l{depth}{suffix}"]),
                                             reordered(params[f"bias_hh_l{depth}{suffix}"])]))
    return tuple(np.stack(stack) if stack else None for stack in stacks)


_EXPORTERS = {Embedding: _embedding, OneHot: _one_hot, Dense: _dense, ReLU: _elementwise("Relu"),
              Tanh: _elementwise("Tanh"), Dropout: _identity, LastStep: _last_step,
              RNN: _recurrent, LSTM: _recurrent, GRU: _recurrent}

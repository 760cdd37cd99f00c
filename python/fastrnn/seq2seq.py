"""Seq2Seq: an encoder-decoder Model. The encoder reads the source; its final states, bridged,
are the decoder's initial states; the decoder emits the output one step at a time.

    model = Seq2Seq(encoder=LSTM(10, 128, num_layers=2, batch_first=True),
                    decoder=LSTM(1, 128, num_layers=2, batch_first=True),
                    head=Dense(128, 10), source_embedding=OneHot(10))

The bridge, from the encoder's final state (num_layers * directions, N, hidden) to the decoder's
initial state (decoder num_layers, N, decoder hidden):
- layers: the decoder takes the top decoder.num_layers encoder layers' states, in order (so it
  may have fewer layers than the encoder, never more);
- directions: a bidirectional encoder's two directions of a layer are concatenated, forward
  first (directions="concat": decoder hidden = 2 * encoder hidden) or added ("sum": decoder
  hidden = encoder hidden);
- state kinds: an LSTM pair passes (h, c); RNN and GRU pass h, to an RNN or a GRU. An LSTM and a
  non-LSTM do not pair.
A pair that does not fit raises ValueError at construction, naming both sides.

The decoder's input at each step (decoder_inputs):
- "zeros": zeros, as in the course's sorting model: the output is a function of the state alone;
- "teacher": the previous target (teacher forcing; `start_token`, or zeros for feature targets,
  at the first step) while targets are given (fit, evaluate); without targets (predict, decode)
  its own previous output;
- "previous": its own previous output, in training too (no gradient flows through that choice).
Class outputs go back in through `target_embedding` (OneHot or Embedding, ids = the head's
outputs) as the chosen id: the argmax, or a sample in decode(temperature > 0). Without a
target_embedding the outputs are features, fed back as they are (head.out_features =
decoder.input_size).

Data is batch-first: x (N, T) ids (with a source_embedding) or (N, T, F) features; targets
(N, T_out) ids or (N, T_out, F). `lengths` gives the valid steps of each source, whose final
state is the one at its last valid step; it also marks the output's valid steps (steps past a
length weigh 0 in the loss), as in transforms of a sequence into one as long, such as sorting.
The output has the targets' number of steps, or without targets `steps` (default: the source's).
"""

import reprlib

import numpy as np

from .generation import sample_ids
from .layers import Dense, Embedding, OneHot
from .model import build_planned, check_planned_arrays, input_ids_of, layer_entry, planned_layer
from .base import class_ids, positive_int, real_number
from .recurrent import LSTM, _Recurrent
from .training import Model, checked_model_layers, common_dtype, valid_step_weights

DECODER_INPUTS = ("zeros", "teacher", "previous")
DIRECTIONS = ("concat", "sum")
LAYER_ARGUMENTS = ("encoder", "decoder", "head", "source_embedding", "target_embedding")


class Seq2Seq(Model):
    """Encoder-decoder; see the module's documentation. A Model: compile, fit, evaluate,
    predict, save and fastrnn.load work as for a Sequential; decode gives ids."""

    def __init__(self, encoder, decoder, head, source_embedding=None, target_embedding=None, decoder_inputs="zeros",
                 directions="concat", start_token=0, seed=None):
        if decoder_inputs not in DECODER_INPUTS:
            raise ValueError(f"decoder_inputs: expected one of {DECODER_INPUTS}, got {decoder_inputs!r}")
        if directions not in DIRECTIONS:
            raise ValueError(f"directions: expected one of {DIRECTIONS}, got {directions!r}")
        if isinstance(start_token, (bool, np.bool_)) or not isinstance(start_token, (int, np.integer)) or \
                start_token < 0:
            raise ValueError(f"start_token: expected a non-negative integer id, got {start_token!r}")
        self.decoder_inputs, self.directions, self.start_token = decoder_inputs, directions, int(start_token)
        layers = {"source_embedding": source_embedding, "encoder": encoder, "target_embedding": target_embedding,
                  "decoder": decoder, "head": head}
        super().__init__({name: layer for name, layer in layers.items() if layer is not None}, seed)
        self.source_embedding, self.target_embedding = source_embedding, target_embedding

    def _check_layers(self, named):
        checked_model_layers(named)
        encoder, decoder, head = named.get("encoder"), named.get("decoder"), named.get("head")
        for name, layer in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(layer, _Recurrent) or not layer.recurrent or not layer.batch_first:
                raise TypeError(f"{name}: expected an RNN, LSTM or GRU built with batch_first=True, got {layer!r}")
        if not isinstance(head, Dense):
            raise TypeError(f"head: expected a Dense layer (the decoder's output -> each step's output), got {head!r}")
        for name in ("source_embedding", "target_embedding"):
            if name in named and not isinstance(named[name], (OneHot, Embedding)):
                raise TypeError(f"{name}: expected None, OneHot or Embedding, got {named[name]!r}")
        self._check_bridge(encoder, decoder)
        _check_feeds(named.get("source_embedding"), encoder, "source_embedding", "encoder")
        _check_feeds(decoder, head, "decoder", "head")
        self._check_decoder_inputs(named.get("target_embedding"), decoder, head)
        return common_dtype(named.values())

    def _check_bridge(self, encoder, decoder):
        pair = f"encoder {encoder!r} and decoder {decoder!r}"
        if decoder.bidirectional:
            raise ValueError(f"decoder: {decoder!r} is bidirectional, but a decoder emits one step at a time")
        if isinstance(encoder, LSTM) != isinstance(decoder, LSTM):
            raise ValueError(f"{pair}: an LSTM's state is (h, c), the other's h alone; pair an LSTM with an LSTM")
        if decoder.num_layers > encoder.num_layers:
            raise ValueError(f"{pair}: the decoder's {decoder.num_layers} layers take the top encoder layers' states, "
                             f"but the encoder has {encoder.num_layers}")
        bridged = encoder.hidden_size * (2 if encoder.bidirectional and self.directions == "concat" else 1)
        if decoder.hidden_size != bridged:
            how = f" (directions={self.directions!r})" if encoder.bidirectional else ""
            raise ValueError(f"{pair}: the encoder's states{how} have {bridged} features, the decoder's hidden_size "
                             f"is {decoder.hidden_size}")

    def _check_decoder_inputs(self, target_embedding, decoder, head):
        if self.decoder_inputs == "zeros":
            if target_embedding is not None:
                raise ValueError("target_embedding: decoder_inputs='zeros' feeds the decoder no targets; pass None")
            return
        if target_embedding is None:   # feature outputs go back in as they are
            if head.out_features != decoder.input_size:
                raise ValueError(f"head: its {head.out_features} outputs go back into decoder {decoder!r} "
                                 f"(decoder_inputs={self.decoder_inputs!r}, no target_embedding), which takes "
                                 f"{decoder.input_size}")
            return
        _check_feeds(target_embedding, decoder, "target_embedding", "decoder")
        ids = input_ids_of(target_embedding)
        if head.out_features != ids:
            raise ValueError(f"head: its {head.out_features} outputs are the ids target_embedding "
                             f"{target_embedding!r} takes back, {ids}")
        if self.start_token >= ids:
            raise ValueError(f"start_token: expected an id in [0, {ids}), got {self.start_token}")

    # ------------------------------------------------------------------ the Model protocol

    def forward(self, x, lengths=None, targets=None, steps=None):
        """The output (N, steps, head outputs) for a batch of sources x: `steps` is the targets'
        number of steps, or without targets the given steps (default: x's). In training mode
        the activations are kept for backward()."""
        source = x if self.source_embedding is None else self.source_embedding(x)
        _, final = self.encoder(source, None, lengths)
        state = self._bridge(final)
        steps = targets.shape[1] if targets is not None else positive_int(steps or x.shape[1], "steps")
        if self.decoder_inputs == "zeros" or (self.decoder_inputs == "teacher" and targets is not None):
            inputs = self._teacher_inputs(targets, len(x), steps)
            decoded, _ = self.decoder(inputs, state)
            self._keep_path("sequence", source.shape, inputs)
            return self.head(decoded)
        return self._feed_back(state, len(x), steps, temperature=0, rng=None, source_shape=source.shape)[0]

    def backward(self, doutput):
        path, source_shape, fed = self._take_kept()
        ddecoded = self.head.backward(doutput)
        embedding_grad = self.target_embedding is not None and self.target_embedding._parameters is not None
        if path == "sequence":
            dinputs, dstate = self.decoder.backward(ddecoded, None, input_grad=embedding_grad)
        else:   # one recorded decoder step per output step, the last first
            dstate, dinputs = None, np.empty((*ddecoded.shape[:2], self.decoder.input_size), ddecoded.dtype)
            for step in reversed(range(ddecoded.shape[1])):
                dinput, dstate = self.decoder.backward_step(ddecoded[:, step], dstate, embedding_grad)
                if embedding_grad:
                    dinputs[:, step] = dinput
        if embedding_grad and fed is not None:
            self.target_embedding.backward(dinputs)
        source_grad = self.source_embedding is not None and self.source_embedding._parameters is not None
        dsource, _ = self.encoder.backward(np.zeros((*source_shape[:2], self.encoder.output_features(None)),
                                                    self.dtype),
                                           self._bridge_backward(dstate), input_grad=source_grad, state_grad=False)
        if source_grad:
            self.source_embedding.backward(dsource)

    def _target_weights(self, output, lengths):
        return valid_step_weights(output, lengths)

    # ------------------------------------------------------------------ decoding

    def predict(self, x, lengths=None, batch_size=32, steps=None):
        """The outputs (N, steps, head outputs) for sources x, in eval mode: logits for class
        outputs. The decoder is fed as in forward without targets (greedy choices)."""
        return self._in_batches(lambda x, lengths: self.forward(x, lengths, steps=steps), x, lengths, batch_size)

    def decode(self, x, lengths=None, steps=None, temperature=0.0, seed=None, batch_size=32):
        """Ids (N, steps) for sources x, the head's outputs taken as logits: the argmax at each step
        (temperature 0, greedy) or drawn from softmax(logits / temperature). A decoder fed its
        outputs gets each chosen id back. seed: a generator for this call (default: the model's)."""
        temperature = real_number(temperature, "temperature", 0)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        if self.decoder_inputs == "zeros":   # the outputs do not feed back: choose after one forward
            return self._in_batches(lambda x, lengths: sample_ids(self.forward(x, lengths, steps=steps), temperature,
                                                                  rng=rng), x, lengths, batch_size)
        if self.target_embedding is None:
            raise ValueError("decode: the model's outputs are features fed back as they are, not ids; use predict")

        def decode_batch(x, lengths):
            source = x if self.source_embedding is None else self.source_embedding(x)
            _, final = self.encoder(source, None, lengths)
            return self._feed_back(self._bridge(final), len(x), positive_int(steps or x.shape[1], "steps"),
                                   temperature, rng, source.shape)[1]
        return self._in_batches(decode_batch, x, lengths, batch_size)

    def _feed_back(self, state, batch, steps, temperature, rng, source_shape):
        """(outputs (N, steps, head outputs), the ids chosen or None) of the decoder run one step
        at a time, each step fed the previous one's output (its chosen id through the
        target_embedding, or the features themselves). In training mode the steps are recorded
        for backward."""
        embedding = self.target_embedding
        previous = np.full(batch, self.start_token) if embedding is not None else \
            np.zeros((batch, self.decoder.input_size), self.dtype)
        fed, decoded = [], []
        for _ in range(steps):
            fed.append(previous)
            output, state = self.decoder.step(previous if embedding is None else embedding(previous), state)
            decoded.append(output)
            logits = self.head(output)
            previous = logits if embedding is None else sample_ids(logits, temperature, rng=rng)
        chosen = None if embedding is None else np.stack(fed[1:] + [previous], axis=1)
        fed = np.stack(fed, axis=1)
        if embedding is not None:
            embedding(fed)   # again on all steps, so its backward sees them all
        self._keep_path("steps", source_shape, fed)
        return self.head(np.stack(decoded, axis=1)), chosen   # the head again on all steps, for its backward

    def _teacher_inputs(self, targets, batch, steps):
        """The decoder's inputs (N, steps, input size): zeros, or the targets one step later."""
        if self.decoder_inputs == "zeros":
            return np.zeros((batch, steps, self.decoder.input_size), self.dtype)
        if self.target_embedding is None:
            start = np.zeros((batch, 1, self.decoder.input_size), self.dtype)
            return np.concatenate([start, targets[:, :-1]], axis=1).astype(self.dtype)
        ids = class_ids(targets, input_ids_of(self.target_embedding), "y")
        return self.target_embedding(np.concatenate([np.full((batch, 1), self.start_token), ids[:, :-1]], axis=1))

    def _keep_path(self, path, source_shape, fed):
        """Keeps what backward needs besides the layers' own: which decoder path ran, the source's
        shape, and what the decoder was fed."""
        self._keep(path, source_shape, None if self.decoder_inputs == "zeros" else fed)

    # ------------------------------------------------------------------ the bridge

    def _bridge(self, final):
        """The decoder's initial state from the encoder's final one (see the module's rules)."""
        return _per_part(self._bridge_part, final)

    def _bridge_part(self, part):
        directions = 2 if self.encoder.bidirectional else 1
        batch, hidden = part.shape[1:]
        top = part[(self.encoder.num_layers - self.decoder.num_layers) * directions:].reshape(
            self.decoder.num_layers, directions, batch, hidden)
        if self.directions == "sum":
            return top.sum(axis=1)
        return top.transpose(0, 2, 1, 3).reshape(self.decoder.num_layers, batch, directions * hidden)

    def _bridge_backward(self, dstate):
        """The gradient w.r.t. the encoder's final state from the decoder's initial state's."""
        return _per_part(self._bridge_part_backward, dstate)

    def _bridge_part_backward(self, dpart):
        directions = 2 if self.encoder.bidirectional else 1
        layers, batch = self.encoder.num_layers, dpart.shape[1]
        hidden = self.encoder.hidden_size
        full = np.zeros((layers, directions, batch, hidden), dpart.dtype)
        if self.directions == "sum":
            full[layers - self.decoder.num_layers:] = dpart[:, None]
        else:
            full[layers - self.decoder.num_layers:] = dpart.reshape(-1, batch, directions, hidden).transpose(0, 2, 1, 3)
        return full.reshape(layers * directions, batch, hidden)

    # ------------------------------------------------------------------ saving

    def get_config(self):
        layers = {name: None if getattr(self, name) is None else layer_entry(getattr(self, name), name)
                  for name in LAYER_ARGUMENTS}
        return {**layers, "decoder_inputs": self.decoder_inputs, "directions": self.directions,
                "start_token": self.start_token}

    @classmethod
    def from_config(cls, config, arrays=None):
        """The Seq2Seq get_config() described, its layers' arguments, array count and memory
        checked before any is allocated; its parameters are zeros."""
        if not isinstance(config, dict) or set(config) != {*LAYER_ARGUMENTS, "decoder_inputs", "directions",
                                                           "start_token"}:
            raise ValueError(f"config: expected the keys {sorted(LAYER_ARGUMENTS)} and decoder_inputs, directions, "
                             f"start_token, got {reprlib.repr(config)}")
        layers = {name: None if config[name] is None else planned_layer(config[name], name)
                  for name in LAYER_ARGUMENTS}
        planned = [layer for layer in layers.values() if layer is not None]
        check_planned_arrays(planned, arrays)
        build_planned(planned, common_dtype(planned), "Seq2Seq")
        return cls(**layers, decoder_inputs=config["decoder_inputs"], directions=config["directions"],
                   start_token=config["start_token"])


def _per_part(function, state):
    """function applied to each part of a recurrent state: h, or each of an LSTM's (h, c)."""
    return tuple(function(part) for part in state) if isinstance(state, tuple) else function(state)


def _check_feeds(first, second, first_name, second_name):
    """ValueError naming both when `first`'s output cannot be `second`'s input."""
    if first is None:
        return
    try:
        second.output_features(first.output_features(None))
    except ValueError as error:
        raise ValueError(f"{first_name} {first!r} feeds {second_name} {second!r}, which {error}") from None

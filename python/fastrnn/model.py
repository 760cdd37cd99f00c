"""Sequential: a stack of layers applied in order, a Model (fit, evaluate, predict...) with
stateful truncated BPTT for long sequences and fast sampling from character models.

Data is batch-first: x (N, T) integer ids or (N, T, F) features; per-step targets (N, T) /
(N, T, F), or (N,) / (N, F) after LastStep; `lengths` (N,) marks each sequence's valid steps
(the recurrent layers and LastStep respect it, and padded steps weigh 0 in the loss).
"""

import reprlib

import numpy as np

from . import generation
from .base import check_parameter_memory
from .data import Vocabulary
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .recurrent import GRU, LSTM, RNN
from .training import Model, checked_model_layers, common_dtype, valid_step_weights

LAYER_CLASSES = {cls.__name__: cls for cls in (Embedding, OneHot, Dense, ReLU, Tanh, Dropout, LastStep, RNN, LSTM, GRU)}


class Sequential(Model):
    """Layers applied in order; a Model, and itself a Layer (forward, backward, params,
    state_dict).

    All parameters live in one model-wide flat buffer (the layers' `params` become views of
    it), so an optimizer step is a handful of NumPy calls. Recurrent layers must be
    batch_first=True. `seed` drives the model's own randomness: shuffling, validation split
    and sampling; layers take their own seeds for initialisation and dropout masks.
    `vocabulary` (a fastrnn.data.Vocabulary, saved with the model) lets generate take text; it
    must have one token per id the first layer (OneHot or Embedding) takes.
    """

    def __init__(self, layers, seed=None, vocabulary=None):
        self._vocabulary = vocabulary   # checked with the layers, before their parameters move
        super().__init__(list(layers), seed)
        self._first_trainable = next((index for index, layer in enumerate(self.layers) if layer._parameters),
                                     len(self.layers))

    @property
    def vocabulary(self):
        """The Vocabulary generate's text goes through, or None; an assigned one is checked like
        the constructor's."""
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, vocabulary):
        self._vocabulary = _checked_vocabulary(vocabulary, self.layers[0])

    def input_ids(self):
        """How many ids the first layer takes (OneHot, Embedding), or None for other inputs."""
        return input_ids_of(self.layers[0])

    def _check_layers(self, named):
        layers, dtype, self.output_size = checked_layers(named.values())
        self._vocabulary = _checked_vocabulary(self._vocabulary, layers[0])
        return dtype

    # ------------------------------------------------------------------ the Model protocol

    def forward(self, x, lengths=None, targets=None):
        """The output for a batch x, from zero states (targets are not read). In training mode the
        activations are kept for backward()."""
        return self.run(x, lengths, self.fresh_states())

    def run(self, x, lengths, states, first=0):
        """Forward through the layers from layers[first]; `states` holds one entry per layer, the
        initial state of each recurrent layer, and is updated in place with their final states."""
        lengths = None if lengths is None else np.asarray(lengths)
        for index in range(first, len(self.layers)):
            layer = self.layers[index]
            if layer.recurrent:
                x, states[index] = layer(x, states[index], lengths)
            elif layer.uses_lengths:
                x = layer(x, lengths)
            else:
                x = layer(x)
        return x

    def backward(self, doutput):
        """Backprop of d loss / d output through the last training-mode forward, ADDING into
        `grads`. It stops at the first layer with parameters: no input gradient is returned."""
        grad = doutput
        for index in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            layer = self.layers[index]
            input_grad = index > self._first_trainable
            if layer.recurrent:
                grad, _ = layer.backward(grad, input_grad=input_grad, state_grad=False)
            elif input_grad:
                grad = layer.backward(grad)
            else:
                layer.backward(grad, input_grad=False)

    def _forward_batch(self, x, lengths, y, stateful):
        # stateful: from the states the previous stateful batch left (zeros after reset_states()),
        # kept for the next; no gradient flows across.
        return self.run(x, lengths, self._states if stateful else self.fresh_states())

    def _target_weights(self, output, lengths):
        return valid_step_weights(output, lengths)

    def fresh_states(self):
        """One None (zero initial state) per layer, the `states` argument of run."""
        return [None] * len(self.layers)

    def reset_states(self):
        """Forgets the states carried by stateful training: the next stateful step starts at zero."""
        self._states = self.fresh_states()

    def generate(self, prime, length, temperature=1.0, top_k=None, seed=None):
        return generation.generate(self, prime, length, temperature, top_k, seed)

    generate.__doc__ = generation.generate.__doc__

    # ------------------------------------------------------------------ saving

    def get_config(self):
        return {"layers": [layer_entry(layer, f"model.layers[{index}]") for index, layer in enumerate(self.layers)],
                "vocabulary": None if self.vocabulary is None else self.vocabulary.tokens}

    @classmethod
    def from_config(cls, config, arrays=None):
        """The Sequential get_config() described, checked whole (classes, arguments, feature
        sizes, memory, and against `arrays`, the parameter arrays a file holds) before any
        layer is allocated; its parameters are zeros."""
        entries, vocabulary = _checked_config(config)
        layers = [planned_layer(entry, f"layers[{index}]") for index, entry in enumerate(entries)]
        check_planned_arrays(layers, arrays)
        layers, dtype, _ = checked_layers(layers)
        build_planned(layers, dtype, f"Sequential of {len(layers)} layers")
        return cls(layers, vocabulary=None if vocabulary is None else Vocabulary(vocabulary))


def checked_layers(layers):
    """(layers as a list, their dtype, the model's output size or None) for a Sequential of
    `layers`, or TypeError/ValueError naming the layer: what any model checks (see
    training.checked_model_layers), and besides recurrent layers batch-first, and each layer
    taking the features its predecessor gives (checked at construction rather than in the first
    batch). A LastStep learns whether it follows a bidirectional layer. Only arguments are
    read, so from_config checks planned layers with it before allocating them."""
    layers = list(layers)
    checked_model_layers({str(index): layer for index, layer in enumerate(layers)})
    for index, layer in enumerate(layers):
        if layer.recurrent and not layer.batch_first:
            raise ValueError(f"layers[{index}]: {layer!r} must be built with batch_first=True: a Sequential's "
                             "data is batch-first, (batch, steps, features)")
    dtype = common_dtype(layers)
    features = None   # unknown: the data decides
    directions = False   # whether the features are a bidirectional layer's two directions
    last_steps = []
    for index, layer in enumerate(layers):
        try:
            features = layer.output_features(features)
        except ValueError as error:
            raise ValueError(f"layers[{index}]: {layer!r} {error}") from None
        if isinstance(layer, LastStep):
            last_steps.append((layer, directions))
        directions = layer.bidirectional if layer.recurrent else directions and layer.elementwise
    for layer, directions in last_steps:   # every check passed: a rejected model changes no layer
        layer.follow(directions)
    return layers, dtype, features


def input_ids_of(layer):
    """How many ids a first layer takes (OneHot, Embedding), or None for other inputs."""
    if isinstance(layer, OneHot):
        return layer.num_classes
    if isinstance(layer, Embedding):
        return layer.num_embeddings
    return None


def _checked_vocabulary(vocabulary, first_layer):
    """The vocabulary of a Sequential starting with first_layer, or TypeError/ValueError."""
    if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
        raise TypeError(f"vocabulary: expected a fastrnn.data.Vocabulary, got {type(vocabulary).__name__}")
    input_ids = input_ids_of(first_layer)
    if vocabulary is not None and input_ids is not None and len(vocabulary) != input_ids:
        raise ValueError(f"vocabulary: expected {input_ids} tokens, one per id that layers[0] "
                         f"{first_layer!r} takes, got {len(vocabulary)}")
    return vocabulary


def _checked_config(config):
    """(layer entries, vocabulary tokens or None) of a Sequential's configuration, checked for
    the structure from_config relies on (each entry's own structure: see planned_layer)."""
    if not isinstance(config, dict) or set(config) - {"layers", "vocabulary"}:
        raise ValueError(f"config: expected {{'layers': [...], 'vocabulary': ...}}, got {reprlib.repr(config)}")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"layers: expected a list, got {reprlib.repr(layers)}")
    vocabulary = config.get("vocabulary")
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(token, str)
                                                                          for token in vocabulary)):
        raise ValueError(f"vocabulary: expected null or a list of strings, got {reprlib.repr(vocabulary)}")
    return layers, vocabulary


# ---------------------------------------------------------------------------------------------
# A layer in a saved configuration, for every model class: {"class": name, "config": arguments}
# ---------------------------------------------------------------------------------------------


def layer_entry(layer, where):
    """The configuration entry of one of fastrnn's layers, or ValueError naming `where`: load
    could not rebuild any other."""
    if LAYER_CLASSES.get(type(layer).__name__) is not type(layer):
        raise ValueError(f"{where}: {type(layer).__name__} is not a fastrnn layer; a saved model holds only "
                         f"{sorted(LAYER_CLASSES)}")
    return {"class": type(layer).__name__, "config": layer.get_config()}


def planned_layer(entry, where):
    """The planned layer (arguments checked, nothing allocated) of a configuration entry, or
    ValueError naming `where`."""
    if not (isinstance(entry, dict) and isinstance(entry.get("class"), str) and entry["class"] in LAYER_CLASSES
            and isinstance(entry.get("config"), dict)):
        raise ValueError(f"{where}: expected {{'class': one of {sorted(LAYER_CLASSES)}, 'config': {{arguments}}}}, "
                         f"got {reprlib.repr(entry)}")
    try:
        return LAYER_CLASSES[entry["class"]]._plan(entry["config"])
    except (TypeError, ValueError) as error:   # the constructors' argument errors
        raise ValueError(f"{where}: {entry['class']}: {error}") from None


def check_planned_arrays(layers, arrays):
    """ValueError when planned layers have more parameter arrays than a file's `arrays` (None:
    not from a file): such a file cannot load, and listing the parameters could cost more than
    the file (num_layers=10**7)."""
    needed = sum(_array_count(layer) for layer in layers)
    if arrays is not None and needed > arrays:
        raise ValueError(f"layers: their parameters are {needed} arrays, more than the file's {arrays}")


def build_planned(layers, dtype, owner):
    """Allocates planned layers' parameters (zeros), once their total fits in memory."""
    check_parameter_memory(sum(layer._parameter_size() for layer in layers), dtype, owner)
    for layer in layers:
        layer._build()


def _array_count(layer):
    """How many arrays a planned layer's parameters take, counted without listing them: a
    recurrent stack's list is as long as its num_layers."""
    if layer.recurrent:   # weight_ih, weight_hh[, bias_ih, bias_hh] per layer and direction
        return layer.num_layers * (2 if layer.bidirectional else 1) * (4 if layer.bias else 2)
    plan = layer._parameter_layout()
    return 0 if plan is None else len(plan[0])

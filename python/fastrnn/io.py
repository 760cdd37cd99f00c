"""Saving and loading models, and copying weights from and to Keras and PyTorch.

A saved model is one .npz file: the architecture as JSON (the layers' get_config() and the
vocabulary) plus one array per parameter, read back with allow_pickle=False. Keras weight lists
are in `layer.get_weights()` order; PyTorch state_dicts are matched by position.
"""

import json
import os

import numpy as np

from .data import Vocabulary
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import Sequential
from .recurrent import GRU, LSTM, RNN

FORMAT = "fastrnn.Sequential"
VERSION = 1
CONFIG_KEY = "__config__"   # the archive member holding the JSON configuration
LAYER_CLASSES = {cls.__name__: cls for cls in (Embedding, OneHot, Dense, ReLU, Tanh, Dropout, LastStep, RNN, LSTM, GRU)}


# ---------------------------------------------------------------------------------------------
# Save and load
# ---------------------------------------------------------------------------------------------


def save(model, path):
    """Writes a Sequential to `path` (replacing it only once the new file is complete)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a fastrnn.Sequential, got {type(model).__name__}")
    for index, layer in enumerate(model.layers):
        if LAYER_CLASSES.get(type(layer).__name__) is not type(layer):
            raise ValueError(f"model.layers[{index}]: {type(layer).__name__} is not a fastrnn layer, so load() "
                             "could not rebuild it")
    config = {"format": FORMAT, "version": VERSION, **model.get_config(),
              "vocabulary": None if model.vocabulary is None else model.vocabulary.tokens}
    temporary = f"{os.fspath(path)}.partial"
    with open(temporary, "wb") as file:
        np.savez(file, **{CONFIG_KEY: np.array(json.dumps(config))}, **model.state_dict())
    os.replace(temporary, path)


def load(path):
    """The Sequential saved at `path` (in training mode, not compiled). A file that is not a
    complete fastrnn model raises ValueError."""
    with open(path, "rb") as file:
        try:
            with np.load(file, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:   # damage shows as any of zip, zlib, CRC, header or pickle errors
            raise ValueError(f"{path}: not a readable fastrnn model file ({type(error).__name__}: {error})") from error
    try:
        config = json.loads(str(arrays.pop(CONFIG_KEY)))
        version = config.get("version")
        # JSON's true equals 1 in Python, so the version must be an int and not a bool.
        if config.get("format") != FORMAT or type(version) is not int or version != VERSION:
            raise ValueError(f"expected format {FORMAT!r} version {VERSION}, got {config.get('format')!r} "
                             f"version {version!r}")
        layers = [_build_layer(index, entry) for index, entry in enumerate(config["layers"])]
        vocabulary = None if config["vocabulary"] is None else Vocabulary(config["vocabulary"])
        try:
            model = Sequential(layers, vocabulary=vocabulary)
        except MemoryError:
            raise ValueError("not enough memory for the model's parameter buffer") from None
        model.load_state_dict(arrays)
    # RecursionError: JSON nested deeper than the parser's recursion limit.
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not a valid fastrnn model file ({type(error).__name__}: {error})") from error
    return model


def _build_layer(index, entry):
    """The layer a configuration entry {"class": ..., "config": {...}} describes; a crafted size
    too large to allocate raises ValueError, as any other invalid configuration does."""
    try:
        return LAYER_CLASSES[entry["class"]](**entry["config"])
    except MemoryError:
        raise ValueError(f"layers[{index}]: not enough memory to build {entry['class']}({entry['config']})") from None


# ---------------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------------


def to_keras(target):
    """The weights of a layer or Sequential as Keras' get_weights() lists them (copies).

    Dense: [kernel (in, out), bias]; Embedding: [embeddings]; SimpleRNN/LSTM/GRU: [kernel
    (in, gates*H), recurrent_kernel (H, gates*H), bias] per layer of a stack and per direction,
    forward first (Keras' Bidirectional order). Keras has one LSTM/SimpleRNN bias (ours
    b_ih + b_hh) and orders GRU gates z, r, h; GRU(linear_before_reset=True) is Keras'
    reset_after=True (bias (2, 3H): input, recurrent), False is reset_after=False (bias (3H,)).
    For a Sequential the lists are concatenated, as keras_model.get_weights() does.
    """
    return [np.array(array) for layer in _layers_with_parameters(target) for array in _layer_to_keras(layer)]


def from_keras(target, weights):
    """Copies a Keras weight list (see to_keras for the order and meaning) into a layer or
    Sequential. The Keras layers must use the same activations as ours (tanh/sigmoid for
    LSTM and GRU, SimpleRNN's activation equal to the RNN's nonlinearity)."""
    layers = _layers_with_parameters(target)
    per_layer = [_layer_to_keras(layer) for layer in layers]   # only their counts and shapes are used
    expected = [array for arrays in per_layer for array in arrays]
    weights = [np.asarray(array) for array in weights]
    if len(weights) != len(expected):
        raise ValueError(f"weights: expected {len(expected)} arrays of shapes {[a.shape for a in expected]}, got "
                         f"{len(weights)}")
    for index, (given, wanted) in enumerate(zip(weights, expected)):
        if given.shape != wanted.shape:
            raise ValueError(f"weights[{index}]: expected shape {wanted.shape}, got {given.shape}")
    position = 0
    for layer, arrays in zip(layers, per_layer):
        count = len(arrays)
        layer.load_state_dict(_layer_from_keras(layer, weights[position:position + count]))
        position += count


def _layers_with_parameters(target):
    layers = target.layers if isinstance(target, Sequential) else [target]
    return [layer for layer in layers if layer.params]


def _layer_to_keras(layer):
    params = layer.params
    if isinstance(layer, Dense):
        return [params["weight"].T] + ([params["bias"]] if layer.bias else [])
    if isinstance(layer, Embedding):
        return [params["weight"]]
    if layer.recurrent:
        arrays, order = [], _keras_gate_order(layer)
        for suffix in _recurrent_suffixes(layer):
            arrays += [order(params["weight_ih" + suffix]).T, order(params["weight_hh" + suffix]).T]
            if layer.bias:
                bias_ih, bias_hh = order(params["bias_ih" + suffix]), order(params["bias_hh" + suffix])
                arrays.append(np.stack([bias_ih, bias_hh]) if _two_biases(layer) else bias_ih + bias_hh)
        return arrays
    raise TypeError(f"{type(layer).__name__} has no Keras equivalent")


def _layer_from_keras(layer, arrays):
    """The state_dict of `layer` for its Keras arrays (shapes already checked)."""
    if isinstance(layer, Dense):
        return {"weight": arrays[0].T, **({"bias": arrays[1]} if layer.bias else {})}
    if isinstance(layer, Embedding):
        return {"weight": arrays[0]}
    state, items, order = {}, iter(arrays), _keras_gate_order(layer)
    for suffix in _recurrent_suffixes(layer):
        state["weight_ih" + suffix] = order(next(items).T)
        state["weight_hh" + suffix] = order(next(items).T)
        if layer.bias:
            bias = next(items)
            bias_ih, bias_hh = bias if _two_biases(layer) else (bias, np.zeros_like(bias))
            state["bias_ih" + suffix], state["bias_hh" + suffix] = order(bias_ih), order(bias_hh)
    return state


def _recurrent_suffixes(layer):
    """PyTorch's parameter name suffixes, one per layer of the stack and direction."""
    directions = ("", "_reverse") if layer.bidirectional else ("",)
    return [f"_l{index}{direction}" for index in range(layer.num_layers) for direction in directions]


def _keras_gate_order(layer):
    """Rows of a gate-stacked tensor from our order to Keras' (and back: the swap is its own
    inverse). Only GRU differs: ours r, z, n; Keras z, r, h."""
    if not isinstance(layer, GRU):
        return lambda array: array
    hidden = layer.hidden_size
    return lambda array: np.concatenate([array[hidden:2 * hidden], array[:hidden], array[2 * hidden:]])


def _two_biases(layer):
    return isinstance(layer, GRU) and layer.linear_before_reset


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def from_torch(target, state_dict):
    """Copies a PyTorch state_dict into a layer or Sequential, pairing tensors by position (the
    torch module's names may differ, e.g. 'lstm.weight_ih_l0' -> '1.weight_ih_l0', but must end
    alike). Equal names work with target.load_state_dict directly."""
    pairs = _pair_by_position(target, list(state_dict))
    target.load_state_dict({ours: _numpy(state_dict[theirs]) for ours, theirs in pairs})


def to_torch(target, module):
    """Copies the weights of a layer or Sequential into the torch.nn.Module `module` (paired by
    position as in from_torch) and returns the module."""
    import torch   # optional dependency, needed only here

    theirs = module.state_dict()
    ours = target.state_dict()
    module.load_state_dict({their_name: torch.from_numpy(ours[our_name]).to(theirs[their_name].dtype)
                            for our_name, their_name in _pair_by_position(target, list(theirs))})
    return module


def _pair_by_position(target, their_names):
    our_names = list(target.params)
    if len(their_names) != len(our_names):
        raise ValueError(f"state_dict: expected {len(our_names)} tensors {our_names}, got {len(their_names)} "
                         f"{their_names}")
    for ours, theirs in zip(our_names, their_names):
        if ours.rsplit(".", 1)[-1] != theirs.rsplit(".", 1)[-1]:
            raise ValueError(f"state_dict: {theirs!r} does not match {ours!r} (tensors are paired by position, "
                             "so the names must end alike)")
    return list(zip(our_names, their_names))


def _numpy(tensor):
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)

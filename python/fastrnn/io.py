"""Saving and loading models, and copying weights from and to Keras and PyTorch.

A saved model is one .npz file: the architecture as JSON (the layers' get_config() and the
vocabulary) plus one array per parameter. load reads a file it does not trust: the
configuration first (its size bounded), checked whole (classes, arguments, feature sizes,
memory) before any layer is allocated; then each parameter's .npy header, checked against the
parameter before its data is decompressed. Keras weight lists are in `layer.get_weights()`
order; PyTorch state_dicts are matched by position.
"""

import json
import math
import os
import reprlib
import sys
import zipfile
import zlib

import numpy as np

from .base import Parameters, check_names, check_parameter, check_parameter_memory
from .data import Vocabulary
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import Sequential, checked_layers
from .recurrent import GRU, LSTM, RNN

FORMAT = "fastrnn.Sequential"
# 2: LastStep after a bidirectional layer takes the reverse half at step 0. Files of version 1
# load with the plain LastStep they were trained with (every feature at the last valid step).
VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_KEY = "__config__"   # the archive member holding the JSON configuration
# The configuration's largest size: 64 MiB of UTF-32 text, room for a million-word vocabulary.
MAX_CONFIG_BYTES = 2**26
READ_CHUNK = 2**20   # bytes decompressed at a time: reading an array costs its size, not twice it
LAYER_CLASSES = {cls.__name__: cls for cls in (Embedding, OneHot, Dense, ReLU, Tanh, Dropout, LastStep, RNN, LSTM, GRU)}
# What a damaged or crafted file raises on its way through zipfile, zlib, NumPy's .npy header
# parser and json: BadZipFile; zlib.error and EOFError (corrupt or truncated data); OSError (an
# offset before the file's start); RuntimeError (an encrypted member, an unsupported zip feature,
# JSON nested too deep); ValueError (headers, JSON, offsets too large, and load's own checks).
# Programming errors (TypeError, AttributeError, KeyError...) are not file errors: they propagate.
FILE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError)


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
    """The Sequential saved at `path` (in training mode, not compiled). Anything wrong with the
    file raises ValueError naming it (a missing file raises FileNotFoundError, as open does).
    The file is checked before it costs anything: its configuration before any layer is
    allocated, each parameter's array before its data is decompressed."""
    with open(path, "rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                return _read_model(archive)
        except MemoryError as error:   # less memory available than the machine has
            raise ValueError(f"{path}: not enough memory to load this model ({error})") from None
        except FILE_ERRORS as error:
            raise ValueError(f"{path}: not a valid fastrnn model file ({type(error).__name__}: {error})") from error


def _read_model(archive):
    """The model in an open .npz archive; a problem raises one of FILE_ERRORS."""
    members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}   # numpy.savez's names
    if CONFIG_KEY not in members:
        raise ValueError(f"no {CONFIG_KEY} array, so not a saved fastrnn model")
    entries, vocabulary = _configuration(_read_array(archive, members.pop(CONFIG_KEY), CONFIG_KEY,
                                                     _check_config_header))
    layers = [_plan_layer(index, entry) for index, entry in enumerate(entries)]
    # Before anything is allocated: the file holds one array per parameter, so more parameters
    # than arrays cannot load (and listing them could cost more than the file: num_layers=10**7).
    arrays = sum(_array_count(layer) for layer in layers)
    if arrays > len(members):
        raise ValueError(f"layers: their parameters are {arrays} arrays, more than the file's {len(members)}")
    layers, dtype, _ = checked_layers(layers)
    check_parameter_memory(sum(map(_parameter_size, layers)), dtype, f"Sequential of {len(layers)} layers")
    for layer in layers:
        layer._build()   # zeros: every parameter is read from the file below, none is initialised
    model = Sequential(layers, vocabulary=None if vocabulary is None else Vocabulary(vocabulary))
    shapes = {name: view.shape for name, view in model.params.items()}
    check_names(shapes, members, "arrays")
    for name, shape in shapes.items():
        model.params[name] = _read_array(archive, members[name], name, _parameter_header_check(name, shape))
    return model


def _read_array(archive, info, name, check):
    """The array numpy.savez stored in the member `info` for `name`. check(shape, dtype) sees its
    .npy header first, and raises for an array that does not belong: nothing more of it is then
    decompressed. The member must hold exactly the header and the array's data."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):   # numpy.savez(_compressed)'s
        raise ValueError(f"{name}: zip compression method {info.compress_type}, expected 0 (stored) or 8 (deflated)")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version != (1, 0):   # the version numpy.savez writes; its header is at most 64 KiB
            raise ValueError(f"{name}: .npy format version {version}, expected (1, 0)")
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        check(shape, dtype)
        data = np.empty(math.prod(shape) * dtype.itemsize, np.uint8)
        for start in range(0, data.size, READ_CHUNK):
            chunk = stream.read(min(READ_CHUNK, data.size - start))
            if len(chunk) < min(READ_CHUNK, data.size - start):
                raise ValueError(f"{name}: the data of {dtype} {shape} ends after {start + len(chunk)} of its "
                                 f"{data.size} bytes")
            data[start:start + len(chunk)] = np.frombuffer(chunk, np.uint8)
        if stream.read(1):   # reading to the end also checks the CRC
            raise ValueError(f"{name}: more data than the {data.size} bytes of {dtype} {shape}")
    return data.view(dtype).reshape(shape, order="F" if fortran_order else "C")


def _check_config_header(shape, dtype):
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_CONFIG_BYTES:
        raise ValueError(f"{CONFIG_KEY}: expected a text (a 0-d unicode array) of at most {MAX_CONFIG_BYTES} bytes, "
                         f"got dtype {dtype} ({dtype.itemsize} bytes) of shape {shape}")


def _parameter_header_check(name, expected_shape):
    """check(shape, dtype) for _read_array: the parameter's check (check_parameter) applied to an
    array's header. A file of the wrong type is a bad file too: ValueError."""
    def check(shape, dtype):
        try:
            check_parameter(shape, dtype, expected_shape, name)
        except TypeError as error:
            raise ValueError(str(error)) from None
    return check


def _configuration(text_array):
    """(layer entries {"class": ..., "config": {...}}, vocabulary tokens or None) from the
    configuration's 0-d unicode array, checked for the structure load relies on."""
    codes = text_array.reshape(1).view(text_array.dtype.byteorder + "u4")
    if codes.size and codes.max() > sys.maxunicode:   # a Python str cannot hold it (json raised SystemError)
        raise ValueError(f"{CONFIG_KEY}: code point U+{int(codes.max()):X} is beyond Unicode's last, "
                         f"U+{sys.maxunicode:X}")
    config = json.loads(str(text_array[()]))
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG_KEY}: expected a JSON object, got {reprlib.repr(config)}")
    version = config.get("version")
    # JSON's true equals 1 in Python, so the version must be an int and not a bool.
    if config.get("format") != FORMAT or type(version) is not int or version not in READABLE_VERSIONS:
        raise ValueError(f"expected format {FORMAT!r} version {' or '.join(map(str, READABLE_VERSIONS))}, got "
                         f"{reprlib.repr(config.get('format'))} version {reprlib.repr(version)}")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"layers: expected a list, got {reprlib.repr(layers)}")
    for index, entry in enumerate(layers):
        if not (isinstance(entry, dict) and isinstance(entry.get("class"), str) and entry["class"] in LAYER_CLASSES
                and isinstance(entry.get("config"), dict)):
            raise ValueError(f"layers[{index}]: expected {{'class': one of {sorted(LAYER_CLASSES)}, 'config': "
                             f"{{arguments}}}}, got {reprlib.repr(entry)}")
        if version == 1 and entry["class"] == "LastStep":
            entry["config"] = {"bidirectional": False}
    vocabulary = config.get("vocabulary")
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(token, str)
                                                                          for token in vocabulary)):
        raise ValueError(f"vocabulary: expected null or a list of strings, got {reprlib.repr(vocabulary)}")
    return layers, vocabulary


def _plan_layer(index, entry):
    """The planned layer (arguments checked, nothing allocated) of a configuration entry."""
    try:
        return LAYER_CLASSES[entry["class"]]._plan(entry["config"])
    except (TypeError, ValueError) as error:   # the constructors' argument errors
        raise ValueError(f"layers[{index}]: {entry['class']}: {error}") from None


def _array_count(layer):
    """How many arrays a planned layer's parameters take in the file, counted without listing
    them: a recurrent stack's list is as long as its num_layers."""
    if layer.recurrent:   # weight_ih, weight_hh[, bias_ih, bias_hh] per layer and direction
        return layer.num_layers * (2 if layer.bidirectional else 1) * (4 if layer.bias else 2)
    plan = layer._parameter_layout()
    return 0 if plan is None else len(plan[0])


def _parameter_size(layer):
    """The length of a planned layer's parameter buffer (0 without parameters)."""
    plan = layer._parameter_layout()
    return 0 if plan is None else Parameters.layout_and_size(*plan)[1]


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

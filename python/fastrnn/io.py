"""Saving and loading models, and copying weights from and to Keras and PyTorch.

A saved model is one .npz file: the model's class and configuration (its get_config()) as JSON,
plus one array per parameter. load builds only model classes defined in the running program
(fastrnn's own, and subclasses of fastrnn.Model the program has imported): a file never makes
it import anything. It reads a file it does not trust: the configuration first (its size
bounded); the model class checks it whole (a Sequential: classes, arguments, feature sizes,
memory) before anything is allocated; then each parameter's .npy header is checked against the
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

from .base import MODEL_CLASSES, check_names, check_parameter
from .layers import Dense, Embedding
from .recurrent import GRU
from .reference import param_names

FORMAT, VERSION = "fastrnn", 2
# Files before version 2 held only Sequentials, as {"format": "fastrnn.Sequential", "version": 1,
# "layers": [...], "vocabulary": ...}; their LastStep took every feature at the last valid step.
SEQUENTIAL_V1 = "fastrnn.Sequential"
SEQUENTIAL_CLASS = "fastrnn.model.Sequential"
CONFIG_KEY = "__config__"   # the archive member holding the JSON configuration
# Archive members of the optimizer's state ("__optimizer__.0.m"): no parameter name starts so.
OPTIMIZER_PREFIX = "__optimizer__."
# The configuration's largest size: 64 MiB of UTF-32 text, room for a million-word vocabulary.
MAX_CONFIG_BYTES = 2**26
READ_CHUNK = 2**20   # bytes decompressed at a time: reading an array costs its size, not twice it
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
    """Writes a model (a fastrnn.Model: Sequential, Seq2Seq or a subclass of yours) to `path`,
    replacing it only once the new file is complete."""
    name = _class_name(model)
    if MODEL_CLASSES.get(name) is not type(model):
        raise TypeError("model: expected a fastrnn.Model (Sequential, Seq2Seq or a subclass), got "
                        f"{type(model).__name__}")
    config = {"format": FORMAT, "version": VERSION, "class": name, "config": model.get_config()}
    training = model.training_state()
    training_arrays = {}
    if training is not None:
        config["training"], arrays = training
        training_arrays = {OPTIMIZER_PREFIX + key: array for key, array in arrays.items()}
    text = json.dumps(config)   # before the file is opened: a configuration JSON cannot hold leaves no file
    temporary = f"{os.fspath(path)}.partial"
    with open(temporary, "wb") as file:
        np.savez(file, **{CONFIG_KEY: np.array(text)}, **model.state_dict(), **training_arrays)
    os.replace(temporary, path)


def load(path):
    """The model saved at `path`, in training mode; compiled, with its training state, when it
    was saved compiled (see fastrnn.Model.save). Its class must be defined in
    the running program: for a model class of your own, import its module first. Anything
    wrong with the file raises ValueError naming it (a missing file raises FileNotFoundError,
    as open does). The file is checked before it costs anything: its configuration before any
    layer is allocated, each parameter's array before its data is decompressed."""
    with open(path, "rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                return _read_model(archive)
        except MemoryError as error:   # less memory available than the machine has
            raise ValueError(f"{path}: not enough memory to load this model ({error})") from None
        except FILE_ERRORS as error:
            raise ValueError(f"{path}: not a valid fastrnn model file ({type(error).__name__}: {error})") from error


def _class_name(model):
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _read_model(archive):
    """The model in an open .npz archive; a problem raises one of FILE_ERRORS."""
    members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}   # numpy.savez's names
    if CONFIG_KEY not in members:
        raise ValueError(f"no {CONFIG_KEY} array, so not a saved fastrnn model")
    name, config, training = _configuration(_read_array(archive, members.pop(CONFIG_KEY), CONFIG_KEY,
                                                        _check_config_header))
    if name not in MODEL_CLASSES:
        raise ValueError(f"class: {name!r} is not a model class defined in this program; import the module that "
                         "defines it before fastrnn.load")
    try:
        model = MODEL_CLASSES[name].from_config(config, arrays=len(members))
    except TypeError as error:   # arguments the constructor does not take
        raise ValueError(f"config: {name}: {error}") from None
    optimizer_members = {name: members.pop(name) for name in list(members) if name.startswith(OPTIMIZER_PREFIX)}
    shapes = {name: view.shape for name, view in model.params.items()}
    check_names(shapes, members, "arrays")
    for name, shape in shapes.items():
        model.params[name] = _read_array(archive, members[name], name, _parameter_header_check(name, shape))
    if training is not None:
        _restore_training(model, training, archive, optimizer_members)
    return model


def _restore_training(model, training, archive, members):
    """Compiles a loaded model with the training state its file holds. The optimizer's arrays are
    each one buffer of the model's parameters long."""
    size = sum(values.size for values, _ in model.parameter_buffers())
    arrays = {name.removeprefix(OPTIMIZER_PREFIX): _read_array(archive, info, name,
                                                               _parameter_header_check(name, (size,)))
              for name, info in members.items()}
    try:
        model.restore_training_state(training, arrays)
    except (KeyError, TypeError, AttributeError) as error:   # a description missing or mistyping a part
        raise ValueError(f"training: the saved training state is malformed ({type(error).__name__}: {error})") from None


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
    """(model class name, its configuration, its training state or None) from the configuration's
    0-d unicode array, checked for the structure load relies on; a version-1 Sequential file
    becomes its version-2 form."""
    codes = text_array.reshape(1).view(text_array.dtype.byteorder + "u4")
    if codes.size and codes.max() > sys.maxunicode:   # a Python str cannot hold it (json raised SystemError)
        raise ValueError(f"{CONFIG_KEY}: code point U+{int(codes.max()):X} is beyond Unicode's last, "
                         f"U+{sys.maxunicode:X}")
    config = json.loads(str(text_array[()]))
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG_KEY}: expected a JSON object, got {reprlib.repr(config)}")
    # JSON's true equals 1 in Python, so the version must be an int and not a bool.
    form, version = config.get("format"), config.get("version")
    if form == SEQUENTIAL_V1 and type(version) is int and version == 1:
        layers = config.get("layers")
        for entry in layers if isinstance(layers, list) else []:
            if isinstance(entry, dict) and entry.get("class") == "LastStep":
                entry["config"] = {"bidirectional": False}   # the plain LastStep the file was trained with
        return SEQUENTIAL_CLASS, {key: config.get(key) for key in ("layers", "vocabulary")}, None
    if form != FORMAT or type(version) is not int or version != VERSION:
        raise ValueError(f"expected format {FORMAT!r} version {VERSION} (or {SEQUENTIAL_V1!r} version 1), got "
                         f"{reprlib.repr(form)} version {reprlib.repr(version)}")
    if not isinstance(config.get("class"), str) or not isinstance(config.get("config"), dict):
        raise ValueError(f"expected a 'class' name and a 'config' object, got {reprlib.repr(config)}")
    training = config.get("training")
    if training is not None and not isinstance(training, dict):
        raise ValueError(f"training: expected an object, got {reprlib.repr(training)}")
    return config["class"], config["config"], training


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
    layers = target.layers if type(target) in MODEL_CLASSES.values() else [target]   # a model, or one layer
    return [layer for layer in layers if layer.params]


def _layer_to_keras(layer):
    params = layer.params
    if isinstance(layer, Dense):
        return [params["weight"].T] + ([params["bias"]] if layer.bias else [])
    if isinstance(layer, Embedding):
        return [params["weight"]]
    if layer.recurrent:
        arrays, order = [], _keras_gate_order(layer)
        for names in _recurrent_names(layer):
            arrays += [order(params[names["w_ih"]]).T, order(params[names["w_hh"]]).T]
            if layer.bias:
                bias_ih, bias_hh = order(params[names["b_ih"]]), order(params[names["b_hh"]])
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
    for names in _recurrent_names(layer):
        state[names["w_ih"]] = order(next(items).T)
        state[names["w_hh"]] = order(next(items).T)
        if layer.bias:
            bias = next(items)
            bias_ih, bias_hh = bias if _two_biases(layer) else (bias, np.zeros_like(bias))
            state[names["b_ih"]], state[names["b_hh"]] = order(bias_ih), order(bias_hh)
    return state


def _recurrent_names(layer):
    """PyTorch's parameter names of a stack ({"w_ih": ..., ...}), one dict per layer and
    direction, in Keras' order (a Bidirectional's forward layer first)."""
    return [param_names(index, direction) for index in range(layer.num_layers)
            for direction in range(2 if layer.bidirectional else 1)]


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


__all__ = ["from_keras", "from_torch", "load", "save", "to_keras", "to_torch"]


def __dir__():   # dir() and editors' completion: the public names only, not numpy or math
    return __all__

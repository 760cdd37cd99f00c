"""Sampling from character models: Sequential.generate and the sampling it uses.

For the usual shape (input layer -> recurrent layers -> Dense) the token loop runs in C++: a T=1
step of each recurrent layer with the state carried, the head, Gumbel-max sampling; other
shapes loop in Python.
"""

import numpy as np

from . import _core
from .base import class_ids, float_array, positive_int, real_number
from .layers import Dense, Dropout, LastStep

# generate's longest output: the largest int64 array NumPy can describe (longer ones raise
# NumPy's "array is too big", which would not name the argument).
MAX_GENERATED_TOKENS = np.iinfo(np.intp).max // np.dtype(np.int64).itemsize


def generate(model, prime, length, temperature=1.0, top_k=None, seed=None):
    """Samples `length` tokens that continue `prime`, for a character model (OneHot or
    Embedding first, per-step logits over the same ids last).

    prime: ids (a non-empty 1-D integer array) or a str (needs `vocabulary`); returns the
    new ids (int64), or their text for a str prime. temperature divides the logits (0:
    greedy argmax); top_k keeps only the k most likely tokens. seed: a generator for this
    call (default: the model's). The prime runs in one call; then, for the usual shape
    (input layer -> recurrent layers -> Dense), the token loop runs in C++; other shapes loop
    in Python.
    """
    classes = _check_character_model(model)
    as_text = isinstance(prime, str)
    if as_text and model.vocabulary is None:
        raise ValueError("prime: text needs model.vocabulary (a fastrnn.data.Vocabulary); or pass ids")
    ids = model.vocabulary.encode(prime) if as_text else class_ids(prime, classes, "prime")
    if ids.ndim != 1 or not len(ids):
        raise ValueError(f"prime: expected a non-empty 1-D sequence of ids, got shape {ids.shape}")
    if isinstance(length, (bool, np.bool_)) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"length: expected an integer number of tokens, got {type(length).__name__}")
    if not 0 <= length <= MAX_GENERATED_TOKENS:
        raise ValueError(f"length: expected a number of tokens in [0, {MAX_GENERATED_TOKENS}], got {length}")
    temperature = real_number(temperature, "temperature", 0)
    if top_k is not None:
        top_k = positive_int(top_k, "top_k")
    rng = model._rng if seed is None else np.random.default_rng(seed)

    model.eval()
    states = model.fresh_states()
    logits = model.run(ids[None, :], None, states)[0, -1]
    # The input layer maps each id to a fixed vector: one table lookup per token instead of a call
    inputs = model.layers[0](np.arange(classes)[:, None, None])   # (classes, 1, 1, features)
    recurrent = _native_generation_layers(model)
    if recurrent is not None:
        head = model.layers[-1]
        generated = getattr(_core, f"generate_{model.dtype.name}")(
            [layer._native for layer in recurrent], [layer._parameters.values for layer in recurrent],
            [states[model.layers.index(layer)] for layer in recurrent], inputs.reshape(classes, -1),
            head.params["weight"], head.params["bias"] if head.bias else None, logits, length, float(temperature),
            top_k or 0, int(rng.integers(2**63)))
    else:
        generated = np.empty(length, dtype=np.int64)
        for index in range(length):
            generated[index] = token = sample(logits, temperature, top_k, rng)
            if index + 1 < length:
                logits = model.run(inputs[token], None, states, first=1)[0, -1]
    return model.vocabulary.decode(generated) if as_text else generated


def _native_generation_layers(model):
    """The recurrent layers, when the model is input layer -> recurrent layers (and Dropout,
    which is the identity here) -> Dense, the shape whose token loop runs in C++; else None."""
    middle = model.layers[1:-1]
    recurrent = [layer for layer in middle if layer.recurrent]
    if not recurrent or not isinstance(model.layers[-1], Dense) or \
            any(not (layer.recurrent or isinstance(layer, Dropout)) for layer in middle):
        return None
    return recurrent


def _check_character_model(model):
    """The number of ids of a model that generate can drive, or ValueError."""
    classes = model.input_ids()
    if classes is None or any(isinstance(layer, LastStep) for layer in model.layers):
        raise ValueError("generate: needs a character model: OneHot or Embedding first, per-step outputs "
                         "(no LastStep)")
    for index, layer in enumerate(model.layers):
        if layer.recurrent and layer.bidirectional:
            raise ValueError(f"generate: layers[{index}] {layer!r} is bidirectional, but sampling steps forward "
                             "one token at a time: its reverse direction would need the tokens not yet sampled")
    if model.output_size != classes:
        raise ValueError(f"generate: the model outputs {model.output_size} values per step, expected "
                         f"{classes} logits (one per input id)")
    return classes


def sample(logits, temperature=1.0, top_k=None, rng=None):
    """An id drawn from softmax(logits / temperature) restricted to the top_k largest logits;
    argmax when temperature is 0 (see sample_ids)."""
    logits = float_array(logits, None, "logits")
    if logits.ndim != 1 or not len(logits):
        raise ValueError(f"logits: expected a non-empty 1-D array (one logit per id), got shape {logits.shape}")
    return int(sample_ids(logits, temperature, top_k, rng))


def sample_ids(logits, temperature=1.0, top_k=None, rng=None):
    """One id per row of logits (..., ids), each drawn from softmax(row / temperature) restricted
    to its top_k largest logits (None: all); the argmax when temperature is 0. The draws are
    generate's native ones (the Gumbel-max trick), seeded from `rng` (default: a fresh one)."""
    logits = float_array(logits, None, "logits")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits: expected an array (..., ids) with at least one id, got shape {logits.shape}")
    temperature = real_number(temperature, "temperature", 0)
    top_k = 0 if top_k is None else positive_int(top_k, "top_k")
    seed = int((rng or np.random.default_rng()).integers(2**63))
    rows = logits.reshape(-1, logits.shape[-1])
    return getattr(_core, f"sample_{rows.dtype.name}")(rows, float(temperature), top_k, seed).reshape(
        logits.shape[:-1])

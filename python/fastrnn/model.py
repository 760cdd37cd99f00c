"""Sequential: a stack of layers trained like a Keras model (compile, fit, evaluate, predict,
train_step), with stateful truncated BPTT for long sequences and fast sampling from
character models.

Data is batch-first: x (N, T) integer ids or (N, T, F) features; per-step targets (N, T) /
(N, T, F), or (N,) / (N, F) after LastStep; `lengths` (N,) marks each sequence's valid steps
(the recurrent layers and LastStep respect it, and padded steps weigh 0 in the loss).
"""

import math

import numpy as np

from . import _core, losses, optim
from .base import Layer, Parameters, class_ids, float_array, positive_int, real_number, sequence_lengths
from .data import Vocabulary
from .layers import Dense, Dropout, Embedding, LastStep, OneHot
from .progress import Progress

CACHE_LINE = 64   # bytes; each layer's slice of the model buffer starts on one
# generate's longest output: the largest int64 array NumPy can describe (longer ones raise
# NumPy's "array is too big", which would not name the argument).
MAX_GENERATED_TOKENS = np.iinfo(np.intp).max // np.dtype(np.int64).itemsize


class History:
    """What fit returns: `history` maps each metric name to its per-epoch values (Keras')."""

    def __init__(self):
        self.epoch = []
        self.history = {}

    def append(self, metrics):
        self.epoch.append(len(self.epoch))
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(value)

    def __repr__(self):
        return f"History({self.history})"


class _RunningMeans:
    """Means of per-batch metrics weighted by each batch's number of (weighted) target steps,
    so an epoch's value is its mean over all steps."""

    def __init__(self):
        self.sums = {}
        self.weight = 0.0

    def add(self, metrics, weight):
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * weight
        self.weight += weight

    def means(self):
        return {name: total / self.weight if self.weight else 0.0 for name, total in self.sums.items()}


class Sequential(Layer):
    """Layers applied in order; itself a Layer (forward, backward, params, state_dict).

    All parameters live in one model-wide flat buffer (the layers' `params` become views of
    it), so an optimizer step is a handful of NumPy calls. Recurrent layers must be
    batch_first=True. `seed` drives the model's own randomness: shuffling, validation split
    and sampling; layers take their own seeds for initialisation and dropout masks.
    `vocabulary` (a fastrnn.data.Vocabulary, saved with the model) lets generate take text; it
    must have one token per id the first layer (OneHot or Embedding) takes.

    A layer belongs to one Sequential: its parameters move into that model's buffer, so a
    second model holding it would train values the first never sees (it raises ValueError).
    """

    def __init__(self, layers, seed=None, vocabulary=None):
        self.layers, self.dtype, self.output_size = checked_layers(layers)
        self.vocabulary = vocabulary
        # Every check is done: only now do the layers' parameters move into this model.
        self._parameters = self._share_parameters()
        for layer in self.layers:
            layer._in_sequential = True
        self._first_trainable = next((index for index, layer in enumerate(self.layers) if layer._parameters),
                                     len(self.layers))
        self._rng = np.random.default_rng(seed)
        self.loss = self.optimizer = self.history = None
        self.reset_states()

    @property
    def vocabulary(self):
        """The Vocabulary generate's text goes through, or None; an assigned one is checked like
        the constructor's."""
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, vocabulary):
        if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary: expected a fastrnn.data.Vocabulary, got {type(vocabulary).__name__}")
        input_ids = self._input_ids()
        if vocabulary is not None and input_ids is not None and len(vocabulary) != input_ids:
            raise ValueError(f"vocabulary: expected {input_ids} tokens, one per id that layers[0] "
                             f"{self.layers[0]!r} takes, got {len(vocabulary)}")
        self._vocabulary = vocabulary

    def _input_ids(self):
        """How many ids the first layer takes (OneHot, Embedding), or None for other inputs."""
        first = self.layers[0]
        if isinstance(first, OneHot):
            return first.num_classes
        if isinstance(first, Embedding):
            return first.num_embeddings
        return None

    def _share_parameters(self):
        """One buffer for all the layers' parameters, named "{index}.{name}" like
        torch.nn.Sequential's; each layer keeps views of its (cache-line aligned) slice."""
        layout, placements, offset = [], [], 0
        alignment = CACHE_LINE // self.dtype.itemsize
        for index, layer in enumerate(self.layers):
            if layer._parameters is None:
                continue
            offset = -(-offset // alignment) * alignment
            layout += [(f"{index}.{name}", offset + start, shape, stride)
                       for name, start, shape, stride in layer._parameters.layout]
            placements.append((layer._parameters, offset))
            offset += layer._parameters.size
        if not layout:
            return None
        # The last layer's buffer may run past its last tensor. Each layer's parameters were
        # checked against the machine's memory on their own; here they are checked together.
        model = Parameters(layout, self.dtype, offset, owner=f"Sequential of {len(self.layers)} layers")
        for parameters, start in placements:
            model.adopt(parameters, start)
        return model

    # ------------------------------------------------------------------ the Layer protocol

    def forward(self, x, lengths=None):
        """The output for a batch x, from zero states. In training mode the activations are kept
        for backward()."""
        return self._run(x, sequence_lengths(lengths, np.shape(x)), self._fresh_states())

    def _run(self, x, lengths, states, first=0):
        """Forward through the layers from layers[first]; `states` holds one entry per layer, the
        initial state of each recurrent layer, and is updated in place with their final states."""
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

    def train(self, mode=True):
        for layer in self.layers:
            layer.train(mode)
        return super().train(mode)

    def zero_grad(self):
        # Each layer its own way: the recurrent ones lazily (their next backward overwrites).
        for layer in self.layers:
            layer.zero_grad()

    def get_config(self):
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    def __repr__(self):
        lines = "".join(f"\n  ({index}): {layer!r}" for index, layer in enumerate(self.layers))
        count = sum(view.size for view in self.params.values())
        return f"Sequential({lines}\n)  # {count} parameters"

    # ------------------------------------------------------------------ training

    def compile(self, optimizer, loss):
        """optimizer: an fastrnn.optim optimizer or its name ('adam', 'sgd', 'rmsprop', 'adagrad',
        with PyTorch's defaults); loss: 'cross_entropy' (integer targets, accuracy reported too),
        'mse', or a function (output, y, weights) -> (loss, grad)."""
        self.optimizer = optim.get(optimizer)
        self.loss = losses.get(loss)
        return self

    def train_step(self, x, y, lengths=None, stateful=False):
        """One optimizer step on the batch (x, y); returns its metrics, e.g. {'loss': ...,
        'accuracy': ...}. stateful=True starts from the states the previous stateful step left
        (zeros after reset_states()) and keeps the new ones; no gradient flows across."""
        self._require_compiled("train_step")
        x, y, lengths = self._check_data(x, y, lengths)
        states = self._batch_states(stateful)
        metrics, _ = self._train_batch(x, y, lengths, states)
        return metrics

    def _train_batch(self, x, y, lengths, states):
        if not self.training:
            self.train()
        output = self._run(x, lengths, states)
        grad, metrics, weight = self._score(output, y, lengths)
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(
                f"the loss became {metrics['loss']} (the weights were not updated); lower the learning rate "
                f"(now {self.optimizer.learning_rate:g}) or clip gradients, e.g. "
                f"fastrnn.optim.{type(self.optimizer).__name__}(clip_norm=1.0)")
        self.zero_grad()
        self.backward(grad)
        self.optimizer.step(self.parameter_buffers())
        return metrics, weight

    def _score(self, output, y, lengths):
        """(d loss / d output, metrics, weight of the batch) for a batch's output."""
        weights = None
        if lengths is not None and output.ndim == 3:    # per-step targets: padded steps weigh 0
            weights = (np.arange(output.shape[1]) < lengths[:, None]).astype(output.dtype)
        loss, grad = self.loss(output, y, weights)
        metrics = {"loss": loss}
        if self.loss is losses.cross_entropy:
            metrics["accuracy"] = losses.accuracy(output, y, weights)
        weight = float(weights.sum()) if weights is not None else math.prod(output.shape[:-1])
        return grad, metrics, weight

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_data=None, validation_split=0.0,
            lengths=None, verbose=1, stateful=False, initial_epoch=0, callbacks=None):
        """Trains for `epochs` passes over (x, y) in batches; returns a History (also kept as
        `model.history`) with per-epoch 'loss' (+ 'accuracy' for cross-entropy) and their
        'val_' versions when there is validation data.

        As in Keras, training runs epochs initial_epoch .. epochs-1 (to resume, say), and after
        each one every callback gets (epoch, logs): a callable is called, an object's
        on_epoch_end(epoch, logs) is; logs holds the epoch's metrics, and what a callback adds
        to it lands in the history too.

        validation_data: (x, y) or (x, y, lengths). validation_split: the fraction at the end
        of x (taken before shuffling, as in Keras). stateful=True is truncated BPTT over
        consecutive chunks (see fastrnn.data.sequence_batches): batch b+1's row i continues
        batch b's row i, states are carried across batches and reset at each epoch start,
        which needs shuffle=False and len(x) divisible by batch_size. A NaN or infinite loss
        raises FloatingPointError naming the epoch and batch, before that batch's update.
        """
        self._require_compiled("fit")
        x, y, lengths = self._check_data(x, y, lengths)
        epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or \
                not 0 <= initial_epoch < epochs:
            raise ValueError(f"initial_epoch: expected an integer in [0, epochs = {epochs}), got {initial_epoch!r}")
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not (callable(callback) or hasattr(callback, "on_epoch_end")):
                raise TypeError(f"callbacks: expected callables or objects with on_epoch_end(epoch, logs), got "
                                f"{type(callback).__name__}")
        (x, y, lengths), validation_data = self._split_validation((x, y, lengths), validation_data, validation_split)
        if stateful and shuffle:
            raise ValueError("stateful=True carries row i of each batch into row i of the next, so it needs shuffle=False")
        if stateful and len(x) % batch_size:
            raise ValueError(f"batch_size: stateful training needs len(x) = {len(x)} to be a multiple of batch_size = "
                             f"{batch_size}, so every batch continues the previous one")

        self.history = History()
        batches = -(-len(x) // batch_size)
        for epoch in range(initial_epoch + 1, epochs + 1):
            self.reset_states()
            order = self._rng.permutation(len(x)) if shuffle else None
            progress = Progress(epoch, epochs, batches, verbose)
            means = _RunningMeans()
            for batch, rows in enumerate(_batch_rows(len(x), batch_size, order), 1):
                states = self._batch_states(stateful)
                try:
                    metrics, weight = self._train_batch(x[rows], y[rows], _rows(lengths, rows), states)
                except FloatingPointError as error:
                    raise FloatingPointError(f"fit: at epoch {epoch}, batch {batch} of {batches}: {error}") from None
                means.add(metrics, weight)
                progress.update(means.means())
            metrics = means.means()
            if validation_data is not None:
                metrics.update({f"val_{name}": value for name, value in self.evaluate(*validation_data).items()})
            progress.close(metrics)
            for callback in callbacks:   # after the epoch's line, so what they print reads in order
                (callback.on_epoch_end if hasattr(callback, "on_epoch_end") else callback)(epoch - 1, metrics)
            self.history.append(metrics)
        self.reset_states()
        return self.history

    def _split_validation(self, data, validation_data, validation_split):
        """(training (x, y, lengths), checked validation (x, y, lengths) or None)."""
        validation_split = real_number(validation_split, "validation_split", 0, 1)
        if validation_split:
            if validation_data is not None:
                raise ValueError("validation_split: give either validation_data or validation_split, not both")
            kept = int(len(data[0]) * (1 - validation_split))
            if not 0 < kept < len(data[0]):
                raise ValueError(f"validation_split: {validation_split} of {len(data[0])} sequences leaves an empty part")
            return tuple(_rows(part, slice(kept)) for part in data), tuple(_rows(part, slice(kept, None)) for part in data)
        if validation_data is None:
            return data, None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data: expected a tuple (x, y) or (x, y, lengths)")
        return data, self._check_data(*validation_data)

    def _fresh_states(self):
        """One None (zero initial state) per layer, the `states` argument of _run."""
        return [None] * len(self.layers)

    def _batch_states(self, stateful):
        """The states a training batch starts from: the carried ones if stateful, else zeros."""
        return self._states if stateful else self._fresh_states()

    def reset_states(self):
        """Forgets the states carried by stateful training: the next stateful step starts at zero."""
        self._states = self._fresh_states()

    # ------------------------------------------------------------------ inference

    def evaluate(self, x, y, lengths=None, batch_size=32):
        """{'loss': ..., ['accuracy': ...]} over (x, y), in eval mode (no dropout)."""
        if self.loss is None:
            raise ValueError("evaluate: the model has no loss; call compile(optimizer, loss) first")
        x, y, lengths = self._check_data(x, y, lengths)
        self.eval()
        means = _RunningMeans()
        for rows in _batch_rows(len(x), positive_int(batch_size, "batch_size")):
            batch_lengths = _rows(lengths, rows)
            output = self._run(x[rows], batch_lengths, self._fresh_states())
            _, metrics, weight = self._score(output, y[rows], batch_lengths)
            means.add(metrics, weight)
        return means.means()

    def predict(self, x, lengths=None, batch_size=32):
        """The model's output for x (logits for a classifier), in eval mode, computed in batches."""
        x, _, lengths = self._check_data(x, None, lengths)
        self.eval()
        return np.concatenate([self._run(x[rows], _rows(lengths, rows), self._fresh_states())
                               for rows in _batch_rows(len(x), positive_int(batch_size, "batch_size"))])

    def generate(self, prime, length, temperature=1.0, top_k=None, seed=None):
        """Samples `length` tokens that continue `prime`, for a character model (OneHot or
        Embedding first, per-step logits over the same ids last).

        prime: ids (a non-empty 1-D integer array) or a str (needs `vocabulary`); returns the
        new ids (int64), or their text for a str prime. temperature divides the logits (0:
        greedy argmax); top_k keeps only the k most likely tokens. seed: a generator for this
        call (default: the model's). The prime runs in one call; then, for the usual shape
        (input layer -> recurrent layers -> Dense), the token loop runs in C++ (a T=1 step of
        each recurrent layer with the state carried, the head, Gumbel-max sampling); other
        shapes loop in Python.
        """
        classes = self._check_character_model()
        as_text = isinstance(prime, str)
        if as_text and self.vocabulary is None:
            raise ValueError("prime: text needs model.vocabulary (a fastrnn.data.Vocabulary); or pass ids")
        ids = self.vocabulary.encode(prime) if as_text else class_ids(prime, classes, "prime")
        if ids.ndim != 1 or not len(ids):
            raise ValueError(f"prime: expected a non-empty 1-D sequence of ids, got shape {ids.shape}")
        if isinstance(length, (bool, np.bool_)) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length: expected an integer number of tokens, got {type(length).__name__}")
        if not 0 <= length <= MAX_GENERATED_TOKENS:
            raise ValueError(f"length: expected a number of tokens in [0, {MAX_GENERATED_TOKENS}], got {length}")
        temperature = real_number(temperature, "temperature", 0)
        if top_k is not None:
            top_k = positive_int(top_k, "top_k")
        rng = self._rng if seed is None else np.random.default_rng(seed)

        self.eval()
        states = self._fresh_states()
        logits = self._run(ids[None, :], None, states)[0, -1]
        # The input layer maps each id to a fixed vector: one table lookup per token instead of a call
        inputs = self.layers[0](np.arange(classes)[:, None, None])   # (classes, 1, 1, features)
        recurrent = self._native_generation_layers()
        if recurrent is not None:
            head = self.layers[-1]
            generated = getattr(_core, f"generate_{self.dtype.name}")(
                [layer._native for layer in recurrent], [layer._parameters.values for layer in recurrent],
                [states[self.layers.index(layer)] for layer in recurrent], inputs.reshape(classes, -1),
                head.params["weight"], head.params["bias"] if head.bias else None, logits, length, float(temperature),
                top_k or 0, int(rng.integers(2**63)))
        else:
            generated = np.empty(length, dtype=np.int64)
            for index in range(length):
                generated[index] = token = sample(logits, temperature, top_k, rng)
                if index + 1 < length:
                    logits = self._run(inputs[token], None, states, first=1)[0, -1]
        return self.vocabulary.decode(generated) if as_text else generated

    def _native_generation_layers(self):
        """The recurrent layers, when the model is input layer -> recurrent layers (and Dropout,
        which is the identity here) -> Dense, the shape whose token loop runs in C++; else None."""
        middle = self.layers[1:-1]
        recurrent = [layer for layer in middle if layer.recurrent]
        if not recurrent or not isinstance(self.layers[-1], Dense) or \
                any(not (layer.recurrent or isinstance(layer, Dropout)) for layer in middle):
            return None
        return recurrent

    def _check_character_model(self):
        """The number of ids of a model that generate can drive, or ValueError."""
        classes = self._input_ids()
        if classes is None or any(isinstance(layer, LastStep) for layer in self.layers):
            raise ValueError("generate: needs a character model: OneHot or Embedding first, per-step outputs "
                             "(no LastStep)")
        for index, layer in enumerate(self.layers):
            if layer.recurrent and layer.bidirectional:
                raise ValueError(f"generate: layers[{index}] {layer!r} is bidirectional, but sampling steps forward "
                                 "one token at a time: its reverse direction would need the tokens not yet sampled")
        if self.output_size != classes:
            raise ValueError(f"generate: the model outputs {self.output_size} values per step, expected "
                             f"{classes} logits (one per input id)")
        return classes

    # ------------------------------------------------------------------ saving

    def save(self, path):
        """Writes the model (layers, weights, vocabulary) to one file; see fastrnn.load."""
        from .io import save   # io builds Sequentials, so it imports this module, not the reverse
        save(self, path)

    # ------------------------------------------------------------------ argument checks

    def _require_compiled(self, method):
        if self.loss is None or self.optimizer is None:
            raise ValueError(f"{method}: the model is not compiled; call compile(optimizer, loss) first")

    def _check_data(self, x, y, lengths=None):
        """x, y, lengths as arrays with matching numbers of sequences (y may be None)."""
        x = np.asarray(x)
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"x: expected a batch of at least one sequence, got shape {x.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.ndim < 1 or len(y) != len(x):
                raise ValueError(f"y: expected {len(x)} targets (one per sequence of x, shape {x.shape}), "
                                 f"got shape {y.shape}")
        return x, y, sequence_lengths(lengths, x.shape)


def checked_layers(layers):
    """(layers as a list, their dtype, the model's output size or None) for a Sequential of
    `layers`, or TypeError/ValueError naming the layer: each a fastrnn layer, in no other
    model and used once, recurrent ones batch-first, all of one dtype, and each taking the
    features its predecessor gives (checked at construction rather than in the first batch).
    A LastStep learns whether it follows a bidirectional layer.
    Only arguments are read, so load checks planned layers with it before allocating them."""
    layers = list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer")
    seen = set()   # ids of the layers before this one: a model of n layers is checked in O(n)
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer) or isinstance(layer, Sequential):
            raise TypeError(f"layers[{index}]: expected a fastrnn layer (not a Sequential: list its layers), "
                            f"got {type(layer).__name__}")
        if id(layer) in seen:
            raise ValueError(f"layers[{index}]: {layer!r} appears twice; create one layer per position")
        seen.add(id(layer))
        if layer._in_sequential:
            raise ValueError(f"layers[{index}]: {layer!r} already belongs to another Sequential (its parameters "
                             "live in that model's buffer); create a new layer, and copy the weights with "
                             "new_layer.load_state_dict(layer.state_dict()) if you want them")
        if layer.recurrent and not layer.batch_first:
            raise ValueError(f"layers[{index}]: {layer!r} must be built with batch_first=True: a Sequential's "
                             "data is batch-first, (batch, steps, features)")
    dtypes = sorted({layer.dtype.name for layer in layers if layer.dtype is not None})
    if len(dtypes) > 1:
        raise ValueError(f"layers: expected one dtype for all layers, got {dtypes}; pass the same dtype= to each")
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
    return layers, np.dtype(dtypes[0] if dtypes else "float32"), features


def _batch_rows(count, batch_size, order=None):
    """Row selections of consecutive batches: slices, or index arrays into `order`."""
    for start in range(0, count, batch_size):
        yield slice(start, start + batch_size) if order is None else order[start:start + batch_size]


def _rows(array, rows):
    """array[rows], for arrays that may be None (lengths)."""
    return None if array is None else array[rows]


def sample(logits, temperature=1.0, top_k=None, rng=None):
    """An id drawn from softmax(logits / temperature) restricted to the top_k largest logits;
    argmax when temperature is 0. Gumbel-max trick: argmax(logits / temperature + Gumbel noise)
    has exactly that distribution and costs a few NumPy calls (generate's per-token budget)."""
    logits = float_array(logits, None, "logits")
    if logits.ndim != 1 or not len(logits):
        raise ValueError(f"logits: expected a non-empty 1-D array (one logit per id), got shape {logits.shape}")
    temperature = real_number(temperature, "temperature", 0)
    if top_k is not None:
        top_k = positive_int(top_k, "top_k")
    if top_k is not None and top_k < len(logits):
        logits = np.where(logits >= np.partition(logits, -top_k)[-top_k], logits, -np.inf)
    if temperature == 0:
        return int(logits.argmax())
    noise = (rng or np.random.default_rng()).gumbel(size=logits.shape)
    return int((logits / temperature + noise).argmax())

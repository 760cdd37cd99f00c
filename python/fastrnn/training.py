"""Model: the base of every trainable model (Sequential, Seq2Seq, yours), with Keras' training
loop (compile, fit, evaluate, predict, train_step, callbacks, History, a progress bar) written
against a small protocol, and saving.

A model subclass passes its layers to Model.__init__ (by name, like a PyTorch module's
attributes); their parameters move into one flat buffer, named "<layer>.<parameter>". It then
implements, in NumPy and by hand like every fastrnn layer:

    forward(x, lengths=None, targets=None) -> output    (batch-first; targets only for models
                                                         that read them while training, such as
                                                         a decoder fed the targets)
    backward(doutput)                                   (ADDS into the layers' gradients)
    get_config() -> its constructor's arguments          (JSON values; for save and load)

and gets fit, evaluate, predict, save and fastrnn.load. Data is batch-first: x (N, ...) and
targets y (N, ...); `lengths` (N,) gives each input sequence's valid steps.
"""

import contextlib
import math

import numpy as np

from . import distributed as distributed_module
from . import io, losses, optim
from .base import MODEL_CLASSES, Layer, Parameters, positive_int, real_number, sequence_lengths
from .progress import Progress

CACHE_LINE = 64   # bytes; each layer's slice of the model buffer starts on one


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


class Model(Layer):
    """Base of trainable models: see the module's documentation for the protocol.

    layers: the model's layers, a dict {name: layer} (names become attributes when they are
    valid identifiers, and parameter-name prefixes) or a list (named "0", "1", ...). A layer
    belongs to one model: its parameters move into that model's buffer, so a second model
    holding it would train values the first never sees (it raises ValueError). seed drives the
    model's own randomness (shuffling, validation split, sampling); layers take their own seeds.
    """

    def __init_subclass__(cls, **kwargs):
        """Every model class is known by name to fastrnn.load, which builds only classes defined
        in this process (a file never makes it import anything)."""
        super().__init_subclass__(**kwargs)
        MODEL_CLASSES[model_class_name(cls)] = cls

    def __init__(self, layers, seed=None):
        named = dict(layers) if isinstance(layers, dict) else {str(index): layer for index, layer in enumerate(layers)}
        self._named_layers = named
        self.dtype = self._check_layers(named)
        for name, layer in self._named_layers.items():
            if name.isidentifier() and not hasattr(type(self), name):
                setattr(self, name, layer)
        # Every check is done: only now do the layers' parameters move into this model.
        self._parameters = self._share_parameters()
        for layer in self._named_layers.values():
            layer._in_model = True
        self._rng = np.random.default_rng(seed)
        self.loss = self.optimizer = self.history = None
        self.epochs_done = 0   # epochs fit has completed (over all its calls): where a resumed run continues
        self.reset_states()

    @property
    def layers(self):
        """The model's layers, in order."""
        return list(self._named_layers.values())

    def _share_parameters(self):
        """One buffer for all the layers' parameters, named "{layer}.{parameter}" like a PyTorch
        module's; each layer keeps views of its (cache-line aligned) slice."""
        layout, placements, offset = [], [], 0
        alignment = CACHE_LINE // self.dtype.itemsize
        for layer_name, layer in self._named_layers.items():
            if layer._parameters is None:
                continue
            offset = -(-offset // alignment) * alignment
            layout += [(f"{layer_name}.{name}", offset + start, shape, stride)
                       for name, start, shape, stride in layer._parameters.layout]
            placements.append((layer._parameters, offset))
            offset += layer._parameters.size
        if not layout:
            return None
        # The last layer's buffer may run past its last tensor. Each layer's parameters were
        # checked against the machine's memory on their own; here they are checked together.
        model = Parameters(layout, self.dtype, offset,
                           owner=f"{type(self).__name__} of {len(self._named_layers)} layers")
        for parameters, start in placements:
            model.adopt(parameters, start)
        return model

    def _check_layers(self, named):
        """The layers' dtype, after the checks every model makes of its layers (TypeError or
        ValueError naming the layer, before anything moves); subclasses add their own."""
        checked_model_layers(named)
        return common_dtype(named.values())

    # ------------------------------------------------------------------ the protocol

    def forward(self, x, lengths=None, targets=None):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, lengths=None, targets=None)")

    def backward(self, doutput):
        raise NotImplementedError(f"{type(self).__name__} must define backward(doutput)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must define get_config(), returning its constructor's "
                                  "arguments, to be saved")

    @classmethod
    def from_config(cls, config, arrays=None):
        """The model get_config() described (untrained): cls(**config). `arrays`, the number of
        parameter arrays the file holds, lets a subclass refuse a configuration before it builds."""
        return cls(**config)

    def train(self, mode=True):
        for layer in self._named_layers.values():
            layer.train(mode)
        return super().train(mode)

    def zero_grad(self):
        # Each layer its own way: the recurrent ones lazily (their next backward overwrites).
        for layer in self._named_layers.values():
            layer.zero_grad()

    def reset_states(self):
        """Forgets states carried between batches (stateful training; see Sequential)."""

    # ------------------------------------------------------------------ training

    def compile(self, optimizer, loss):
        """optimizer: a fastrnn.optim optimizer or its name ('adam', 'sgd', 'rmsprop', 'adagrad',
        with PyTorch's defaults); loss: 'cross_entropy' (integer targets, accuracy reported too),
        'mse', or a function (output, y, weights) -> (loss, grad)."""
        self.optimizer = optim.get(optimizer)
        self.loss = losses.get(loss)
        return self

    def train_step(self, x, y, lengths=None, stateful=False):
        """One optimizer step on the batch (x, y); returns its metrics, e.g. {'loss': ...,
        'accuracy': ...}. stateful: see Sequential."""
        self._require_compiled("train_step")
        x, y, lengths = self._check_data(x, y, lengths)
        metrics, _ = self._train_batch(x, y, lengths, stateful)
        return metrics

    def _forward_batch(self, x, lengths, y, stateful):
        """The output of a training batch; models that carry states across batches override it."""
        if stateful:
            raise ValueError(f"stateful: {type(self).__name__} does not carry states across batches "
                             "(a Sequential does)")
        return self.forward(x, lengths, y)

    def _train_batch(self, x, y, lengths, stateful, distributed=None):
        if not self.training:
            self.train()
        if distributed is not None:   # this rank's shard of the global batch
            rows = distributed.shard(len(x))
            x, y, lengths = x[rows], y[rows], rows_of(lengths, rows)
        grad, metrics, weight = self._score(self._forward_batch(x, lengths, y, stateful), y, lengths) if len(x) \
            else (None, None, 0.0)
        if distributed is not None:
            # The loss's gradient is of this shard's mean; weighed by its share of the batch's
            # targets, the ranks' gradients sum to that of the whole batch's mean.
            metrics, total = self._combined_metrics(distributed, metrics, weight)
            if grad is not None:
                grad *= weight / total
            weight = total
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(
                f"the loss became {metrics['loss']} (the weights were not updated); lower the learning rate "
                f"(now {self.optimizer.learning_rate:g}) or clip gradients, e.g. "
                f"fastrnn.optim.{type(self.optimizer).__name__}(clip_norm=1.0)")
        self.zero_grad()
        if grad is not None:
            self.backward(grad)
        buffers = self.parameter_buffers()
        if distributed is not None:
            for _, grads in buffers:
                distributed.sum(grads)
        self.optimizer.step(buffers)
        if distributed is not None and self.optimizer.iterations % distributed_module.CHECK_EVERY == 0:
            self._check_identical(distributed)
        return metrics, weight

    def _metric_names(self):
        return ["loss", "accuracy"] if self.loss is losses.cross_entropy else ["loss"]

    def _combined_metrics(self, distributed, metrics, weight):
        """(the metrics of the whole batch, its total weight) from every rank's (metrics, weight):
        weighted means, one small allreduce."""
        names = self._metric_names()
        sums = np.array([weight] + [metrics[name] * weight if metrics else 0.0 for name in names])
        distributed.sum(sums)
        total = float(sums[0])
        return {name: float(value) / total if total else 0.0 for name, value in zip(names, sums[1:])}, total

    def _check_identical(self, distributed):
        if self._parameters is not None:
            distributed.check_identical(self._parameters.values, self.optimizer.iterations)

    def _start_distributed(self, distributed):
        """Every rank from rank 0's parameters, optimizer state and random generators."""
        if self._parameters is not None:
            distributed.broadcast(self._parameters.values)
        generators = self._layer_generators()
        states = distributed.broadcast_object({"model": self._rng.bit_generator.state,
                                               **{name: rng.bit_generator.state for name, rng in generators.items()},
                                               "optimizer": self.optimizer.state_dict()})
        self._rng.bit_generator.state = states["model"]
        for name, rng in generators.items():
            rng.bit_generator.state = states[name]
        if states["optimizer"]["iterations"]:
            self.optimizer.load_state_dict(states["optimizer"], self.parameter_buffers())

    def _target_weights(self, output, lengths):
        """Per-target weights for the loss (None: all 1); see Sequential."""
        return None

    def _score(self, output, y, lengths):
        """(d loss / d output, metrics, weight of the batch) for a batch's output."""
        weights = self._target_weights(output, lengths)
        loss, grad = self.loss(output, y, weights)
        metrics = {"loss": float(loss)}   # plain floats in metrics, History and evaluate's result
        if self.loss is losses.cross_entropy:
            metrics["accuracy"] = float(losses.accuracy(output, y, weights))
        weight = float(weights.sum()) if weights is not None else math.prod(output.shape[:-1])
        return grad, metrics, weight

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_data=None, validation_split=0.0,
            lengths=None, verbose=1, stateful=False, initial_epoch=0, callbacks=None, distributed=None):
        """Trains for `epochs` passes over (x, y) in batches; returns a History (also kept as
        `model.history`) with per-epoch 'loss' (+ 'accuracy' for cross-entropy) and their
        'val_' versions when there is validation data.

        As in Keras, training runs epochs initial_epoch .. epochs-1 (to resume, say), and after
        each one every callback gets (epoch, logs): a callable is called, an object's
        on_epoch_end(epoch, logs) is; logs holds the epoch's metrics, and what a callback adds
        to it lands in the history too.

        validation_data: (x, y) or (x, y, lengths). validation_split: the fraction at the end
        of x (taken before shuffling, as in Keras). stateful=True (Sequential only) is truncated
        BPTT over consecutive chunks (see fastrnn.data.sequence_batches): batch b+1's row i
        continues batch b's row i, states are carried across batches and reset at each epoch
        start, which needs shuffle=False and len(x) divisible by batch_size. A NaN or infinite
        loss raises FloatingPointError naming the epoch and batch, before that batch's update.

        distributed: fastrnn.distributed.mpi() to train data-parallel over MPI when the script
        runs under mpiexec (None, what mpi() gives without it: one process); see
        fastrnn.distributed. batch_size is then the global batch, shared out among the ranks.
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
            raise ValueError("stateful=True carries row i of each batch into row i of the next, so it needs "
                             "shuffle=False")
        if stateful and len(x) % batch_size:
            raise ValueError(f"batch_size: stateful training needs len(x) = {len(x)} to be a multiple of batch_size = "
                             f"{batch_size}, so every batch continues the previous one")

        if distributed is not None:
            _check_communicator(distributed)
            distributed.require_same_training(self, x, y, lengths, batch_size, epochs, stateful)
            if distributed.rank != 0:
                verbose = 0
        with self._distributed_run(distributed):
            self.history = History()
            batches = -(-len(x) // batch_size)
            for epoch in range(initial_epoch + 1, epochs + 1):
                self.reset_states()
                order = self._rng.permutation(len(x)) if shuffle else None
                progress = Progress(epoch, epochs, batches, verbose)
                means = _RunningMeans()
                for batch, rows in enumerate(batch_rows(len(x), batch_size, order), 1):
                    try:
                        metrics, weight = self._train_batch(x[rows], y[rows], rows_of(lengths, rows), stateful,
                                                            distributed)
                    except FloatingPointError as error:
                        raise FloatingPointError(f"fit: at epoch {epoch}, batch {batch} of {batches}: "
                                                 f"{error}") from None
                    means.add(metrics, weight)
                    progress.update(means.means())
                metrics = means.means()
                if validation_data is not None:
                    metrics.update({f"val_{name}": value for name, value in
                                    self.evaluate(*validation_data, distributed=distributed).items()})
                progress.close(metrics)
                self.epochs_done = epoch   # before the callbacks: a checkpoint they write counts this epoch
                for callback in callbacks:   # after the epoch's line, so what they print reads in order
                    (callback.on_epoch_end if hasattr(callback, "on_epoch_end") else callback)(epoch - 1, metrics)
                self.history.append(metrics)
            self.reset_states()
        return self.history

    @contextlib.contextmanager
    def _distributed_run(self, distributed):
        """Around fit's epochs: with `distributed`, every rank starts from rank 0's state and they
        must end identical, and an exception on any rank ends them all (none waits in a collective)."""
        if distributed is None:
            yield
            return
        try:
            self._start_distributed(distributed)
            yield
            self._check_identical(distributed)
        except BaseException as error:
            distributed.abort(error)

    def _split_validation(self, data, validation_data, validation_split):
        """(training (x, y, lengths), checked validation (x, y, lengths) or None)."""
        validation_split = real_number(validation_split, "validation_split", 0, 1)
        if validation_split:
            if validation_data is not None:
                raise ValueError("validation_split: give either validation_data or validation_split, not both")
            kept = int(len(data[0]) * (1 - validation_split))
            if not 0 < kept < len(data[0]):
                raise ValueError(f"validation_split: {validation_split} of {len(data[0])} sequences leaves an "
                                 "empty part")
            return (tuple(rows_of(part, slice(kept)) for part in data),
                    tuple(rows_of(part, slice(kept, None)) for part in data))
        if validation_data is None:
            return data, None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data: expected a tuple (x, y) or (x, y, lengths)")
        return data, self._check_data(*validation_data)

    # ------------------------------------------------------------------ inference

    def evaluate(self, x, y, lengths=None, batch_size=32, distributed=None):
        """{'loss': ..., ['accuracy': ...]} over (x, y), in eval mode (no dropout). distributed
        (see fit): each rank evaluates its share of the rows, and every rank gets the means."""
        if self.loss is None:
            raise ValueError("evaluate: the model has no loss; call compile(optimizer, loss) first")
        x, y, lengths = self._check_data(x, y, lengths)
        if distributed is not None:
            rows = _check_communicator(distributed).shard(len(x))
            x, y, lengths = x[rows], y[rows], rows_of(lengths, rows)
        self.eval()
        means = _RunningMeans()
        for rows in batch_rows(len(x), positive_int(batch_size, "batch_size")):
            batch_lengths = rows_of(lengths, rows)
            output = self.forward(x[rows], batch_lengths, y[rows])
            _, metrics, weight = self._score(output, y[rows], batch_lengths)
            means.add(metrics, weight)
        if distributed is None:
            return means.means()
        return self._combined_metrics(distributed, means.means() if means.weight else None, means.weight)[0]

    def predict(self, x, lengths=None, batch_size=32):
        """The model's output for x (logits for a classifier), in eval mode, computed in batches."""
        return self._in_batches(self.forward, x, lengths, batch_size)

    def _in_batches(self, function, x, lengths, batch_size):
        """function(x, lengths) over x in batches, in eval mode, concatenated."""
        x, _, lengths = self._check_data(x, None, lengths)
        self.eval()
        return np.concatenate([function(x[rows], rows_of(lengths, rows))
                               for rows in batch_rows(len(x), positive_int(batch_size, "batch_size"))])

    # ------------------------------------------------------------------ saving

    def save(self, path):
        """Writes the model (its class, configuration and weights) to one file; see fastrnn.load.
        A compiled model's training state goes with it (the optimizer, its state and step count,
        the loss, epochs_done and the random generators), so the loaded model continues training
        exactly: fit(..., initial_epoch=loaded.epochs_done). Not saved: a loss function or
        learning-rate schedule of your own (compile the loaded model again)."""
        io.save(self, path)

    def training_state(self):
        """(JSON description, arrays) of the training state save() writes, or None when the model
        is not compiled or compiled with a loss of its own."""
        loss = next((name for name, function in losses.LOSSES.items() if function is self.loss), None)
        if self.optimizer is None or loss is None:
            return None
        optimizer = self.optimizer.state_dict()
        generators = {name: rng.bit_generator.state for name, rng in self._layer_generators().items()}
        return ({"optimizer": self.optimizer.get_config(), "iterations": optimizer["iterations"], "loss": loss,
                 "epochs_done": self.epochs_done, "generator": self._rng.bit_generator.state,
                 "layer_generators": generators}, optimizer["arrays"])

    def _layer_generators(self):
        """{layer name: its random generator} of the layers that have one (initialisation, dropout)."""
        return {name: layer._rng for name, layer in self._named_layers.items()
                if isinstance(getattr(layer, "_rng", None), np.random.Generator)}

    def restore_training_state(self, description, arrays):
        """Compiles the model as training_state() described it and restores that state."""
        self.compile(optim.Optimizer.from_config(description["optimizer"]), description["loss"])
        self.optimizer.load_state_dict({"iterations": description["iterations"], "arrays": arrays},
                                       self.parameter_buffers())
        self._rng.bit_generator.state = description["generator"]
        for name, state in description["layer_generators"].items():
            self._named_layers[name]._rng.bit_generator.state = state
        epochs_done = description["epochs_done"]
        if type(epochs_done) is not int or epochs_done < 0:
            raise ValueError(f"epochs_done: expected a non-negative integer, got {epochs_done!r}")
        self.epochs_done = epochs_done

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
        if lengths is not None and x.ndim < 2:
            raise ValueError(f"lengths: needs sequences x of shape (batch, steps, ...), got shape {x.shape}")
        return x, y, None if lengths is None else sequence_lengths(lengths, *x.shape[:2])

    def __repr__(self):
        lines = "".join(f"\n  ({name}): {layer!r}" for name, layer in self._named_layers.items())
        count = sum(view.size for view in self.params.values())
        return f"{type(self).__name__}({lines}\n)  # {count} parameters"


def _check_communicator(distributed):
    """`distributed`, or TypeError unless it is what fastrnn.distributed.mpi() returns."""
    if not isinstance(distributed, distributed_module.Communicator):
        raise TypeError(f"distributed: expected fastrnn.distributed.mpi() (a Communicator, or None for one "
                        f"process), got {type(distributed).__name__}")
    return distributed


def model_class_name(cls):
    """The name a saved file gives a model class: its module and qualified name."""
    return f"{cls.__module__}.{cls.__qualname__}"


def checked_model_layers(named):
    """{name: layer} checked as any model checks its layers, or TypeError/ValueError naming the
    layer: at least one, each a fastrnn layer that is in no other model and appears once."""
    if not named:
        raise ValueError("layers: expected at least one layer")
    seen = set()   # ids of the layers before this one: a model of n layers is checked in O(n)
    for name, layer in named.items():
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"layers: names are non-empty strings without '.', got {name!r}")
        if not isinstance(layer, Layer) or isinstance(layer, Model):
            raise TypeError(f"layers[{name}]: expected a fastrnn layer (not a model: list its layers), "
                            f"got {type(layer).__name__}")
        if id(layer) in seen:
            raise ValueError(f"layers[{name}]: {layer!r} appears twice; create one layer per position")
        seen.add(id(layer))
        if layer._in_model:
            raise ValueError(f"layers[{name}]: {layer!r} already belongs to another model (its parameters "
                             "live in that model's buffer); create a new layer, and copy the weights with "
                             "new_layer.load_state_dict(layer.state_dict()) if you want them")
    return named


def common_dtype(layers):
    """The one dtype of the layers that have one (float32 if none has), or ValueError."""
    dtypes = sorted({layer.dtype.name for layer in layers if layer.dtype is not None})
    if len(dtypes) > 1:
        raise ValueError(f"layers: expected one dtype for all layers, got {dtypes}; pass the same dtype= to each")
    return np.dtype(dtypes[0] if dtypes else "float32")


def valid_step_weights(output, lengths):
    """Loss weights of a per-step output (N, T, ...): 1 at each sequence's valid steps, 0 at
    its padding (None: every step valid, or an output that is not per step)."""
    if lengths is None or output.ndim != 3:
        return None
    return (np.arange(output.shape[1]) < lengths[:, None]).astype(output.dtype)


def batch_rows(count, batch_size, order=None):
    """Row selections of consecutive batches: slices, or index arrays into `order`."""
    for start in range(0, count, batch_size):
        yield slice(start, start + batch_size) if order is None else order[start:start + batch_size]


def rows_of(array, rows):
    """array[rows], for arrays that may be None (lengths)."""
    return None if array is None else array[rows]

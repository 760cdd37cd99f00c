"""The layer protocol every fastrnn layer follows, and the flat parameter storage behind it.

Each layer keeps all its parameters in one contiguous buffer and its gradients in another;
`params` and `grads` are named views into them. Native kernels and optimizers work on the
flat buffers directly (one call, one vectorised update), users see PyTorch's names and shapes.
"""

import math
from collections.abc import Mapping

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Every model class (subclasses of training.Model) by the name a saved file gives it: load builds
# only classes defined in this process, and never imports anything a file names.
MODEL_CLASSES = {}


def float_dtype(dtype):
    """np.dtype for a layer's `dtype` argument: float32 or float64 (None: float32, PyTorch's
    default)."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from error
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {resolved}")
    return resolved


def positive_int(value, name):
    """value as an int, or TypeError/ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def real_number(value, name, low=-math.inf, high=math.inf, low_inclusive=True, high_inclusive=False):
    """value as a float in the interval from low to high ([low, high) by default), else
    TypeError/ValueError naming the argument. NaN is in no interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    above_low = low <= value if low_inclusive else low < value
    below_high = value <= high if high_inclusive else value < high
    if not (above_low and below_high):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name}: expected a value in {interval}, got {value}")
    return float(value)


def probability(value, name):
    """value as a float in [0, 1), or ValueError naming the argument."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
    return float(value)


def float_array(value, dtype, name):
    """value as an array of `dtype` (real numbers are converted), or TypeError naming it.
    dtype None, for layers that work in their input's dtype: float32 and float64 stay as they
    are, other real numbers become float64 (the dtypes the kernels and layers support)."""
    array = np.asarray(value)
    _require_real_numbers(array.dtype, name)
    if dtype is None:
        dtype = array.dtype if array.dtype in FLOAT_DTYPES else np.float64
    return array.astype(dtype, copy=False)


def _require_real_numbers(dtype, name):
    if dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {dtype}")


def unaliased(array, source):
    """`array`, converted from the caller's `source`, as memory the caller cannot write: copied
    when the two may overlap (no conversion made a copy). What a layer keeps for backward goes
    through this, so writing into an input between forward and backward cannot change the
    gradients."""
    return array.copy() if np.may_share_memory(array, source) else array


def output_gradient(dy, shape, dtype):
    """dy as an array of `dtype` (None: float32/float64 kept, see float_array) of the forward
    output's `shape`, or TypeError/ValueError naming it."""
    dy = float_array(dy, dtype, "dy")
    if dy.shape != shape:
        raise ValueError(f"dy: expected the shape of the forward's output {shape}, got {dy.shape}")
    return dy


def sequence_lengths(lengths, batch, steps):
    """lengths as an integer array (batch,) of values in [1, steps], or TypeError/ValueError
    naming it; None stays None (all steps valid). fastrnn's one check of lengths: the layers,
    models and the reference call it, and the native one repeats its messages."""
    if lengths is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers (one per sequence), got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},) (one integer per sequence), got shape {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths: expected values in [1, {steps}] (the steps of x), got values from "
                         f"{lengths.min()} to {lengths.max()}")
    return lengths


def check_parameter(shape, dtype, expected_shape, name):
    """TypeError/ValueError naming the parameter `name` unless an array of `shape` and `dtype`
    can be its value: real numbers of its shape. load applies it to an array's .npy header,
    before the data is read."""
    _require_real_numbers(dtype, name)
    if shape != expected_shape:
        raise ValueError(f"{name}: expected shape {expected_shape}, got {shape}")


def parameter_array(value, shape, dtype, name):
    """value as an array of `shape` and `dtype`, to be copied into the parameter `name`; the one
    check behind both `params[name] = value` and load_state_dict. Real numbers only (see
    check_parameter), and finite values must stay finite in `dtype` (1e300 does not fit a
    float32). TypeError/ValueError naming the parameter otherwise."""
    source = np.asarray(value)
    check_parameter(source.shape, source.dtype, shape, name)
    with np.errstate(over="ignore"):   # an overflow is reported below, naming the parameter
        array = source.astype(dtype, copy=False)
    overflowed = np.isinf(array) & np.isfinite(source)
    if overflowed.any():
        raise ValueError(f"{name}: {source[overflowed].flat[0]} is too large for {np.dtype(dtype).name} "
                         f"(largest finite value {np.finfo(dtype).max:.4g})")
    return array


def check_names(expected, given, name):
    """ValueError naming `name` unless the names `given` are exactly the `expected` ones (each
    a collection of names)."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    if missing or unexpected:
        raise ValueError(f"{name}: missing keys {missing}, unexpected keys {unexpected}")


def class_ids(value, num_classes, name):
    """value as an integer array of ids in [0, num_classes), or TypeError/ValueError naming it."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids in [0, {num_classes}), got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name}: expected ids in [0, {num_classes}), got values from {array.min()} to {array.max()}")
    return array


class ParameterDict(Mapping):
    """Named views into a flat buffer. Assigning `d[name] = value` copies into the view (the
    shape must match), so the flat buffer the kernels and optimizers use stays the one truth.
    `before_read` (if given) runs before a view is handed out: the gradient dict uses it to
    carry out a pending lazy zero_grad."""

    def __init__(self, views, before_read=None):
        self._views = views
        self._before_read = before_read

    def __getitem__(self, name):
        if self._before_read:
            self._before_read()
        return self._views[name]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __setitem__(self, name, value):
        if name not in self._views:
            raise KeyError(f"{name!r} is not a parameter of this layer; it has {list(self._views)}")
        view = self._views[name]
        view[...] = parameter_array(value, view.shape, view.dtype, name)

    def __repr__(self):
        shapes = ", ".join(f"{name}: {view.shape}" for name, view in self._views.items())
        return f"ParameterDict({{{shapes}}})"


def check_memory(size_in_bytes, subject):
    """ValueError "{subject} would take X GiB, more than this machine's Y GiB of memory" when
    `size_in_bytes` exceeds the machine's memory: sizes that cannot fit are refused before
    anything is allocated (the native layers' check, one authority for both)."""
    _core.check_memory(float(size_in_bytes), subject)


def check_parameter_memory(size, dtype, owner):
    """ValueError, in the words of the recurrent layers' native check, when `size` parameters of
    `dtype` and their gradients cannot fit in the machine's memory; `owner` (a layer, or a
    description) is what would hold them."""
    dtype = np.dtype(dtype)
    check_memory(2 * size * dtype.itemsize, f"{owner}: its {dtype.name} parameters and their gradients")


def aligned_zeros(size, dtype, alignment=64):
    """np.zeros(size, dtype) starting on an `alignment`-byte boundary (whole cache lines for the
    kernels' vector loads)."""
    dtype = np.dtype(dtype)
    raw = np.zeros(size * dtype.itemsize + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + size * dtype.itemsize].view(dtype)


class Parameters:
    """A flat parameter buffer and its gradient buffer, with named views of both.

    layout: [(name, offset, shape[, row_stride])]; a 2-D tensor with a row_stride longer than its
    rows is a strided view (rows padded for aligned vector loads). Gaps between tensors and the
    padding of rows (alignment) stay zero. size: the buffer's length when it runs on past the
    last tensor (None: it ends there). owner: what holds the parameters (a layer, or a
    description), named in the ValueError raised when they and their gradients cannot fit in
    the machine's memory.
    """

    def __init__(self, layout, dtype, size=None, *, owner):
        self.dtype = np.dtype(dtype)
        self.layout, self.size = self.layout_and_size(layout, size)
        self.shapes = {name: shape for name, _, shape, _ in self.layout}
        # Every layer with parameters, and a Sequential's model-wide buffer, come through here.
        check_parameter_memory(self.size, self.dtype, owner)
        self.values = aligned_zeros(self.size, self.dtype)
        self.grads = aligned_zeros(self.size, self.dtype)
        # zero_grad() on a layer whose backward can overwrite only sets this: the next backward
        # writes instead of adding (no separate pass over the buffer), and every other way to
        # read the gradients (grad_views, Layer.grads, Layer.parameter_buffers) zeroes first.
        # Like PyTorch's zero_grad(set_to_none=True), a bare array view kept from before
        # zero_grad() is not zeroed; read gradients through `grads`.
        self.zero_pending = False
        self._children = []   # Parameters living in slices of these buffers (see adopt)
        self._make_views()

    @classmethod
    def layout_and_size(cls, layout, size=None):
        """(layout as [(name, offset, shape, row_stride)], the buffer's length): what the
        constructor allocates for these arguments, known without allocating it."""
        entries = []
        for name, offset, shape, *row_stride in layout:
            shape = tuple(int(n) for n in shape)
            entries.append((name, int(offset), shape, int(row_stride[0]) if row_stride else shape[-1]))
        end = max((offset + cls._extent(shape, stride) for _, offset, shape, stride in entries), default=0)
        return entries, max(end, size or 0)

    def settle_grads(self):
        """Carries out a pending lazy zero_grad, here and in adopted children."""
        for child in self._children:
            child.settle_grads()
        if self.zero_pending:
            self.grads.fill(0)
            self.zero_pending = False

    def adopt(self, child, offset):
        """Moves `child` into these buffers at `offset` (its values copied, its views rebuilt) and
        settles it whenever these gradients are read."""
        child.share(self.values[offset:offset + child.size], self.grads[offset:offset + child.size])
        self._children.append(child)

    def share(self, values, grads):
        """Moves the parameters into `values` and `grads` (1-D, `size` long, typically slices of a
        model-wide buffer): the current values are copied there and the views rebuilt on them."""
        values[...] = self.values
        grads[...] = self.grads
        self.values, self.grads = values, grads
        self._make_views()

    def _make_views(self):
        self.value_views = ParameterDict(self._views(self.values))
        self.grad_views = ParameterDict(self._views(self.grads), before_read=self.settle_grads)

    @staticmethod
    def _extent(shape, row_stride):
        """Values a tensor spans in the buffer, its last row's padding included."""
        return int(np.prod(shape[:-1])) * row_stride

    def _views(self, buffer):
        views = {}
        for name, offset, shape, stride in self.layout:
            rows = buffer[offset:offset + self._extent(shape, stride)].reshape(shape[:-1] + (stride,))
            views[name] = rows[..., :shape[-1]]
        return views

    def state_dict(self):
        return {name: view.copy() for name, view in self.value_views.items()}

    def load_state_dict(self, state):
        """Copies `state` (name -> array-like, e.g. a torch state_dict's .numpy() values) in;
        names must match exactly and shapes must agree."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state).__name__}")
        check_names(self.shapes, state, "state_dict")
        converted = {name: parameter_array(state[name], shape, self.dtype, f"state_dict[{name!r}]")
                     for name, shape in self.shapes.items()}
        for name, value in converted.items():   # all checked first: no half-loaded layer
            self.value_views[name][...] = value


class Layer:
    """Base of fastrnn layers: forward/backward by hand, parameters in a Parameters buffer.

    Subclasses implement forward(x) and backward(dy) -> dx. backward ADDS into `grads`; call
    zero_grad() first. A layer with parameters describes them in _parameter_layout() and ends
    its constructor with _create_parameters(). What a Sequential needs besides:
    `output_features`, `get_config`, and the class flags `recurrent` (forward(x, state,
    lengths) -> (y, state_n), like RNN/LSTM/GRU), `uses_lengths` (forward(x, lengths)) and
    `elementwise` (each output feature is a function of the same input feature alone).
    """

    _parameters = None
    training = True
    dtype = None          # None: works in its input's dtype
    recurrent = False
    uses_lengths = False
    elementwise = False
    _kept = None          # what the last training-mode forward keeps for backward
    _in_model = False        # set by the model that holds the layer (and its parameters)
    _planned = False         # arguments checked, parameters not allocated yet (see _plan)

    @classmethod
    def _plan(cls, arguments):
        """The layer cls(**arguments) builds, with its arguments checked but its parameters not
        yet allocated: load checks a whole model (feature sizes, memory) this way before it
        allocates any of it. _build() then allocates them, as zeros."""
        layer = cls.__new__(cls)
        layer._planned = True
        layer.__init__(**arguments)
        return layer

    def _parameter_layout(self):
        """(layout, size) of the layer's parameters as Parameters takes them, from its checked
        arguments; None for a layer without parameters."""
        return None

    def _parameter_size(self):
        """The length of the layer's parameter buffer, from its arguments (0 without parameters)."""
        plan = self._parameter_layout()
        return 0 if plan is None else Parameters.layout_and_size(*plan)[1]

    def _build(self):
        """Allocates the parameters _parameter_layout() describes (zeros); a planned layer is
        complete after it."""
        self._planned = False
        plan = self._parameter_layout()
        if plan is not None:
            layout, size = plan
            self._parameters = Parameters(layout, self.dtype, size, owner=self)

    def _create_parameters(self):
        """The last step of the constructor of a layer with parameters: allocates and
        initialises them, unless the layer is only planned."""
        if not self._planned:
            self._build()
            self.reset_parameters()

    @property
    def params(self):
        return self._parameters.value_views if self._parameters else ParameterDict({})

    @property
    def grads(self):
        return self._parameters.grad_views if self._parameters else ParameterDict({})

    def parameter_buffers(self):
        """[(values, grads)] flat buffers, for optimizers (call it each step: it settles a lazy
        zero_grad)."""
        if not self._parameters:
            return []
        self._parameters.settle_grads()
        return [(self._parameters.values, self._parameters.grads)]

    def zero_grad(self):
        if self._parameters:
            self._parameters.grads.fill(0)

    def train(self, mode=True):
        self.training = bool(mode)
        if not mode:
            self._kept = None
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        return self._parameters.state_dict() if self._parameters else {}

    def load_state_dict(self, state):
        if self._parameters:
            self._parameters.load_state_dict(state)
        elif state:
            raise ValueError(f"state_dict: this layer has no parameters, got keys {list(state)}")

    def _fill_uniform(self, fan):
        """PyTorch's default initialisation: every parameter U(-1/sqrt(fan), 1/sqrt(fan)), drawn
        from the layer's generator `self._rng`."""
        bound = 1.0 / np.sqrt(fan)
        for view in self._parameters.value_views.values():   # in order; padding stays zero
            view[...] = self._rng.uniform(-bound, bound, view.shape)

    def _keep(self, *values):
        if self.training:
            self._kept = values

    def _take_kept(self):
        """What forward kept; each training-mode forward supports one backward."""
        if self._kept is None:
            raise ValueError(f"backward: {type(self).__name__} has no training-mode forward to differentiate; "
                             "run forward() in training mode first (each forward supports one backward)")
        kept, self._kept = self._kept, None
        return kept

    def output_features(self, input_features):
        """Size of the output's last axis for inputs with `input_features` in theirs (None: not
        known), or ValueError when this layer cannot take such inputs. Elementwise by default."""
        return input_features

    def get_config(self):
        """The constructor's arguments as a JSON-serialisable dict (for save/load)."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_config(), so it cannot be saved")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

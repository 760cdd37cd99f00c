"""Optimizers that update flat parameter buffers in place, and a learning-rate schedule.

Update rules, argument names and defaults are PyTorch's (torch.optim.SGD, Adam, RMSprop,
Adagrad), so a fastrnn run can be checked step by step against torch. Each step is a few
vectorised NumPy calls per (values, grads) buffer pair; a Sequential has a single pair.
On top of torch's rules every optimizer can clip gradients first: `clip_value` clamps each
element, `clip_norm` rescales all gradients together to that global norm (like
torch.nn.utils.clip_grad_norm_). Clipping and weight decay modify the grads in place.
"""

import inspect
import math

import numpy as np

from .base import real_number


def _divide_by_root(grads, squares, eps, out):
    """out = grads / (sqrt(squares) + eps), the adaptive step of RMSprop and Adagrad."""
    np.sqrt(squares, out=out)
    out += eps
    np.divide(grads, out, out=out)


def _check_buffers(buffers):
    """TypeError/ValueError naming the entry, unless `buffers` is a list of (values, grads)
    pairs of floating-point arrays, the two of a pair of one shape."""
    if not isinstance(buffers, (list, tuple)):
        raise TypeError(f"buffers: expected a list of (values, grads) pairs, got {type(buffers).__name__}")
    for index, pair in enumerate(buffers):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and
                all(isinstance(array, np.ndarray) and array.dtype.kind == "f" for array in pair)):
            kinds = [f"{item.dtype} array" if isinstance(item, np.ndarray) else type(item).__name__
                     for item in (pair if isinstance(pair, (list, tuple)) else [pair])]
            raise TypeError(f"buffers[{index}]: expected a pair (values, grads) of floating-point arrays, got "
                            f"{', '.join(kinds)}")
        values, grads = pair
        if values.shape != grads.shape:
            raise ValueError(f"buffers[{index}]: expected values and grads of one shape, got {values.shape} and "
                             f"{grads.shape}")


class ExponentialDecay:
    """Keras' schedule: lr(step) = initial_lr * decay_rate ** (step / decay_steps), where step
    counts optimizer steps from 0. staircase=True uses floor(step / decay_steps): PyTorch's
    StepLR(step_size=decay_steps, gamma=decay_rate) counted in optimizer steps.
    Pass it as any optimizer's `lr`. The rate is in (0, 1], so the learning rate never grows
    past initial_lr (a growing one would overflow a float within a few thousand steps)."""

    def __init__(self, initial_lr, decay_steps, decay_rate, staircase=False):
        self.initial_lr = real_number(initial_lr, "initial_lr", 0, low_inclusive=False)
        self.decay_steps = real_number(decay_steps, "decay_steps", 0, low_inclusive=False)
        self.decay_rate = real_number(decay_rate, "decay_rate", 0, 1, low_inclusive=False, high_inclusive=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        # Float floor division: a tiny decay_steps makes the exponent inf, which math.floor rejects.
        exponent = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.initial_lr * self.decay_rate ** exponent

    def __repr__(self):
        return (f"ExponentialDecay(initial_lr={self.initial_lr}, decay_steps={self.decay_steps}, "
                f"decay_rate={self.decay_rate}, staircase={self.staircase})")


class Optimizer:
    """Base: learning rate (a number or a schedule step -> lr), weight decay (L2 added to the
    gradient, as in torch), clipping, and per-buffer state created on the first step.
    Subclasses define _new_state(values) and _update(values, grads, state, lr)."""

    def __init__(self, lr, weight_decay=0.0, clip_norm=None, clip_value=None):
        self.lr = lr if callable(lr) else real_number(lr, "lr", 0, low_inclusive=False)
        self.weight_decay = real_number(weight_decay, "weight_decay", 0)
        self.clip_norm = None if clip_norm is None else real_number(clip_norm, "clip_norm", 0, low_inclusive=False)
        self.clip_value = None if clip_value is None else real_number(clip_value, "clip_value", 0, low_inclusive=False)
        self.iterations = 0      # steps taken; the schedule's argument
        self._states = None
        self._shapes = None

    @property
    def learning_rate(self):
        """The learning rate the next step uses; a schedule's value is checked each step (it may
        decay to 0, never go negative or NaN)."""
        if not callable(self.lr):
            return self.lr
        return real_number(self.lr(self.iterations), f"lr (the schedule at step {self.iterations})", 0)

    def step(self, buffers):
        """Updates each (values, grads) pair of flat arrays in place, e.g.
        `optimizer.step(model.parameter_buffers())`. The same buffers must come every step."""
        _check_buffers(buffers)
        shapes = [values.shape for values, _ in buffers]
        if self._states is None:
            self._states = [self._new_state(values) for values, _ in buffers]
            self._shapes = shapes
        elif shapes != self._shapes:
            raise ValueError(f"buffers: this optimizer was stepped with buffers of shapes {self._shapes}, "
                             f"got {shapes}; use one optimizer per model")
        lr = self.learning_rate
        self._clip([grads for _, grads in buffers])
        for (values, grads), state in zip(buffers, self._states):
            if self.weight_decay:    # every _update writes scratch before reading it
                np.multiply(values, self.weight_decay, out=state["scratch"])
                grads += state["scratch"]
            self._update(values, grads, state, lr)
        self.iterations += 1

    def _clip(self, all_grads):
        if self.clip_value is not None:
            for grads in all_grads:
                np.clip(grads, -self.clip_value, self.clip_value, out=grads)
        if self.clip_norm is not None:
            norm = math.sqrt(sum(_squared_norm(grads) for grads in all_grads))
            scale = self.clip_norm / (norm + 1e-6)   # torch's clip_grad_norm_ formula
            if scale < 1:
                for grads in all_grads:
                    grads *= scale

    def __repr__(self):
        settings = ", ".join(f"{name}={value!r}" for name, value in vars(self).items()
                             if not name.startswith("_") and name != "iterations")
        return f"{type(self).__name__}({settings})"

    # ------------------------------------------------------------------ saving (a model's checkpoint)

    def get_config(self):
        """{"class": name, "config": constructor arguments} as JSON values; a schedule as lr is
        saved the same way."""
        arguments = {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                     if name != "self"}
        if isinstance(self.lr, ExponentialDecay):
            arguments["lr"] = {"class": "ExponentialDecay", "config": vars(self.lr).copy()}
        elif callable(self.lr):
            raise ValueError(f"lr: {self.lr!r} is a schedule of your own; a checkpoint saves only numbers and "
                             "fastrnn.optim.ExponentialDecay")
        return {"class": type(self).__name__, "config": arguments}

    @staticmethod
    def from_config(config):
        """The optimizer get_config() described, without state."""
        arguments = dict(config["config"])
        if isinstance(arguments.get("lr"), dict):
            arguments["lr"] = ExponentialDecay(**arguments["lr"]["config"])
        return OPTIMIZERS[config["class"].lower()](**arguments)

    def state_dict(self):
        """The step count and each buffer's state arrays ("<buffer>.<name>"): what, with the
        configuration, continues training exactly."""
        arrays = {f"{index}.{name}": array for index, state in enumerate(self._states or [])
                  for name, array in state.items() if name != "scratch"}
        return {"iterations": self.iterations, "arrays": arrays}

    def load_state_dict(self, state, buffers):
        """Restores state_dict() for these (values, grads) buffers, checked against them."""
        _check_buffers(buffers)
        states = [self._new_state(values) for values, _ in buffers]
        expected = {f"{index}.{name}": array.shape for index, buffer_state in enumerate(states)
                    for name, array in buffer_state.items() if name != "scratch"}
        given = state["arrays"]
        if set(given) != set(expected) or any(np.shape(given[name]) != shape for name, shape in expected.items()):
            raise ValueError(f"optimizer state: expected arrays {expected}, got "
                             f"{ {name: np.shape(array) for name, array in given.items()} }")
        for name, array in given.items():
            index, key = name.split(".", 1)
            states[int(index)][key][...] = array
        self._states, self._shapes = states, [values.shape for values, _ in buffers]
        self.iterations = int(state["iterations"])


def _squared_norm(grads):
    """sum(grads**2) as a Python float: float32 gradients whose squares overflow float32 (finite
    gradients of 1e19 and more, after a blow-up that clipping is there to tame) are summed again
    in float64 rather than giving inf, which would zero the step."""
    with np.errstate(over="ignore"):
        squares = float(np.dot(grads, grads))
    if math.isinf(squares) and grads.dtype != np.float64:
        wide = grads.astype(np.float64)
        squares = float(np.dot(wide, wide))
    return squares


class SGD(Optimizer):
    """p -= lr * g; with momentum: b = momentum * b + g, p -= lr * b (nesterov: lr * (g + momentum * b))."""

    def __init__(self, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, clip_norm=None, clip_value=None):
        super().__init__(lr, weight_decay, clip_norm, clip_value)
        self.momentum = real_number(momentum, "momentum", 0)
        self.nesterov = bool(nesterov)
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")

    def _new_state(self, values):
        return {"momentum": np.zeros_like(values), "scratch": np.empty_like(values)}

    def _update(self, values, grads, state, lr):
        direction, scratch = grads, state["scratch"]
        if self.momentum:
            buffer = direction = state["momentum"]
            buffer *= self.momentum
            buffer += grads
            if self.nesterov:
                np.multiply(buffer, self.momentum, out=scratch)
                scratch += grads
                direction = scratch
        np.multiply(direction, -lr, out=scratch)
        values += scratch


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (t = 1, 2, ...)."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clip_norm=None, clip_value=None):
        super().__init__(lr, weight_decay, clip_norm, clip_value)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.betas = (real_number(betas[0], "betas[0]", 0, 1), real_number(betas[1], "betas[1]", 0, 1))
        self.eps = real_number(eps, "eps", 0)

    def _new_state(self, values):
        return {"m": np.zeros_like(values), "v": np.zeros_like(values), "scratch": np.empty_like(values)}

    def _update(self, values, grads, state, lr):
        beta1, beta2 = self.betas
        m, v, scratch = state["m"], state["v"], state["scratch"]
        t = self.iterations + 1
        m *= beta1
        np.multiply(grads, 1 - beta1, out=scratch)
        m += scratch
        v *= beta2
        np.multiply(grads, grads, out=scratch)
        scratch *= 1 - beta2
        v += scratch
        np.sqrt(v, out=scratch)
        scratch /= math.sqrt(1 - beta2 ** t)
        scratch += self.eps
        np.divide(m, scratch, out=scratch)
        scratch *= -lr / (1 - beta1 ** t)
        values += scratch


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr * g / (sqrt(v) + eps)
    (with momentum: b = momentum * b + g / (sqrt(v) + eps), p -= lr * b)."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        super().__init__(lr, weight_decay, clip_norm, clip_value)
        self.alpha = real_number(alpha, "alpha", 0, 1)
        self.eps = real_number(eps, "eps", 0)
        self.momentum = real_number(momentum, "momentum", 0)

    def _new_state(self, values):
        return {"v": np.zeros_like(values), "momentum": np.zeros_like(values), "scratch": np.empty_like(values)}

    def _update(self, values, grads, state, lr):
        v, scratch = state["v"], state["scratch"]
        v *= self.alpha
        np.multiply(grads, grads, out=scratch)
        scratch *= 1 - self.alpha
        v += scratch
        _divide_by_root(grads, v, self.eps, out=scratch)
        if self.momentum:
            buffer = state["momentum"]
            buffer *= self.momentum
            buffer += scratch
            np.multiply(buffer, -lr, out=scratch)
        else:
            scratch *= -lr
        values += scratch


class Adagrad(Optimizer):
    """s += g^2; p -= lr * g / (sqrt(s) + eps)."""

    def __init__(self, lr=1e-2, eps=1e-10, weight_decay=0.0, clip_norm=None, clip_value=None):
        super().__init__(lr, weight_decay, clip_norm, clip_value)
        self.eps = real_number(eps, "eps", 0)

    def _new_state(self, values):
        return {"sum": np.zeros_like(values), "scratch": np.empty_like(values)}

    def _update(self, values, grads, state, lr):
        squares, scratch = state["sum"], state["scratch"]
        np.multiply(grads, grads, out=scratch)
        squares += scratch
        _divide_by_root(grads, squares, self.eps, out=scratch)
        scratch *= -lr
        values += scratch


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(optimizer):
    """An Optimizer from its name (with torch's defaults), or `optimizer` itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)} or an Optimizer instance, got {optimizer!r}")


__all__ = ["Adagrad", "Adam", "ExponentialDecay", "Optimizer", "RMSprop", "SGD", "get"]


def __dir__():   # dir() and editors' completion: the public names only, not numpy or math
    return __all__

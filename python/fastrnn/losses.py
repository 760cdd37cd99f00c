"""Loss functions: each takes the model's output, the targets and optional per-step weights
(0 masks a padded step) and returns (loss, d loss / d output).

Weighted losses are means over the weighted steps, like TF's `sequence_loss`:
sum(weights * per_step_loss) / sum(weights). Gradient clipping is the optimizer's business.
"""

import math

import numpy as np

from .base import class_ids, float_array


def _step_weights(weights, steps_shape, dtype):
    """weights as an array of `dtype` and shape steps_shape of finite non-negative numbers, or
    TypeError/ValueError naming them."""
    weights = float_array(weights, dtype, "weights")
    if weights.shape != steps_shape:
        raise ValueError(f"weights: expected shape {steps_shape} (one per target step), got {weights.shape}")
    invalid = weights[~(np.isfinite(weights) & (weights >= 0))]
    if invalid.size:
        raise ValueError(f"weights: expected finite non-negative numbers (0 masks a step), got {float(invalid[0])}")
    return weights


def _step_scales(weights, steps_shape, dtype):
    """Each step's share of the mean: weights / sum(weights) flattened to (steps,), or the
    scalar 1 / steps without weights. All-zero weights give zero loss and gradient."""
    if weights is None:
        return dtype.type(1 / max(math.prod(steps_shape), 1))
    weights = _step_weights(weights, steps_shape, dtype)
    total = weights.sum()
    return (weights / total if total > 0 else np.zeros_like(weights)).ravel()


def _outputs(value, name):
    """The model's output as a float32 or float64 array (other real numbers become float64, so
    the loss and its gradient are never computed in integers) with a non-empty last axis (the
    classes or features), or TypeError/ValueError naming the argument."""
    outputs = float_array(value, None, name)
    if outputs.ndim == 0 or outputs.shape[-1] == 0:
        raise ValueError(f"{name}: expected shape (..., classes or features) with at least one entry in the last "
                         f"axis, got shape {outputs.shape}")
    return outputs


def _class_targets(targets, logits):
    """targets as integer class ids, one per step of logits (..., classes), or
    TypeError/ValueError naming y. The shape is checked before the ids are scanned, so a huge
    array of the wrong shape is refused at once."""
    targets = np.asarray(targets)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"y: expected integer class ids of shape {logits.shape[:-1]} (one per output step), "
                         f"got shape {targets.shape}")
    return class_ids(targets, logits.shape[-1], "y")


def cross_entropy(logits, targets, weights=None):
    """Softmax cross-entropy of logits (..., C) with integer class targets (...), fused with the
    softmax and computed through log-sum-exp, so large logits cannot overflow.
    Returns (mean loss, d loss / d logits)."""
    logits = _outputs(logits, "logits")
    classes = logits.shape[-1]
    targets = _class_targets(targets, logits)
    flat = logits.reshape(-1, classes)
    shifted = flat - flat.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    rows, targets = np.arange(len(flat)), targets.ravel()
    per_step = np.log(sums[:, 0]) - shifted[rows, targets]   # -log softmax(logits)[target]
    scales = _step_scales(weights, logits.shape[:-1], logits.dtype)
    grad = np.divide(exps, sums, out=exps)                  # softmax - one_hot(target), scaled
    grad[rows, targets] -= 1
    grad *= np.reshape(scales, (-1, 1))
    return float((scales * per_step).sum()), grad.reshape(logits.shape)


def mean_squared_error(predictions, targets, weights=None):
    """mean((predictions - targets)^2) over all elements (of the weighted steps).
    Targets of shape (...) are accepted for predictions (..., 1). Returns (loss, gradient)."""
    predictions = _outputs(predictions, "predictions")
    targets = float_array(targets, predictions.dtype, "y")
    if targets.shape == predictions.shape[:-1] and predictions.shape[-1:] == (1,):
        targets = targets[..., None]
    if targets.shape != predictions.shape:
        raise ValueError(f"y: expected targets of the output's shape {predictions.shape}, got shape {targets.shape}")
    features = predictions.shape[-1]
    diff = (predictions - targets).reshape(-1, features)
    scales = np.reshape(_step_scales(weights, predictions.shape[:-1], predictions.dtype), (-1, 1)) / features
    loss = float(np.sum(scales * diff * diff))
    return loss, (2 * scales * diff).reshape(predictions.shape)


def accuracy(logits, targets, weights=None):
    """Fraction of (weighted) steps whose largest logit is the target class; arguments as
    cross_entropy's (no steps, or all-zero weights: 0)."""
    logits = _outputs(logits, "logits")
    correct = logits.argmax(axis=-1) == _class_targets(targets, logits)
    if weights is None:   # counted, so that all correct is exactly 1
        return np.count_nonzero(correct) / max(correct.size, 1)
    weights = _step_weights(weights, correct.shape, logits.dtype)
    total = weights.sum()
    return float(np.sum(weights * correct) / total) if total > 0 else 0.0


LOSSES = {
    "cross_entropy": cross_entropy,
    "sparse_categorical_crossentropy": cross_entropy,   # Keras' name
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
}


def get(loss):
    """A loss function from its name, or `loss` itself if it is callable."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss: expected one of {sorted(LOSSES)} or a function (output, y, weights) -> (loss, grad), "
                     f"got {loss!r}")


__all__ = ["accuracy", "cross_entropy", "get", "mean_squared_error"]


def __dir__():   # dir() and editors' completion: the public names only, not numpy or math
    return __all__

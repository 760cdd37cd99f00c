"""Losses: values against their definitions (TF's sequence_loss for weighted cross-entropy),
gradients against finite differences, numerical stability and argument errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastrnn import losses
from finite_differences import check_gradient


def naive_cross_entropy(logits, targets, weights):
    """sum(w * -log softmax(logits)[target]) / sum(w), written out with plain exp and log."""
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0]
    return np.sum(weights * -np.log(picked)) / np.sum(weights)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), steps=st.integers(1, 4), classes=st.integers(1, 5), weighted=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_cross_entropy_value_and_gradient(batch, steps, classes, weighted, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, steps, classes)) * 3
    targets = rng.integers(0, classes, (batch, steps))
    weights = rng.integers(0, 3, (batch, steps)).astype(np.float64) if weighted else None
    if weighted:
        weights[0, 0] = 1   # at least one weighted step
    loss, grad = losses.cross_entropy(logits, targets, weights)
    expected = naive_cross_entropy(logits, targets, np.ones((batch, steps)) if weights is None else weights)
    assert loss == pytest.approx(expected, rel=1e-12)
    check_gradient(lambda: losses.cross_entropy(logits, targets, weights)[0], logits, grad, rng)


def test_cross_entropy_masked_steps_have_no_loss_and_no_gradient():
    logits = np.random.default_rng(0).normal(size=(2, 3, 4))
    targets = np.array([[1, 2, 3], [0, 0, 1]])
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    loss, grad = losses.cross_entropy(logits, targets, mask)
    valid = mask.astype(bool)
    assert loss == pytest.approx(losses.cross_entropy(logits[valid], targets[valid])[0], rel=1e-12)
    np.testing.assert_array_equal(grad[~valid], 0)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    loss, grad = losses.cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(1e4) and np.all(np.isfinite(grad))
    assert grad.dtype == np.float32


def test_all_zero_weights_give_zero_loss_and_gradient():
    loss, grad = losses.cross_entropy(np.ones((2, 3)), np.array([0, 1]), np.zeros(2))
    assert loss == 0 and not grad.any()


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_squared_error(weighted):
    rng = np.random.default_rng(4)
    predictions, targets = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))
    weights = np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]) if weighted else None
    loss, grad = losses.mean_squared_error(predictions, targets, weights)
    step_weights = np.ones((2, 3)) if weights is None else weights
    expected = np.sum(step_weights[..., None] * (predictions - targets) ** 2) / (step_weights.sum() * 2)
    assert loss == pytest.approx(expected, rel=1e-12)
    check_gradient(lambda: losses.mean_squared_error(predictions, targets, weights)[0], predictions, grad, rng)


def test_mean_squared_error_accepts_targets_without_the_unit_feature_axis():
    predictions = np.array([[1.0], [2.0]])
    assert losses.mean_squared_error(predictions, np.array([0.0, 0.0]))[0] == pytest.approx(2.5)


def test_accuracy_counts_weighted_steps():
    logits = np.array([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]])
    assert losses.accuracy(logits, np.array([[1, 1, 0]])) == pytest.approx(2 / 3)
    assert losses.accuracy(logits, np.array([[1, 1, 0]]), np.array([[1.0, 0.0, 0.0]])) == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"y: expected ids in \[0, 3\), got values from 0 to 3"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError,
     r"y: expected integer ids in \[0, 3\), got dtype float64"),
    (lambda: losses.cross_entropy(np.zeros((2, 4, 3)), np.zeros((2, 5), dtype=int)), ValueError,
     r"y: expected integer class ids of shape \(2, 4\) \(one per output step\), got shape \(2, 5\)"),
    (lambda: losses.cross_entropy(np.zeros((2, 4, 3)), np.zeros((2, 4), dtype=int), np.ones(2)), ValueError,
     r"weights: expected shape \(2, 4\)"),
    (lambda: losses.mean_squared_error(np.zeros((2, 3)), np.zeros((2, 2))), ValueError,
     r"y: expected targets of the output's shape \(2, 3\), got shape \(2, 2\)"),
    (lambda: losses.get("crossentropy"), ValueError, "loss: expected one of .*'cross_entropy'.* got 'crossentropy'"),
    # accuracy took its targets and weights unchecked: None raised AttributeError
    (lambda: losses.accuracy(np.zeros(3), None), TypeError, r"y: expected integer ids in \[0, 3\), got dtype object"),
    (lambda: losses.accuracy(np.zeros((2, 4, 3)), np.zeros((2, 5), dtype=int)), ValueError,
     r"y: expected integer class ids of shape \(2, 4\) \(one per output step\), got shape \(2, 5\)"),
    (lambda: losses.accuracy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"y: expected ids in \[0, 3\), got values from 0 to 3"),
    (lambda: losses.accuracy(np.zeros((2, 3)), np.array([0, 1]), np.ones(3)), ValueError,
     r"weights: expected shape \(2,\) \(one per target step\), got \(3,\)"),
])
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_accuracy_without_steps_is_zero_like_the_loss():
    # It was 0 / 0: NaN and a RuntimeWarning.
    assert losses.accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0
    assert losses.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int))[0] == 0.0


def test_targets_of_the_wrong_shape_are_refused_before_their_ids_are_scanned(run_apart):
    # The ids' range was scanned first: minutes over this view of 2**40 ids.
    printed = run_apart("""
import numpy as np
from fastrnn import losses
ids = np.broadcast_to(np.int64(0), (2**20, 2**20))
for loss in (losses.cross_entropy, losses.accuracy):
    try:
        loss(np.zeros((2, 3)), ids)
    except ValueError as error:
        print(error)
""")
    expected = "y: expected integer class ids of shape (2,) (one per output step), got shape (1048576, 1048576)\n"
    assert printed == expected * 2


def test_get_resolves_names():
    assert losses.get("sparse_categorical_crossentropy") is losses.cross_entropy
    assert losses.get("mse") is losses.mean_squared_error


def test_integer_predictions_are_computed_in_float64():
    logits, targets = np.zeros((2, 4), dtype=int), np.array([1, 2])
    loss, grad = losses.cross_entropy(logits, targets)
    expected_loss, expected_grad = losses.cross_entropy(logits.astype(np.float64), targets)
    assert loss == pytest.approx(np.log(4), rel=1e-12) and grad.dtype == np.float64
    np.testing.assert_array_equal(grad, expected_grad)
    loss, grad = losses.mean_squared_error(np.zeros((2, 3), dtype=int), np.ones((2, 3)))
    assert loss == pytest.approx(1.0, rel=1e-12) and grad.dtype == np.float64
    np.testing.assert_allclose(grad, np.full((2, 3), -1 / 3), rtol=1e-12)


def test_losses_accept_nested_lists_like_arrays():
    logits = [[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]]
    assert losses.cross_entropy(logits, [2, 0])[0] == losses.cross_entropy(np.array(logits), [2, 0])[0]
    targets = np.ones((2, 3))
    assert losses.mean_squared_error(logits, targets)[0] == losses.mean_squared_error(np.array(logits), targets)[0]
    assert losses.accuracy(logits, np.array([2, 0])) == 1.0


@pytest.mark.parametrize("bad_weight, shown", [(np.nan, "nan"), (-1.0, "-1.0"), (np.inf, "inf")])
@pytest.mark.parametrize("loss_function, outputs, targets", [
    (losses.cross_entropy, np.zeros((2, 3)), np.array([0, 1])),
    (losses.mean_squared_error, np.zeros((2, 3)), np.ones((2, 3))),
])
def test_weights_must_be_finite_and_non_negative(loss_function, outputs, targets, bad_weight, shown):
    with pytest.raises(ValueError, match=rf"weights: expected finite non-negative numbers .*got {shown}"):
        loss_function(outputs, targets, np.array([1.0, bad_weight]))


@pytest.mark.parametrize("call, error, match", [
    (lambda: losses.mean_squared_error(np.float64(1.0), np.float64(1.0)), ValueError,
     r"predictions: expected shape \(\.\.\., classes or features\) .* got shape \(\)"),
    (lambda: losses.cross_entropy(np.zeros((2, 0)), np.zeros(2, dtype=int)), ValueError,
     r"logits: expected shape \(\.\.\., classes or features\) .* got shape \(2, 0\)"),
    (lambda: losses.cross_entropy(np.array([["a", "b"]]), np.array([0])), TypeError,
     "logits: expected real numbers, got dtype <U1"),
    (lambda: losses.mean_squared_error([[None]], [[1.0]]), TypeError,
     "predictions: expected real numbers, got dtype object"),
])
def test_output_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()

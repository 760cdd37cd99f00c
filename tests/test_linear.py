"""The fully connected kernels behind fastrnn.Dense, called directly: against NumPy, identical
bits for any thread count, and bad shapes rejected before any native code runs."""

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support import HUGE, huge_view

SHAPES = [(1, 1, 1), (7, 5, 3), (13, 17, 9), (300, 40, 70), (64, 257, 130)]   # (rows M, out N, in K)


def native(dtype):
    name = np.dtype(dtype).name
    return getattr(_core, f"linear_forward_{name}"), getattr(_core, f"linear_backward_{name}")


def data(m, n, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in ((m, k), (n, k), (n,), (m, n)))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_matches_numpy(m, n, k, dtype, tolerance):
    forward, backward = native(dtype)
    x, weight, bias, dy = data(m, n, k, dtype)
    grad_weight, grad_bias = np.ones((n, k), dtype), np.ones(n, dtype)   # backward adds into these
    y = forward(x, weight, bias)
    dx = backward(dy, x, weight, grad_weight, grad_bias, True)
    wide = np.float64
    expected = {"y": x.astype(wide) @ weight.astype(wide).T + bias, "dx": dy.astype(wide) @ weight.astype(wide),
                "grad_weight": 1 + dy.astype(wide).T @ x.astype(wide), "grad_bias": 1 + dy.astype(wide).sum(axis=0)}
    for name, got in (("y", y), ("dx", dx), ("grad_weight", grad_weight), ("grad_bias", grad_bias)):
        assert got.dtype == dtype
        scale = max(1.0, np.abs(expected[name]).max())
        assert np.abs(got - expected[name]).max() <= tolerance * scale * k ** 0.5, name
    assert backward(dy, x, weight, grad_weight, None, False) is None   # input_grad=False: no dx


def test_identical_bits_for_any_thread_count():
    forward, backward = native(np.float32)
    x, weight, bias, dy = data(640, 300, 200, np.float32)
    results = []
    for threads in (1, 2):
        fastrnn.set_num_threads(threads)
        grad_weight, grad_bias = np.zeros((300, 200), np.float32), np.zeros(300, np.float32)
        dx = backward(dy, x, weight, grad_weight, grad_bias, True)
        results.append((forward(x, weight, bias), dx, grad_weight, grad_bias))
    fastrnn.set_num_threads(2)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("call, message", [
    (lambda f, b: f(np.ones((4, 3)), np.ones((5, 2)), None), "x: expected shape (4, 2)"),
    (lambda f, b: f(np.ones((4, 3)), np.ones(3), None), "weight: expected a 2-D array"),
    (lambda f, b: f(np.ones((4, 3)), np.ones((5, 3)), np.ones(4)), "bias: expected shape (5,)"),
    (lambda f, b: f([[1.0]], np.ones((1, 1)), None), "x: expected a numpy.ndarray, got list"),
    (lambda f, b: b(np.ones((4, 6)), np.ones((4, 3)), np.ones((5, 3)), np.zeros((5, 3)), None, True),
     "dy: expected shape (4, 5)"),
    (lambda f, b: b(np.ones((4, 5)), np.ones((4, 3)), np.ones((5, 3)), np.zeros((3, 5)), None, True),
     "grad_weight: expected a writeable contiguous float64 array of shape (5, 3)"),
    (lambda f, b: b(np.ones((4, 5)), np.ones((4, 3)), np.ones((5, 3)), np.zeros((5, 3), np.float32), None, True),
     "grad_weight: expected a writeable contiguous float64"),
    (lambda f, b: b(np.ones((4, 5)), np.ones((4, 3)), np.ones((5, 3)), np.zeros((5, 3)), np.zeros(4), True),
     "grad_bias: expected a writeable contiguous float64 array of shape (5,)"),
])
def test_bad_shapes_are_rejected(call, message):
    forward, backward = native(np.float64)
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
        call(forward, backward)


@pytest.mark.parametrize("name", ["x", "weight", "bias", "dy"])
def test_a_copy_that_cannot_be_allocated_raises_memory_error_naming_the_argument(name):
    # Conversion failures used to be reported as a shape mismatch, the MemoryError dropped.
    forward, backward = native(np.float32)
    arguments = dict(zip(("x", "weight", "bias", "dy"), data(4, 5, 3, np.float32)))
    arguments[name] = huge_view(np.float64, (HUGE,) + arguments[name].shape[1:])
    with pytest.raises(MemoryError, match=f"^{name}: Unable to allocate .* TiB"):
        if name == "dy":
            backward(arguments["dy"], arguments["x"], arguments["weight"], np.zeros((5, 3), np.float32), None, True)
        else:
            forward(arguments["x"], arguments["weight"], arguments["bias"])

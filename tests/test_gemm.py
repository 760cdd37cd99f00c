"""The packed matrix product of each kernel variant (test hook _core.matmul_float32/64) against
an exact product, for shapes that leave partial panels, partial row tiles and partial cache
blocks (depth blocks of 256, row blocks of 60..128 rows), on 1, 2 and 3 threads; and with b
given as its transpose (as the layers hold W_ih and W_hh), which packs it by transposing
blocks in registers: bitwise the same product.
"""

import numpy as np
import pytest

from fastrnn import _core
from support import ISAS, record

# Every size 1..40 appears as M, N and K, each paired with sizes cycling through the rest;
# then shapes crossing the row block (M > 128) and the depth block (K > 256).
SMALL = [(s, (7 * s) % 40 + 1, (13 * s) % 40 + 1) for s in range(1, 41)]
SMALL += [(n, k, m) for m, n, k in SMALL] + [(k, m, n) for m, n, k in SMALL]
LARGE = [(301, 37, 300), (127, 129, 257), (1, 513, 300), (310, 1, 511), (61, 256, 1), (257, 63, 129)]

HOOKS = {np.float32: _core.matmul_float32, np.float64: _core.matmul_float64}
dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def check_product(a, b, c, dtype):
    """|c - a b| <= gamma_K |a| |b| elementwise (gamma_K = K u / (1 - K u), u the unit roundoff):
    the bound every summation order, with or without FMA, satisfies. A term missing or
    counted twice is ~|a_ik b_kj|, far above it. Returns the largest ratio to the bound."""
    exact_dtype = np.float64 if dtype == np.float32 else np.longdouble
    wide_a, wide_b = a.astype(exact_dtype), b.astype(exact_dtype)
    exact = wide_a @ wide_b
    u = np.finfo(dtype).eps / 2
    depth = a.shape[1]
    gamma = depth * u / (1 - depth * u)
    bound = gamma * (np.abs(wide_a) @ np.abs(wide_b)) + np.finfo(dtype).tiny
    ratio = np.abs(c.astype(exact_dtype) - exact) / bound
    assert c.shape == exact.shape and c.dtype == dtype
    assert np.all(ratio <= 1), (np.unravel_index(np.argmax(ratio), ratio.shape), ratio.max())
    return float(ratio.max())


@pytest.mark.parametrize("isa", ISAS)
@dtypes
@pytest.mark.parametrize("sizes", [pytest.param(SMALL, id="small"), pytest.param(LARGE, id="large")])
def test_matches_exact_product_on_any_thread_count(isa, dtype, sizes):
    rng = np.random.default_rng(0)
    worst = 0.0
    for m, n, k in sizes:
        a = rng.uniform(-1, 1, (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (k, n)).astype(dtype)
        c = HOOKS[dtype](a, b, isa, 1)
        worst = max(worst, check_product(a, b, c, dtype))
        for threads in (2, 3):
            np.testing.assert_array_equal(HOOKS[dtype](a, b, isa, threads), c,
                                          err_msg=f"{(m, n, k)}, {threads} threads")
        for threads in (1, 2):
            np.testing.assert_array_equal(HOOKS[dtype](a, b.T.copy(), isa, threads, b_transposed=True), c,
                                          err_msg=f"{(m, n, k)}, b transposed, {threads} threads")
    record(f"matmul {np.dtype(dtype).name} {isa} (fraction of error bound)", worst)


@pytest.mark.parametrize("isa", ISAS)
@dtypes
def test_converts_non_contiguous_and_other_dtypes(isa, dtype):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 9)), rng.normal(size=(9, 30))
    expected = HOOKS[dtype](a.astype(dtype), np.ascontiguousarray(b.astype(dtype)), isa, 1)
    np.testing.assert_array_equal(HOOKS[dtype](np.asfortranarray(a), b.T.copy().T, isa, 1), expected)
    np.testing.assert_array_equal(HOOKS[dtype](a, np.repeat(b, 2, axis=1)[:, ::2], isa, 2), expected)


def test_rejects_bad_shapes_and_thread_counts():
    a, b = np.ones((2, 3)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        _core.matmul_float64(a, b)
    with pytest.raises(ValueError, match=r"b \(N, K\), got \(2, 3\) and \(3, 5\)"):
        _core.matmul_float64(a, np.ones((3, 5)), b_transposed=True)
    with pytest.raises(ValueError, match="threads"):
        _core.matmul_float64(a, b.T[:3], "portable", 0)

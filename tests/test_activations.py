"""The vectorised sigmoid, tanh, exp and expm1 of each kernel variant (through the test hooks
_core.activation_float32/64) against exact values: float32 over every exponent of the format,
float64 over every exponent with a few mantissas each, plus the special values.

Accuracy is in ulp of the exact result: |got - exact| / 2^(e - p) where 2^(e-1) <= |exact| < 2^e
and p is the format's precision (24 or 53), wherever |exact| >= 2^-125 (float32) or 2^-1021
(float64); below that the absolute error must be at most that bound. Exact values come from
float64 for float32 and from long double (64-bit mantissa on x86) for float64.
"""

import numpy as np
import pytest

from fastrnn import _core
from support import ISAS, record

FUNCTIONS = ["sigmoid", "tanh", "exp", "expm1"]
MAX_ULP = 4


class Format:
    def __init__(self, dtype, exact_dtype, precision, exponent_bits, tiny_result, exp_domain):
        self.dtype, self.exact_dtype, self.precision = np.dtype(dtype), exact_dtype, precision
        self.exponent_bits, self.tiny_result, self.exp_domain = exponent_bits, tiny_result, exp_domain
        self.unsigned = np.uint32 if self.dtype == np.float32 else np.uint64

    def activation(self, which, x, isa):
        hook = _core.activation_float32 if self.dtype == np.float32 else _core.activation_float64
        return hook(which, x, isa)

    def sweep(self, mantissas_per_exponent, seed=0):
        """Both signs of every exponent (0: the subnormals) with random mantissas, plus the
        mantissa extremes of each exponent."""
        rng = np.random.default_rng(seed)
        bits = self.dtype.itemsize * 8
        mantissa_bits = self.precision - 1
        exponents = np.arange(2**self.exponent_bits - 1, dtype=np.uint64)   # all but inf/NaN
        mantissas = rng.integers(0, 2**mantissa_bits, (exponents.size, mantissas_per_exponent), dtype=np.uint64)
        mantissas[:, 0], mantissas[:, 1] = 0, 2**mantissa_bits - 1
        patterns = (exponents[:, None] << np.uint64(mantissa_bits)) | mantissas
        patterns = np.concatenate([patterns.ravel(), patterns.ravel() | np.uint64(1 << (bits - 1))])
        return patterns.astype(self.unsigned).view(self.dtype)


FLOAT32 = Format(np.float32, np.float64, 24, 8, 2.0**-125, (-87.33, 88.37))
FLOAT64 = Format(np.float64, np.longdouble, 53, 11, 2.0**-1021, (-708.39, 709.0))
FORMATS = [pytest.param(FLOAT32, id="float32"), pytest.param(FLOAT64, id="float64", marks=pytest.mark.skipif(
    np.finfo(np.longdouble).nmant < 63, reason="long double is no wider than double here"))]


def exact(which, x):
    """The function at x in the wider format (x already converted)."""
    with np.errstate(over="ignore", under="ignore"):
        if which == "sigmoid":
            # 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below: both relatively accurate
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return getattr(np, which)(x)


def ulp_errors(fmt, got, exact_values):
    """Errors in ulp (see the module docstring); inf where an absolute-error point fails."""
    wide = got.astype(fmt.exact_dtype)
    error = np.abs(wide - exact_values)
    _, exponent = np.frexp(np.abs(exact_values))
    ulp = np.ldexp(np.ones_like(exact_values), exponent - fmt.precision)
    small = np.abs(exact_values) < fmt.tiny_result
    ulps = np.where(small, 0, error / np.where(small, 1, ulp))
    return np.where(small & (error > fmt.tiny_result), np.inf, ulps)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("which", FUNCTIONS)
def test_accuracy_over_every_exponent(fmt, isa, which):
    x = fmt.sweep(64 if fmt.dtype == np.float32 else 8)
    if which in ("exp", "expm1"):
        low, high = fmt.exp_domain
        # expm1 is -1 to the last bit below the domain, so its whole left side is checked
        x = x[(x >= (low if which == "exp" else -np.inf)) & (x <= high)]
    got = fmt.activation(which, x, isa)
    assert got.dtype == fmt.dtype and got.shape == x.shape
    ulps = ulp_errors(fmt, got, exact(which, x.astype(fmt.exact_dtype)))
    worst = int(np.argmax(ulps))
    record(f"activation {which} {fmt.dtype.name} {isa} (ulp)", float(ulps[worst]))
    assert ulps[worst] <= MAX_ULP, (x[worst], got[worst], ulps[worst])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
def test_exp_outside_its_domain_stays_monotone_and_non_negative(fmt, isa):
    x = np.sort(np.concatenate([fmt.sweep(16), np.array([-np.inf, np.inf], fmt.dtype)]))
    for which in ("exp", "expm1"):
        got = fmt.activation(which, x, isa)
        assert np.all(np.diff(got) >= 0), which
        assert np.all(got >= (0 if which == "exp" else -1)), which
        assert np.all(np.isfinite(got)), which


SPECIAL_VALUES = {
    # name: (function, input, the exact output, sign included)
    "sigmoid(+inf)": ("sigmoid", np.inf, 1.0),
    "tanh(+inf)": ("tanh", np.inf, 1.0),
    "tanh(-inf)": ("tanh", -np.inf, -1.0),
    "tanh(+0)": ("tanh", 0.0, 0.0),
    "tanh(-0)": ("tanh", -0.0, -0.0),
    "exp(0)": ("exp", 0.0, 1.0),
    "expm1(0)": ("expm1", 0.0, 0.0),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("special", list(SPECIAL_VALUES))
def test_special_values(fmt, isa, special):
    which, value, expected = SPECIAL_VALUES[special]
    got = fmt.activation(which, np.array([value], fmt.dtype), isa)[0]
    assert got == expected and np.signbit(got) == np.signbit(expected), got


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
def test_sigmoid_of_minus_infinity_is_within_the_absolute_bound(fmt, isa):
    # exp's argument is clamped to the normal range, so the result is tiny but not exactly 0:
    # the documented absolute bound for results below 2^-125 (float) / 2^-1021 (double).
    got = fmt.activation("sigmoid", np.array([-np.inf], fmt.dtype), isa)[0]
    assert 0 <= got <= fmt.tiny_result, got


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("which", FUNCTIONS)
def test_nan_in_nan_out(fmt, isa, which):
    x = np.array([np.nan, -np.nan, 1.0, np.nan], fmt.dtype)
    got = fmt.activation(which, x, isa)
    assert np.isnan(got).tolist() == [True, True, False, True]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("isa", ISAS)
def test_every_length_gives_the_same_elements(fmt, isa):
    """Lengths that leave a partial vector at the end: each element as in a long array."""
    x = np.random.default_rng(1).normal(scale=3, size=40).astype(fmt.dtype)
    for which in FUNCTIONS:
        whole = fmt.activation(which, x, isa)
        for length in range(1, 18):
            np.testing.assert_array_equal(fmt.activation(which, x[:length], isa), whole[:length])
        # a non-contiguous view is converted, not misread
        np.testing.assert_array_equal(fmt.activation(which, x[::3], isa), whole[::3])

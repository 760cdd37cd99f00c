"""The correctness gate bench/run.py passes before it times anything: every case's outputs,
final state and parameter gradients from fastrnn against the NumPy reference in float64 (the
float64 and the float32 kernels), and the timed float32 fastrnn against PyTorch when present.

The reference loops over time in Python and is slow on the large shapes, so it is run on the
first steps of a case only where the whole case would exceed REFERENCE_CHECK_FLOPS; the
PyTorch comparison always uses the full case.
"""

import math

import numpy as np

from models import FastrnnModel, ReferenceModel, TorchModel

REFERENCE_CHECK_FLOPS = 8e9
# Largest allowed max|actual - expected| / max|expected|, per output array.
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def reference_check_case(case):
    """The case itself, or its first steps (calls, for generation) if it is too big."""
    length = case.sequence_length()
    steps = max(1, min(length, int(length * REFERENCE_CHECK_FLOPS // case.flops())))
    return case if steps == length else case.with_steps(steps)


def relative_error(actual, expected):
    """max|actual - expected| / max|expected| (absolute if expected is all zeros); inf for NaN."""
    scale = np.max(np.abs(expected)) or 1.0
    error = np.max(np.abs(actual - expected)) / scale
    return math.inf if np.isnan(error) else float(error)


def outputs_of(model):
    model.run()
    return model.outputs()


def compare(case, description, actual, expected, dtype):
    """One check record: the largest relative error over all outputs."""
    if actual.keys() != expected.keys():
        raise KeyError(f"{case.name}, {description}: outputs differ: {sorted(actual)} vs {sorted(expected)}")
    names = list(expected)
    errors = {name: relative_error(actual[name].astype(np.float64), expected[name].astype(np.float64))
              for name in names}
    worst = max(errors, key=errors.get)
    return {"case": case.name, "check": description, "sequence_length": case.sequence_length(),
            "outputs_compared": len(names), "worst_output": worst, "max_error": errors[worst],
            "tolerance": TOLERANCE[dtype], "passed": errors[worst] <= TOLERANCE[dtype]}


def check_case(case, params, with_torch):
    """Check records of one case (see the module doc); params as models.initial_parameters."""
    short = reference_check_case(case)
    expected = outputs_of(ReferenceModel(short, params, np.float64))
    records = [compare(short, f"fastrnn {dtype.__name__} vs reference float64",
                       outputs_of(FastrnnModel(short, params, dtype)), expected, dtype)
               for dtype in (np.float64, np.float32)]
    if with_torch:
        records.append(compare(case, "fastrnn float32 vs torch float32",
                               outputs_of(FastrnnModel(case, params)), outputs_of(TorchModel(case, params)),
                               np.float32))
    return records

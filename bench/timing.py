"""Wall-clock timing for bench/run.py: callables timed interleaved (A, B, A, B, ...) so that
load from other users of a shared machine hits every contender alike, reported as medians; and
the machine's SGEMM rate (NumPy's float32 matmul), the yardstick for the "% of SGEMM" column.
"""

import functools
import math
import statistics
import time

import numpy as np

# Pause before each measurement: worker threads of the previous contender (fastrnn's pool,
# OpenMP) spin for a while after a call, and would otherwise slow the next one down.
SETTLE_SECONDS = 0.02


def seconds_of(function, number=1):
    """Wall time of `number` back-to-back calls, divided by `number`."""
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def time_interleaved(functions, rounds, min_seconds, run_once_if_slower=None):
    """{name: (median seconds per call, measurements)} for the callables in `functions`.

    Each callable is called once untimed (warm-up) and once timed (calibration); each
    measurement then repeats it enough times to last about `min_seconds`. One round measures
    every callable once, in order. run_once_if_slower {name: seconds}: a callable whose
    calibration call took longer is not run again; that call is its one measurement.
    """
    run_once_if_slower = run_once_if_slower or {}
    numbers, times = {}, {name: [] for name in functions}
    for name, function in functions.items():
        function()
        elapsed = seconds_of(function)
        if elapsed > run_once_if_slower.get(name, math.inf):
            times[name].append(elapsed)
        else:
            numbers[name] = max(1, math.ceil(min_seconds / elapsed))
    for _ in range(rounds):
        for name, number in numbers.items():
            time.sleep(SETTLE_SECONDS)
            times[name].append(seconds_of(functions[name], number))
    return {name: (statistics.median(values), len(values)) for name, values in times.items()}


def sgemm_gflops(rounds, size=2048):
    """Median GFLOP/s of a size x size float32 matmul in NumPy (its BLAS, its thread count)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    multiply = functools.partial(np.matmul, a, b, out=out)
    multiply()
    median = statistics.median(seconds_of(multiply) for _ in range(rounds))
    return 2 * size**3 / median / 1e9

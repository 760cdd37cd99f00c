"""Wall-clock timing for bench/run.py: callables timed interleaved (A, B, A, B, ...) so that
load from other users of a shared machine hits every contender alike, reported as medians; and
the machine's SGEMM rate (NumPy's float32 matmul), the yardstick for the "%" columns: as this
process's environment configures OpenBLAS, and the roof, in a process where OpenBLAS picks its
kernel for the CPU itself.
"""

import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
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
    """{name: (median seconds per call, each measurement's seconds per call, in round order)} for
    the callables in `functions`.

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
    return {name: (statistics.median(values), values) for name, values in times.items()}


def sgemm_gflops(rounds, size=2048):
    """Median GFLOP/s of a size x size float32 matmul in NumPy (its BLAS, its thread count)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    multiply = functools.partial(np.matmul, a, b, out=out)
    multiply()
    median = statistics.median(seconds_of(multiply) for _ in range(rounds))
    return 2 * size**3 / median / 1e9


# Variables that make OpenBLAS use other kernels than its best for this CPU (a machine's
# environment may set OPENBLAS_CORETYPE=Haswell, hiding AVX-512 from it).
OPENBLAS_KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_core():
    """The core type whose kernels NumPy's OpenBLAS uses in this process (threadpoolctl), or None."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    cores = [pool.get("architecture") for pool in threadpoolctl.threadpool_info()
             if pool.get("internal_api") == "openblas"]
    return cores[0] if cores else None


def roof(rounds, threads=None):
    """{"gflops", "openblas_core"}: sgemm_gflops in a fresh process without the variables above,
    with this process's thread counts or `threads`."""
    code = ("import json, sys; sys.path.insert(0, {bench!r}); import timing; "
            "print(json.dumps({{'gflops': timing.sgemm_gflops({rounds}), 'openblas_core': timing.openblas_core()}}))")
    env = {name: value for name, value in os.environ.items() if name not in OPENBLAS_KERNEL_VARIABLES}
    if threads:
        env.update({name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")})
    completed = subprocess.run([sys.executable, "-c", code.format(bench=os.path.dirname(__file__), rounds=rounds)],
                               env=env, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


def cpu_model():
    """The CPU's model name and its vector instruction sets, as the operating system reports them."""
    try:
        with open("/proc/cpuinfo") as file:
            fields = {key.strip(): value.strip() for key, value in
                      (line.split(":", 1) for line in file.read().split("\n\n")[0].splitlines() if ":" in line)}
    except OSError:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    vector = [flag for flag in ("avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq") if flag in flags]
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    return f"{fields.get('model name', '?')} (family {family} model {model}; {' '.join(vector)})"

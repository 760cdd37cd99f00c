"""fastrnn's benchmark: checks every case against the NumPy reference (and PyTorch, when it is
installed) and stops if any check fails; then times fastrnn, PyTorch and the reference on the
table in bench/cases.py, interleaved, median of several runs, all with the same thread count;
prints ms, GFLOP/s, % of the machine's SGEMM rate (the roof, see timing.py), speedup over
PyTorch and PASS/FAIL against the targets, plus thread scaling and the peak memory of a training
step; writes everything as JSON. One table per kernel variant this CPU can run (each run in a
process of its own with FASTRNN_ISA set, as a user would select it), or the one --isa names.

    python bench/run.py [--threads 2] [--quick] [--isa NAME] [--cases SUBSTRING,...] [--json PATH]

PyTorch comes with the `bench` extra (pip install .[bench]); without it the torch column and
the targets against it are left empty. Timings are indicative on a shared machine; the exit
status is 0 whatever the targets, 1 if a correctness check fails.
"""

import argparse
import os
import pathlib


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--quick", action="store_true", help="few repetitions, to smoke-test the harness")
    parser.add_argument("--isa", default="all",
                        help="the kernel variant to time (default: each one this CPU can run, best first)")
    parser.add_argument("--cases", default="",
                        help="comma-separated substrings: run only the rows whose name has one (case names in "
                             "bench/cases.py; 'threads' and 'memory' pick the thread-scaling and peak-memory rows)")
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results" / "latest.json",
                        help="where to write the results (default bench/results/latest.json)")
    arguments = parser.parse_args()
    if arguments.threads < 1:
        parser.error("--threads must be at least 1")
    return arguments


ARGUMENTS = parse_arguments()
if ARGUMENTS.isa != "all":
    os.environ["FASTRNN_ISA"] = ARGUMENTS.isa   # read when fastrnn is first imported
# NumPy's BLAS reads its thread count from the environment when NumPy is first imported, so it
# is set before any import below pulls NumPy in (threadpoolctl, if installed, enforces it too).
for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[variable] = str(ARGUMENTS.threads)
# OpenBLAS's idle threads spin for 2^28 cycles (about 0.1 s) after each product; after a timed
# reference run they would take the cores the next contender measures with. 2^4 cycles instead.
os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"

import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

import fastrnn  # noqa: E402
import memory  # noqa: E402
import models  # noqa: E402
import timing  # noqa: E402
from cases import CASES, LARGE_LSTM, matches  # noqa: E402
from checks import check_case  # noqa: E402

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

SETTINGS = {  # rounds of interleaved measurements, seconds per measurement, reference cut-off
    False: {"rounds": 9, "min_seconds": 0.05, "reference_once_after": 0.5},
    True: {"rounds": 3, "min_seconds": 0.005, "reference_once_after": 0.1},
}[ARGUMENTS.quick]
SGEMM_PERCENT_TARGET = 80         # large LSTM fwd+bwd GFLOP/s, in % of the SGEMM roof
THREAD_SCALING_TARGET = 0.9       # speedup of N threads over 1, per thread (1.8x for 2)
SCALING_NAME = f"{LARGE_LSTM.name}, 1 vs {ARGUMENTS.threads} threads"
MEMORY_NAME = f"{LARGE_LSTM.name}, peak memory"


def set_threads(threads):
    fastrnn.set_num_threads(threads)
    if models.torch is not None:
        models.torch.set_num_threads(threads)
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(threads, user_api="blas")


def target_record(name, measured, target, unit):
    """A target line: passed is None when there is nothing to measure (e.g. no torch)."""
    return {"name": name, "measured": measured, "target": target, "unit": unit,
            "passed": None if measured is None else measured >= target}


def run_checks(selected):
    """Checks every case that will be timed or measured; exits on the first failing case."""
    print("Correctness (max |error| / max |expected| over outputs, final state, gradients):")
    records = []
    for case in selected:
        case_records = check_case(case, models.initial_parameters(case), models.torch is not None)
        for record in case_records:
            length = record["sequence_length"]
            cut = "" if length == case.sequence_length() else f" (first {length} of {case.sequence_length()} steps)"
            print(f"  {'ok  ' if record['passed'] else 'FAIL'} {case.name}: {record['check']}{cut}: "
                  f"{record['max_error']:.1e} (tolerance {record['tolerance']:.0e}, worst: {record['worst_output']})")
        records += case_records
        failed = [record for record in case_records if not record["passed"]]
        if failed:
            sys.exit(f"aborting: {len(failed)} correctness check(s) of {case.name!r} failed; nothing was timed")
    return records


def time_case(case):
    """One row of the table: medians of interleaved runs of every available library."""
    params = models.initial_parameters(case)
    functions = {name: models.LIBRARIES[name](case, params).run for name in models.available_libraries()}
    medians = timing.time_interleaved(functions, SETTINGS["rounds"], SETTINGS["min_seconds"],
                                      {"reference": SETTINGS["reference_once_after"]})
    seconds = {name: median for name, (median, _) in medians.items()}
    gflops = {name: case.flops() / value / 1e9 for name, value in seconds.items()}
    speedup = seconds["torch"] / seconds["fastrnn"] if "torch" in seconds else None
    return {**dataclasses.asdict(case), "gflop": case.flops() / 1e9,
            "ms": {name: value * 1e3 for name, value in seconds.items()},
            "measurements": {name: len(values) for name, (_, values) in medians.items()},
            "gflops": gflops,
            "speedup_vs_torch": speedup,
            "target": target_record(f"{case.name}: speedup vs torch", speedup, case.target_speedup, "x")}


def run_with_threads(model, threads):
    fastrnn.set_num_threads(threads)
    model.run()


def time_thread_scaling():
    """The large LSTM fwd+bwd in fastrnn with 1 and with --threads threads, interleaved."""
    model = models.FastrnnModel(LARGE_LSTM, models.initial_parameters(LARGE_LSTM))
    counts = (1, ARGUMENTS.threads)
    functions = {f"{count} thread(s)": functools.partial(run_with_threads, model, count) for count in counts}
    medians = timing.time_interleaved(functions, SETTINGS["rounds"], SETTINGS["min_seconds"])
    fastrnn.set_num_threads(ARGUMENTS.threads)
    one, many = (medians[name][0] for name in functions)
    return {"name": SCALING_NAME, "ms": {name: median * 1e3 for name, (median, _) in medians.items()},
            "target": target_record(SCALING_NAME, one / many, THREAD_SCALING_TARGET * ARGUMENTS.threads, "x")}


def measure_memory():
    libraries = [name for name in models.available_libraries() if name != "reference"]
    results = {name: memory.peak_training_memory(name, ARGUMENTS.threads) for name in libraries}
    # Lower is better here: the measured ratio is torch's increase over fastrnn's, target >= 1.
    ratio = results["torch"]["increase_mib"] / results["fastrnn"]["increase_mib"] if "torch" in results else None
    return {"name": MEMORY_NAME, "libraries": results,
            "target": target_record(f"{MEMORY_NAME}: torch / fastrnn", ratio, 1.0, "x")}


def number(value, digits, unit=""):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def result_text(passed):
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def reference_ms(row):
    """The reference's time, starred if it was run once (too slow to repeat)."""
    return number(row["ms"].get("reference"), 2) + ("*" if row["measurements"].get("reference") == 1 else "")


TABLE = [  # header, width (negative: left-aligned), cell of a row
    ("case", -24, lambda row: row["name"]),
    ("fastrnn ms", 10, lambda row: number(row["ms"]["fastrnn"], 3)),
    ("torch ms", 10, lambda row: number(row["ms"].get("torch"), 3)),
    ("ref ms", 10, reference_ms),
    ("GFLOP/s", 8, lambda row: number(row["gflops"]["fastrnn"], 1)),
    ("%roof", 6, lambda row: number(row["percent_of_roof"], 0, "%")),
    ("%SGEMM", 7, lambda row: number(row["percent_of_sgemm"], 0, "%")),
    ("vs torch", 9, lambda row: number(row["speedup_vs_torch"], 2, "x")),
    ("target", 7, lambda row: number(row["target"]["target"], 1, "x")),
    ("result", 7, lambda row: result_text(row["target"]["passed"])),
]


def table_line(cells):
    return " ".join(f"{cell:<{-width}}" if width < 0 else f"{cell:>{width}}"
                    for cell, (_, width, _) in zip(cells, TABLE))


def print_table(rows, sgemm, roof, core):
    print(f"\nNumPy SGEMM 2048x2048 float32, the faster of before and after the cases: roof {roof['gflops']:.1f} "
          f"GFLOP/s (OpenBLAS's own choice of kernel, {roof['openblas_core'] or 'core unknown'}); "
          f"{sgemm:.1f} GFLOP/s as this process's environment configures it ({core or 'core unknown'}). "
          "ms: median per call (* one run); GFLOP/s, %roof and %SGEMM are fastrnn's.")
    header = table_line([name for name, _, _ in TABLE])
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(table_line([cell(row) for _, _, cell in TABLE]))


def print_targets(targets):
    print("\nOther targets:")
    for target in targets:
        print(f"  {target['name']}: {number(target['measured'], 2, target['unit'])} "
              f"(target >= {target['target']:.2f}{target['unit']}) {result_text(target['passed'])}")


def environment():
    info = {"fastrnn": fastrnn.__version__, "kernel_isa": fastrnn.kernel_isa(), "cpu": timing.cpu_model(),
            "available_isas": fastrnn.available_isas(), "threads": ARGUMENTS.threads,
            "numpy": np.__version__, "torch": models.torch.__version__ if models.torch is not None else None,
            "blas_threads_set_by": "threadpoolctl" if threadpoolctl else "OPENBLAS_NUM_THREADS/MKL_NUM_THREADS",
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "quick": ARGUMENTS.quick, "settings": SETTINGS}
    if threadpoolctl is not None:
        info["blas"] = [{key: pool.get(key) for key in ("internal_api", "version", "num_threads")}
                        for pool in threadpoolctl.threadpool_info() if pool.get("user_api") == "blas"]
    return info


def measure_machine_targets(rows, with_scaling, with_memory, results):
    """Share of SGEMM, thread scaling and peak memory (each where selected); adds the scaling
    and memory measurements to results and returns the target records."""
    targets = [target_record(f"{row['name']}: % of the SGEMM roof", row["percent_of_roof"], SGEMM_PERCENT_TARGET, "%")
               for row in rows if row["name"] == LARGE_LSTM.name]
    if with_scaling:
        results["thread_scaling"] = time_thread_scaling()
        targets.append(results["thread_scaling"]["target"])
    if with_memory:
        results["memory"] = measure_memory()
        print("\nPeak memory increase of one training step (fresh process each):")
        for name, measured in results["memory"]["libraries"].items():
            bound = " (upper bound: the peak could not be reset)" if measured["upper_bound"] else ""
            print(f"  {name}: {measured['increase_mib']:.1f} MiB{bound}")
        targets.append(results["memory"]["target"])
    return targets


def run_each_isa():
    """This script once per kernel variant this CPU can run, each in a process of its own; their
    results gathered in one JSON file."""
    results = {}
    for isa in fastrnn.available_isas():
        output = ARGUMENTS.json.with_name(f"{ARGUMENTS.json.stem}-{isa}.json")
        argv = ["--threads", str(ARGUMENTS.threads), "--cases", ARGUMENTS.cases, "--isa", isa, "--json", str(output)]
        print(f"\n=== kernel variant {isa} ===", flush=True)
        if subprocess.run([sys.executable, __file__, *argv, *(["--quick"] if ARGUMENTS.quick else [])]).returncode != 0:
            sys.exit(f"the run with --isa {isa} failed")
        results[isa] = json.loads(output.read_text())
    ARGUMENTS.json.parent.mkdir(parents=True, exist_ok=True)
    ARGUMENTS.json.write_text(json.dumps(results, indent=2))
    print(f"\nResults of every variant written to {ARGUMENTS.json}")


def main():
    if ARGUMENTS.isa == "all":
        return run_each_isa()
    if fastrnn.kernel_isa() != ARGUMENTS.isa:
        sys.exit(f"--isa {ARGUMENTS.isa}: not a kernel variant this CPU can run; it can run {fastrnn.available_isas()}")
    patterns = [pattern.strip() for pattern in ARGUMENTS.cases.split(",") if pattern.strip()]
    selected = [case for case in CASES if matches(case.name, patterns)]
    with_scaling = ARGUMENTS.threads > 1 and matches(SCALING_NAME, patterns)
    with_memory = matches(MEMORY_NAME, patterns)
    if not (selected or with_scaling or with_memory):
        sys.exit(f"no case matches {ARGUMENTS.cases!r}; cases: {[case.name for case in CASES]}")
    set_threads(ARGUMENTS.threads)
    info = environment()
    print(f"CPU: {info['cpu']}")
    print(f"fastrnn {info['fastrnn']} ({info['kernel_isa']} kernels), torch {info['torch'] or 'not installed'}, "
          f"NumPy {info['numpy']}; {ARGUMENTS.threads} thread(s) each, NumPy's BLAS threads set by "
          f"{info['blas_threads_set_by']}{' (quick)' if ARGUMENTS.quick else ''}\n")

    checked = selected + ([LARGE_LSTM] if (with_scaling or with_memory) and LARGE_LSTM not in selected else [])
    results = {"environment": info, "checks": run_checks(checked)}
    rows = []
    if selected:
        # The machine's SGEMM rates, before and after the cases: the faster of the two, so that a
        # slow moment on a shared machine does not inflate the "%" columns.
        before = timing.sgemm_gflops(SETTINGS["rounds"]), timing.roof(SETTINGS["rounds"])
        rows = [time_case(case) for case in selected]
        after = timing.sgemm_gflops(SETTINGS["rounds"]), timing.roof(SETTINGS["rounds"])
        results["sgemm_gflops"] = sgemm = max(before[0], after[0])
        results["roof"] = roof = max(before[1], after[1], key=lambda measured: measured["gflops"])
        results["openblas_core"] = timing.openblas_core()
        for row in rows:
            row["percent_of_sgemm"] = 100 * row["gflops"]["fastrnn"] / sgemm
            row["percent_of_roof"] = 100 * row["gflops"]["fastrnn"] / roof["gflops"]
        print_table(rows, sgemm, roof, results["openblas_core"])
    results["cases"] = rows

    machine_targets = measure_machine_targets(rows, with_scaling, with_memory, results)
    if machine_targets:
        print_targets(machine_targets)
    results["targets"] = [row["target"] for row in rows] + machine_targets

    ARGUMENTS.json.parent.mkdir(parents=True, exist_ok=True)
    ARGUMENTS.json.write_text(json.dumps(results, indent=2))
    print(f"\nResults written to {ARGUMENTS.json}")


if __name__ == "__main__":
    main()

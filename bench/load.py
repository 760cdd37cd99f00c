"""fastrnn on a machine that is not idle: is the default thread count ever worse than one thread?

Users' machines always run something else (a browser, a second training run, a CI neighbour,
other MPI ranks). This script starts a competing busy process pinned to one CPU, then times
fastrnn's benchmark cases (bench/cases.py, in this process) and whole demo runs (subprocesses)
with the default thread count against one thread, interleaved, pair by pair; the same without
the competitor, for reference; and two demo processes side by side on the machine, each with the
default threads against each with one thread. A ratio above 1 means the default is slower.

    python bench/load.py [--quick] [--cases SUBSTRING,...] [--demos NAME,...] [--json PATH]

The target (issue "fast under load"): under one competing process, the default is never more than
1.25x slower than one thread. Every case is checked against the NumPy reference first.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import fastrnn
import models
import timing
from cases import CASES, matches
from checks import check_case

TARGET = 1.25
# Demos as `python -m fastrnn.demos NAME OPTIONS`: the short runs of the table and the rest.
DEMOS = {"hihello": [], "sentence": [], "ship": [], "sixpence": [], "sine": ["--quick"],
         "vibration": ["--quick"], "charlm": ["--quick"], "classify": ["--quick"], "sort": ["--quick"]}
SIDE_BY_SIDE_DEMO = "ship"   # or the first demo asked for, if ship is not among them


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, to smoke-test the harness")
    parser.add_argument("--cases", default=None,
                        help="comma-separated substrings of bench/cases.py names (default: all; '' for none)")
    parser.add_argument("--demos", default=None, help=f"comma-separated demo names (default: {','.join(DEMOS)}; "
                                                      "'' for none)")
    parser.add_argument("--json", type=pathlib.Path,
                        default=pathlib.Path(__file__).parent / "results" / "load.json",
                        help="where to write the results (default bench/results/load.json)")
    return parser.parse_args()


class BusyProcess:
    """A process spinning on one CPU (the last this process may use) while the block runs."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.cpu = max(os.sched_getaffinity(0))

    def __enter__(self):
        if self.enabled:
            code = f"import os; os.sched_setaffinity(0, {{{self.cpu}}})\nwhile True: pass"
            self.process = subprocess.Popen([sys.executable, "-c", code])
            time.sleep(0.2)   # let it start spinning
        return self

    def __exit__(self, *_):
        if self.enabled:
            self.process.kill()
            self.process.wait()


def paired_ratios(default, single, rounds, min_seconds):
    """Seconds of `default` and `single` (callables), measured in turn, each measurement
    repeated to last about min_seconds; returns both medians and the per-round ratios."""
    default(), single()   # warm-up
    numbers = [max(1, round(min_seconds / max(timing.seconds_of(function), 1e-6))) for function in (default, single)]
    times = ([], [])
    for _ in range(rounds):
        for function, number, measured in zip((default, single), numbers, times):
            time.sleep(timing.SETTLE_SECONDS)
            measured.append(timing.seconds_of(function, number))
    return summary(*times)


def summary(default_times, single_times):
    ratios = [a / b for a, b in zip(default_times, single_times)]
    return {"default_s": statistics.median(default_times), "single_s": statistics.median(single_times),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "rounds": len(ratios)}


def time_case(case, threads, rounds, min_seconds):
    model = models.FastrnnModel(case, models.initial_parameters(case))

    def run_with(count):
        def run():
            fastrnn.set_num_threads(count)
            model.run()
        return run

    try:
        return paired_ratios(run_with(threads), run_with(1), rounds, min_seconds)
    finally:
        fastrnn.set_num_threads(threads)


def demo_command(name):
    return [sys.executable, "-m", "fastrnn.demos", name, *DEMOS[name]]


def environment_with(threads):
    env = dict(os.environ)
    env.pop("FASTRNN_NUM_THREADS", None)
    if threads is not None:
        env["FASTRNN_NUM_THREADS"] = str(threads)
    return env


def run_processes(commands, threads):
    """Wall seconds until every command (started together) has finished."""
    start = time.perf_counter()
    processes = [subprocess.Popen(command, env=environment_with(threads), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for command in commands]
    for process in processes:
        if process.wait() != 0:
            sys.exit(f"{' '.join(process.args)} failed (run it to see why)")
    return time.perf_counter() - start


def time_processes(commands, rounds):
    """Default threads (FASTRNN_NUM_THREADS unset) against one thread, in turn."""
    times = ([], [])
    for _ in range(rounds):
        for threads, measured in zip((None, 1), times):
            measured.append(run_processes(commands, threads))
    return summary(*times)


def duration(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def print_rows(title, rows):
    print(f"\n{title}")
    print(f"  {'':<26}{'default':>10}{'1 thread':>10}{'ratio':>8}  spread (per round)")
    for name, row in rows.items():
        flag = "" if row["ratio"] <= TARGET else f"  > {TARGET}x"
        print(f"  {name:<26}{duration(row['default_s']):>10}{duration(row['single_s']):>10}{row['ratio']:>7.2f}x"
              f"  {row['ratio_min']:.2f}-{row['ratio_max']:.2f}{flag}")


def main():
    arguments = parse_arguments()
    rounds, min_seconds = (3, 0.02) if arguments.quick else (7, 0.2)
    case_patterns = None if arguments.cases is None else [p.strip() for p in arguments.cases.split(",") if p.strip()]
    cases = [case for case in CASES if case_patterns is None or (case_patterns and matches(case.name, case_patterns))]
    demos = list(DEMOS) if arguments.demos is None else [d.strip() for d in arguments.demos.split(",") if d.strip()]
    unknown = [name for name in demos if name not in DEMOS]
    if unknown:
        sys.exit(f"unknown demos {unknown}; known: {list(DEMOS)}")
    threads = fastrnn.get_num_threads()
    results = {"environment": {"fastrnn": fastrnn.__version__, "kernel_isa": fastrnn.kernel_isa(),
                               "default_threads": threads, "cpus": len(os.sched_getaffinity(0)),
                               "python": platform.python_version(), "quick": arguments.quick,
                               "rounds": rounds, "target": TARGET}}
    print(f"fastrnn {fastrnn.__version__} ({fastrnn.kernel_isa()} kernels): default {threads} threads on "
          f"{results['environment']['cpus']} CPUs; ratio = default / 1 thread, median of {rounds} rounds")
    for case in cases:
        failed = [record for record in check_case(case, models.initial_parameters(case), False)
                  if not record["passed"]]
        if failed:
            sys.exit(f"aborting: correctness check of {case.name!r} failed: {failed}")

    for loaded in (True, False):
        label = "under load (a busy process on CPU" if loaded else "idle"
        with BusyProcess(loaded) as busy:
            if loaded:
                label += f" {busy.cpu})"
            rows = {case.name: time_case(case, threads, rounds, min_seconds) for case in cases}
            rows.update({f"demo {name}": time_processes([demo_command(name)], max(3, rounds // 2)) for name in demos})
        print_rows(f"Bench cases and demos, {label}:", rows)
        results["under_load" if loaded else "idle"] = rows

    if demos:
        name = SIDE_BY_SIDE_DEMO if SIDE_BY_SIDE_DEMO in demos else demos[0]
        side_by_side = time_processes([demo_command(name)] * 2, max(3, rounds // 2))
        print_rows("Two processes side by side, no other load:", {f"2 x demo {name}": side_by_side})
        results["side_by_side"] = {name: side_by_side}

    worst = max((row["ratio"] for row in results["under_load"].values()), default=None)
    results["worst_ratio_under_load"] = worst
    if worst is not None:
        print(f"\nWorst ratio under load: {worst:.2f}x (target <= {TARGET}x): {'PASS' if worst <= TARGET else 'FAIL'}")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(results, indent=2))
    print(f"Results written to {arguments.json}")


if __name__ == "__main__":
    main()

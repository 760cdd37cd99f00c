"""Data-parallel training (fastrnn.distributed) on this machine, and a model of scaling beyond it.

1. Throughput: charlm's training (its default model: Embedding 32 -> LSTM 256 -> Dense, batches
   of 32 streams x 64 characters, stateful) in characters per second, 1 process x 2 threads
   against `mpiexec -n 2` x 1 thread each, the two runs alternated, median and range.
2. The scaling model: for each demo's model at its batch size and for the large LSTM, the
   gradient bytes one step exchanges and the measured compute time of one training step (1
   process, 2 threads). A ring allreduce of B bytes over p nodes takes
   2 (p-1)/p B / bandwidth + 2 (p-1) latency. With the global batch of N rows shared out, a node
   computes ceil(N/p) rows, taken as that share of the step's time t (optimistic: fixed costs
   per step do not shrink). Efficiency = (t/p) / (t ceil(N/p)/N + allreduce), at 8 and 64 nodes
   on 10 and 100 Gb/s links (latency 5 us per message, no overlap of compute and communication).

    python bench/distributed.py [--quick]
    (it starts `mpiexec` itself; the workers are this script with --worker)
"""

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

import fastrnn
from fastrnn import GRU, LSTM, RNN, Dense, Embedding, LastStep, OneHot, ReLU, Sequential

LATENCY = 5e-6          # seconds per message of a ring step: a typical TCP/RDMA figure
LINKS = {"10 Gb/s": 10e9 / 8, "100 Gb/s": 100e9 / 8}   # bytes per second
NODES = (8, 64)


@dataclasses.dataclass
class Workload:
    name: str
    build: object           # () -> (model, x, y): one global batch
    note: str = ""


def ids(batch, steps, classes, rng):
    return rng.integers(0, classes, (batch, steps))


def char_model():
    model = Sequential([Embedding(96, 32, seed=0), LSTM(32, 256, batch_first=True, seed=0), Dense(256, 96, seed=0)])
    rng = np.random.default_rng(0)
    return model, ids(32, 64, 96, rng), ids(32, 64, 96, rng)


def workloads():
    rng = np.random.default_rng(0)

    def per_step(layers, batch, steps, classes):
        return lambda: (Sequential(layers()), ids(batch, steps, classes, rng), ids(batch, steps, classes, rng))

    def features(layers, batch, steps, inputs, outputs):
        return lambda: (Sequential(layers()), rng.standard_normal((batch, steps, inputs)).astype(np.float32),
                        rng.standard_normal((batch, outputs)).astype(np.float32))

    return [
        Workload("hihello (batch 1)", per_step(lambda: [OneHot(5), LSTM(5, 5, batch_first=True), Dense(5, 5)], 1, 6, 5),
                 "one sequence per step: nothing to share out"),
        Workload("ship", per_step(lambda: [OneHot(25), LSTM(25, 25, num_layers=2, batch_first=True), Dense(25, 25)],
                                  32, 10, 25)),
        Workload("sixpence", per_step(lambda: [Embedding(30, 16), LSTM(16, 128, batch_first=True), Dense(128, 30)],
                                      4, 25, 30)),
        Workload("charlm", char_model),
        Workload("classify", lambda: (Sequential([OneHot(128), GRU(128, 16, num_layers=2, bidirectional=True,
                                                                   batch_first=True), LastStep(), Dense(32, 128),
                                                  ReLU(), Dense(128, 4)]),
                                      ids(8, 256, 128, rng), rng.integers(0, 4, 8))),
        Workload("sine", features(lambda: [RNN(1, 32, batch_first=True), LastStep(), Dense(32, 1)], 32, 40, 1, 1)),
        Workload("vibration", features(lambda: [LSTM(100, 100, num_layers=2, batch_first=True), LastStep(),
                                                Dense(100, 100), ReLU(), Dense(100, 100)], 32, 10, 100, 100)),
        Workload("large LSTM (T=100, B=64, 512)",
                 features(lambda: [LSTM(512, 512, batch_first=True), LastStep(), Dense(512, 512)], 64, 100, 512,
                          512)),
    ]


def step_seconds(model, x, y, rounds):
    """Median seconds of one training step (forward, backward, optimizer) at the global batch."""
    model.compile(fastrnn.optim.Adam(), "cross_entropy" if y.dtype.kind in "iu" else "mse")
    model.train_step(x, y)   # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.train_step(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ring_allreduce_seconds(size_bytes, nodes, bandwidth):
    return 2 * (nodes - 1) / nodes * size_bytes / bandwidth + 2 * (nodes - 1) * LATENCY


def scaling_table(rounds):
    fastrnn.set_num_threads(2)
    print("\nThe scaling model (measured step time at 2 threads; predicted efficiency, global batch shared out):")
    header = "".join(f" | {nodes} nodes, {link}" for nodes in NODES for link in LINKS)
    print(f"| model | gradient bytes per step | step (1 node) {header} |")
    print("|---|---|---" + "|---" * (len(NODES) * len(LINKS)) + "|")
    for workload in workloads():
        model, x, y = workload.build()
        seconds = step_seconds(model, x, y, rounds)
        gradient_bytes = model.parameter_buffers()[0][1].nbytes
        batch, cells = len(x), []
        for nodes in NODES:
            for bandwidth in LINKS.values():
                # A node computes its shard, at least one row: ceil(batch / nodes) rows' share.
                compute = seconds * -(-batch // nodes) / batch
                ideal = seconds / nodes
                cells.append(f"{ideal / (compute + ring_allreduce_seconds(gradient_bytes, nodes, bandwidth)):.0%}")
        note = f" ({workload.note})" if workload.note else ""
        print(f"| {workload.name}{note} | {gradient_bytes / 1e6:.3f} MB | {seconds * 1e3:.2f} ms | "
              + " | ".join(cells) + " |")


def worker(steps):
    """One rank's (or the lone process's) charlm training of `steps` global batches; rank 0
    prints the characters per second as JSON."""
    communicator = fastrnn.distributed.mpi()
    model, x, y = char_model()
    model.compile(fastrnn.optim.Adam(lr=2e-3, clip_norm=5.0), "cross_entropy")
    x, y = np.tile(x, (steps, 1)), np.tile(y, (steps, 1))
    model.fit(x[:32], y[:32], batch_size=32, shuffle=False, stateful=True, verbose=0,
              distributed=communicator)   # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, shuffle=False, stateful=True, verbose=0, distributed=communicator)
    seconds = time.perf_counter() - start
    if communicator is None or communicator.rank == 0:
        print(json.dumps({"characters_per_second": x.size / seconds}))


def throughput(rounds, steps):
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('bench/distributed.py needs mpiexec: pip install "fastrnn[mpi]"')
    worker_command = [sys.executable, os.path.abspath(__file__), "--worker", str(steps)]
    setups = {"1 process x 2 threads": (worker_command, "2"),
              "2 processes x 1 thread": ([mpiexec, "-n", "2", *worker_command], "1")}
    rates = {name: [] for name in setups}
    for _ in range(rounds):
        for name, (command, threads) in setups.items():
            completed = subprocess.run(command, capture_output=True, text=True, check=True,
                                       env={**os.environ, "FASTRNN_NUM_THREADS": threads})
            rates[name].append(json.loads(completed.stdout.splitlines()[-1])["characters_per_second"])
    print(f"charlm training, {steps} global batches of 32 x 64 characters, {rounds} alternated runs:")
    print("| setup | characters per second (median) | range |")
    print("|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |")
    ratios = [two / one for one, two in zip(*rates.values())]
    print(f"2 processes / 1 process: {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds and steps, to smoke-test the script")
    parser.add_argument("--worker", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    print(f"fastrnn {fastrnn.__version__} ({fastrnn.kernel_isa()} kernels)")
    throughput(rounds=1 if args.quick else 7, steps=4 if args.quick else 60)
    scaling_table(rounds=2 if args.quick else 9)


if __name__ == "__main__":
    main()

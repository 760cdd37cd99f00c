"""Per-step cost of the cells (fastrnn.LSTMCell / GRUCell / RNNCell) against torch.nn's, timed in one
process: the loop a hand-written decoder runs. One "step" is one call with the state carried; a
"training step" is the call in training mode plus, at the end of each unrolled sequence, one
backward per call in reverse order (per-step cost = the whole sequence's time / its steps).

Before timing, each pair is checked: the same weights give the same states and gradients over
the sequence. Timings are interleaved (fastrnn, torch, fastrnn, ...), the median of the repeats
is reported with the spread (min-max of the per-repeat ratios).

    python bench/cells.py [--threads N] [--repeats R] [--steps T] [--json FILE]
"""

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--threads", type=int, default=None, help="fastrnn's and torch's threads (default: each one's own)")
parser.add_argument("--repeats", type=int, default=9)
parser.add_argument("--steps", type=int, default=50, help="steps per unrolled sequence")
parser.add_argument("--json", help="also write the results to this file")
arguments = parser.parse_args()
if arguments.threads:   # before numpy and fastrnn are imported
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["FASTRNN_NUM_THREADS"] = str(arguments.threads)

import numpy as np   # noqa: E402
import torch   # noqa: E402

import fastrnn   # noqa: E402
from timing import SETTLE_SECONDS   # noqa: E402

if arguments.threads:
    torch.set_num_threads(arguments.threads)

CASES = [  # (cell kind, input size, hidden size, batch)
    ("LSTM", 128, 128, 1), ("LSTM", 128, 128, 64), ("LSTM", 512, 512, 1), ("LSTM", 512, 512, 64),
    ("GRU", 128, 128, 1), ("GRU", 128, 128, 64), ("RNN", 128, 128, 1), ("RNN", 128, 128, 64),
]


def cell_pair(kind, input_size, hidden_size):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, f"{kind}Cell")(input_size, hidden_size)
    ours = getattr(fastrnn, f"{kind}Cell")(input_size, hidden_size)
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    return ours, theirs


def hidden_of(state):
    return state[0] if isinstance(state, tuple) else state


def fastrnn_sequence(cell, xs, training):
    """The cell over xs (state carried); with training, then backward through every call with a
    gradient of ones on each h. Returns the last h and (in training) the last dx."""
    cell.train(training)
    state, dx = None, None
    for x in xs:
        state = cell(x, state)
    if training:
        cell.zero_grad()
        dstate, ones = None, np.ones(hidden_of(state).shape, np.float32)
        for _ in xs:
            if isinstance(dstate, tuple):
                dstate = (dstate[0] + ones, dstate[1])
            else:
                dstate = ones if dstate is None else dstate + ones
            dx, dstate = cell.backward(dstate)
    return hidden_of(state), dx


def torch_sequence(cell, xs, training):
    with torch.set_grad_enabled(training):
        inputs = torch.from_numpy(xs).requires_grad_(training)
        state, total = None, 0
        for step in range(len(xs)):
            state = cell(inputs[step], state)
            total = total + hidden_of(state).sum() if training else 0
        if training:
            cell.zero_grad()
            total.backward()
    return hidden_of(state).detach().numpy(), inputs.grad[0].numpy() if training else None


def check(ours, theirs, xs):
    for training in (False, True):
        our_h, our_dx = fastrnn_sequence(ours, xs, training)
        their_h, their_dx = torch_sequence(theirs, xs, training)
        np.testing.assert_allclose(our_h, their_h, rtol=1e-4, atol=1e-5)
        if training:
            np.testing.assert_allclose(our_dx, their_dx, rtol=1e-3, atol=1e-4)
            for name, value in theirs.named_parameters():
                np.testing.assert_allclose(ours.grads[name], value.grad.numpy(), rtol=1e-3, atol=1e-3)


def interleaved(ours, theirs, repeats):
    """Per-repeat seconds of each, timed alternately."""
    times = {"fastrnn": [], "torch": []}
    for _ in range(repeats):
        for name, function in (("fastrnn", ours), ("torch", theirs)):
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times["fastrnn"], times["torch"]


def main():
    print(f"fastrnn {fastrnn.__version__} ({fastrnn.kernel_isa()}, {fastrnn.get_num_threads()} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU {platform.processor() or 'unknown'}, "
          f"load {os.getloadavg()[0]:.1f}; {arguments.steps} steps per sequence, median of {arguments.repeats}")
    print(f"\n{'cell':<22} {'mode':<9} {'fastrnn/step':>12} {'torch/step':>11} {'speed-up':>9} {'spread':>12}")
    results = []
    rng = np.random.default_rng(0)
    for kind, input_size, hidden_size, batch in CASES:
        ours, theirs = cell_pair(kind, input_size, hidden_size)
        xs = rng.standard_normal((arguments.steps, batch, input_size), dtype=np.float32)
        check(ours, theirs, xs[:5])
        for training in (False, True):
            our_times, their_times = interleaved(functools.partial(fastrnn_sequence, ours, xs, training),
                                                 functools.partial(torch_sequence, theirs, xs, training),
                                                 arguments.repeats)
            ratios = [theirs_ / ours_ for ours_, theirs_ in zip(our_times, their_times)]
            ours_step = statistics.median(our_times) / arguments.steps
            theirs_step = statistics.median(their_times) / arguments.steps
            name, mode = f"{kind}Cell {input_size}->{hidden_size} B={batch}", "train" if training else "inference"
            print(f"{name:<22} {mode:<9} {ours_step * 1e6:10.1f}us {theirs_step * 1e6:9.1f}us "
                  f"{theirs_step / ours_step:8.2f}x {min(ratios):5.2f}-{max(ratios):<5.2f}")
            results.append({"cell": kind, "input_size": input_size, "hidden_size": hidden_size, "batch": batch,
                            "mode": mode, "fastrnn_us_per_step": ours_step * 1e6,
                            "torch_us_per_step": theirs_step * 1e6, "speedup": theirs_step / ours_step,
                            "speedup_spread": [min(ratios), max(ratios)]})
    if arguments.json:
        with open(arguments.json, "w") as file:
            json.dump({"kernel_isa": fastrnn.kernel_isa(), "threads": fastrnn.get_num_threads(),
                       "torch_threads": torch.get_num_threads(), "results": results}, file, indent=1)


if __name__ == "__main__":
    sys.exit(main())

"""Speed of the training API against PyTorch on the issue's small models, timed in one process.

Reports the time of one training step (forward, loss, backward, Adam) of the hihello model
(one-hot 5 -> LSTM 5 -> dense 5) and of the ship model (one-hot -> 2-layer LSTM 25 -> dense,
windows of 10 characters, batch 170), and the time per generated character of a 2-layer
LSTM 256 on 65 characters (fastrnn's generate against a step-by-step torch loop). Before timing,
each model's first-step loss is checked against torch's with the same weights. Timings are
interleaved (fastrnn, torch, fastrnn, ...) and the median of the repeats is reported.

    python bench/api_speed.py [--threads N] [--repeats R]

--threads N sets OpenBLAS's, fastrnn's and torch's thread counts (default: each library's own).
"""

import argparse
import os
import statistics
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--threads", type=int, default=None)
parser.add_argument("--repeats", type=int, default=7)
arguments = parser.parse_args()
if arguments.threads:   # before numpy is imported, so OpenBLAS reads it
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["FASTRNN_NUM_THREADS"] = str(arguments.threads)
# OpenBLAS's idle threads spin for about 0.1 s after a product (the torch models' losses use it);
# they would take the cores the other contender is timed on.
os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"

import numpy as np   # noqa: E402
import torch   # noqa: E402

import fastrnn   # noqa: E402
from fastrnn import LSTM, Dense, OneHot, Sequential, optim   # noqa: E402
from fastrnn.data import Vocabulary, sliding_windows   # noqa: E402
from fastrnn.io import from_torch   # noqa: E402
from timing import SETTLE_SECONDS   # noqa: E402

if arguments.threads:
    torch.set_num_threads(arguments.threads)

SHIP = ("if you want to build a ship, don't drum up people together to collect wood and don't assign them tasks "
        "and work, but rather teach them to long for the endless immensity of the sea.")


class TorchCharModel(torch.nn.Module):
    def __init__(self, classes, hidden, num_layers):
        super().__init__()
        self.lstm = torch.nn.LSTM(classes, hidden, num_layers=num_layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, x, state=None):
        output, state = self.lstm(x, state)
        return self.head(output), state


def pair(classes, hidden, num_layers, lr):
    """The same model and optimizer in fastrnn and torch, with torch's initial weights."""
    torch.manual_seed(0)
    reference = TorchCharModel(classes, hidden, num_layers)
    model = Sequential([OneHot(classes), LSTM(classes, hidden, num_layers=num_layers, batch_first=True),
                        Dense(hidden, classes)])
    from_torch(model, reference.state_dict())
    model.compile(optim.Adam(lr=lr), "cross_entropy")
    return model, reference, torch.optim.Adam(reference.parameters(), lr=lr)


def training_steps(x, y, hidden, num_layers, lr):
    """(fastrnn step, torch step) closures for one batch, checked to give the same first loss."""
    classes = int(max(x.max(), y.max())) + 1
    model, reference, torch_optimizer = pair(classes, hidden, num_layers, lr)
    x_torch = torch.nn.functional.one_hot(torch.from_numpy(x), classes).float()
    y_torch = torch.from_numpy(y).reshape(-1)
    loss_function = torch.nn.CrossEntropyLoss()

    def torch_step():
        torch_optimizer.zero_grad()
        loss = loss_function(reference(x_torch)[0].reshape(-1, classes), y_torch)
        loss.backward()
        torch_optimizer.step()
        return loss.item()

    def fastrnn_step():
        return model.train_step(x, y)["loss"]

    ours, theirs = fastrnn_step(), torch_step()
    assert abs(ours - theirs) <= 1e-5 * (1 + abs(theirs)), f"first-step losses differ: {ours} vs {theirs}"
    return fastrnn_step, torch_step


def generators(classes=65, hidden=256, num_layers=2, prime_length=10):
    """(fastrnn, torch) closures generating n characters with the same weights, temperature 1."""
    model, reference, _ = pair(classes, hidden, num_layers, 1e-3)
    prime = np.arange(prime_length) % classes
    generator = torch.Generator().manual_seed(0)

    def fastrnn_generate(n):
        return model.generate(prime, n, seed=0)

    @torch.no_grad()
    def torch_generate(n):
        logits, state = reference(torch.nn.functional.one_hot(torch.from_numpy(prime)[None], classes).float())
        step = torch.zeros(1, 1, classes)
        generated = []
        for _ in range(n):
            token = torch.multinomial(torch.softmax(logits[0, -1], dim=-1), 1, generator=generator).item()
            generated.append(token)
            step.zero_()
            step[0, 0, token] = 1
            logits, state = reference(step, state)
        return generated

    greedy = model.generate(prime, 20, temperature=0)   # the same model in both: same greedy text
    with torch.no_grad():
        logits, state = reference(torch.nn.functional.one_hot(torch.from_numpy(prime)[None], classes).float())
        reference_greedy = []
        for _ in range(20):
            reference_greedy.append(int(logits[0, -1].argmax()))
            logits, state = reference(torch.nn.functional.one_hot(torch.tensor([[reference_greedy[-1]]]),
                                                                  classes).float(), state)
    assert list(greedy) == reference_greedy, "greedy generations differ"
    return fastrnn_generate, torch_generate


def interleaved(ours, theirs, calls, repeats):
    """Median seconds per call of each, timed alternately."""
    times = {"fastrnn": [], "torch": []}
    for _ in range(repeats):
        for name, function in (("fastrnn", ours), ("torch", theirs)):
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            function(calls)
            times[name].append((time.perf_counter() - start) / calls)
    return statistics.median(times["fastrnn"]), statistics.median(times["torch"])


def repeat(step):
    return lambda calls: [step() for _ in range(calls)]


def main():
    print(f"fastrnn {fastrnn.__version__} ({fastrnn.kernel_isa()}, {fastrnn.get_num_threads()} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.1f}")
    hihello = Vocabulary("hielo")
    ship = Vocabulary(SHIP)
    ship_x, ship_y = sliding_windows(ship.encode(SHIP), seq_len=10)
    cases = [
        ("hihello (LSTM 5, batch 1 x 6 steps)", training_steps(hihello.encode("hihell")[None],
                                                               hihello.encode("ihello")[None], 5, 1, 0.1), 200),
        (f"ship (2-layer LSTM 25, batch {len(ship_x)} x 10 steps, {len(ship)} chars)",
         training_steps(ship_x, ship_y, 25, 2, 0.1), 20),
    ]
    print(f"\n{'training step':<58} {'fastrnn':>10} {'torch':>10} {'speed-up':>9}")
    for name, (ours, theirs), calls in cases:
        ours_time, theirs_time = interleaved(repeat(ours), repeat(theirs), calls, arguments.repeats)
        print(f"{name:<58} {ours_time * 1e6:8.0f}us {theirs_time * 1e6:8.0f}us {theirs_time / ours_time:8.1f}x")
    heading = "generation, per character (65 chars, temperature 1)"
    print(f"\n{heading:<58} {'fastrnn':>10} {'torch':>10} {'speed-up':>9}")
    for hidden in (256, 128):
        ours, theirs = generators(hidden=hidden)
        ours_time, theirs_time = interleaved(ours, theirs, 200, arguments.repeats)
        print(f"{f'2-layer LSTM {hidden}':<58} {ours_time * 1e6:8.0f}us {theirs_time * 1e6:8.0f}us "
              f"{theirs_time / ours_time:8.1f}x")


if __name__ == "__main__":
    sys.exit(main())

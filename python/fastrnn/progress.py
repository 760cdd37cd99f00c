"""The per-epoch progress display of `fit`: a tqdm bar when tqdm is installed (the `demo` extra),
otherwise one plain line rewritten in place with '\\r'. Redraws at most every 0.1 s, so it
costs nothing noticeable per batch even for tiny models."""

import sys
import time

try:
    from tqdm import tqdm
except ImportError:   # optional dependency
    tqdm = None


def format_metrics(metrics):
    return " - ".join(f"{name}: {value:.4f}" for name, value in metrics.items())


class Progress:
    """One epoch. verbose 0: silent; 1: a bar updated while it runs; 2: one line at its end."""

    interval = 0.1   # seconds between redraws

    def __init__(self, epoch, epochs, batches, verbose, stream=None):
        self.title = f"Epoch {epoch}/{epochs}"
        self.batches = batches
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.done = 0
        self._drawn = -float("inf")
        self._width = 0
        self._bar = None
        if verbose == 1 and tqdm is not None:
            self._bar = tqdm(total=batches, desc=self.title, unit="batch", file=self.stream, leave=True)

    def update(self, metrics):
        """One more batch done; `metrics` are the epoch's running means."""
        self.done += 1
        now = time.monotonic()
        if self.verbose != 1 or (now - self._drawn < self.interval and self.done < self.batches):
            return
        self._drawn = now
        if self._bar is not None:
            self._bar.set_postfix_str(format_metrics(metrics), refresh=False)
            self._bar.update(self.done - self._bar.n)
        else:
            self._write_line(metrics, end="")

    def close(self, metrics):
        """The epoch is over: show its final metrics (validation ones included)."""
        if self._bar is not None:
            self._bar.set_postfix_str(format_metrics(metrics), refresh=False)
            self._bar.close()
        elif self.verbose:
            self._write_line(metrics, end="\n")

    def _write_line(self, metrics, end):
        line = f"{self.title} {self.done}/{self.batches} - {format_metrics(metrics)}"
        self._width = max(self._width, len(line))   # pads over a longer previous line
        self.stream.write(f"\r{line.ljust(self._width)}{end}")
        self.stream.flush()

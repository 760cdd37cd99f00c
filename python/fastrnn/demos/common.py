"""What the demos share: their command line (--quick, --seed, --out and settings whose default
depends on --quick), PNG plots through matplotlib's Agg backend (each titled; loss curves against
whole epochs, on a log axis labelled in numbers), and the small helpers of the classic recipes
(text windows, greedy writing, chronological splits, RMSE, baselines side by side)."""

import argparse
import importlib
from pathlib import Path

import numpy as np

from fastrnn.data import Vocabulary, sliding_windows

DEMO_EXTRA = 'pip install "fastrnn[demo]"'   # matplotlib and tqdm


class DemoParser(argparse.ArgumentParser):
    """The options every demo has, plus `add_setting` for options whose default is smaller
    under --quick (the few-second run the tests use).

    --out needs matplotlib; without it parse_args stops with an error naming the extra, before
    any training: the user asked for plots, so finishing without them would be the surprise.
    """

    def __init__(self, name, description):
        super().__init__(prog=f"fastrnn-demo {name}", description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
        self._settings = {}   # dest -> (default, quick default)
        self.add_argument("--quick", action="store_true", help="a run of a few seconds (for tests): smaller settings")
        self.add_argument("--seed", type=int, default=0, help="seed for data, initialisation and sampling (default: 0)")
        self.add_argument("--out", type=Path, metavar="DIR",
                          help=f"write PNG plots to DIR (needs matplotlib: {DEMO_EXTRA})")

    def add_setting(self, flag, default, quick, help, type=int):
        action = self.add_argument(flag, type=type, help=f"{help} (default: {default}; {quick} with --quick)")
        self._settings[action.dest] = (default, quick)

    def parse_args(self, args=None, namespace=None):
        options = super().parse_args(args, namespace)
        for dest, (default, quick) in self._settings.items():
            if getattr(options, dest) is None:
                setattr(options, dest, quick if options.quick else default)
        if options.out is not None:
            try:
                importlib.import_module("matplotlib")   # only checked here; figure() imports what it draws with
            except ImportError:
                self.error(f"--out draws plots with matplotlib, which is not installed; {DEMO_EXTRA}")
        return options


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def trained(losses, unit="epochs", per_epoch=1):
    """Prints how the training loss went, for runs too short to need a progress bar; the run's
    length counted in `unit`, `per_epoch` of them per epoch (passes over a text the data repeats)."""
    print(f"trained {len(losses) * per_epoch} {unit}: loss {losses[0]:.4f} -> {losses[-1]:.4f}")


def compare(metric, model_value, baseline_name, baseline_value):
    """Prints the model's metric next to the naive baseline's, with their ratio (below 1 is better
    for errors, above 1 for accuracies; none when the baseline's value is 0)."""
    ratio = f" | ratio {model_value / baseline_value:.3f}" if baseline_value else ""
    print(f"{metric}: model {model_value:.4f} | {baseline_name} {baseline_value:.4f}{ratio}")


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def figure(title, width=9, height=4):
    """(figure, axes) drawn by the Agg backend, without pyplot: no global state, no window, and
    nothing to close. Only called when --out is given, so matplotlib stays optional. Every plot
    has a title, so this is where it is set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawing = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(drawing)
    axes = drawing.add_subplot()
    axes.set_title(title)
    return drawing, axes


def save(drawing, out, filename):
    """Writes the figure to out/filename as a PNG and says so; returns the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    drawing.savefig(path, dpi=100)
    print(f"wrote {path}")
    return path


def plot_losses(out, filename, title, curves, ylabel="loss", xlabel="epoch"):
    """One line per named curve on a log scale, against whole epochs (or steps). A curve is its
    values at epochs 1, 2, 3, ..., or an (epochs, values) pair when it starts elsewhere or skips some."""
    drawing, axes = figure(title, width=7, height=3.5)
    for label, curve in curves.items():
        epochs, values = curve if isinstance(curve, tuple) else (np.arange(1, len(curve) + 1), curve)
        # With a few epochs the points are what was measured (and one epoch draws no line at all).
        axes.plot(epochs, values, marker="o" if len(values) <= 20 else None, label=label)
    axes.set(xlabel=xlabel, ylabel=ylabel)
    whole_number_ticks(axes.xaxis)
    readable_log_y(axes)
    axes.legend()
    return save(drawing, out, filename)


def whole_number_ticks(axis):
    """Ticks at whole numbers only, for an axis that counts (epochs, steps, passes), in steps of 1,
    2, 5 or 10 (60 epochs: every 10, not every 6). min_n_ticks=1: with the default of 2, a
    one-epoch view (0.95 to 1.05) falls back to ticks at 0.96, 0.98, ..."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


def readable_log_y(axes):
    """Puts the y axis of axes that already hold their data on a log scale labelled in plain
    numbers (0.05, 2.5), with enough labels to read values off. Matplotlib's default labels in
    powers of ten, mostly whole decades: a loss between 1.8 and 3.2 got two labels, 2x10^0 and
    3x10^0, and one from 0.05 to 0.9 only 10^-1 and 10^0. So the ticks follow the span the data
    gave the axis: within a factor of 10, evenly spaced numbers; up to 4 decades, 1, 2 and 5 of
    each decade (their labels stay apart on a plot 3.5 inches high); beyond, the decades."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, StrMethodFormatter

    axes.set_yscale("log")
    low, high = axes.get_ylim()
    decades = np.log10(high / low)
    if decades < 1:
        ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10])
    else:
        ticks = LogLocator(subs=(1, 2, 5) if decades < 4 else (1,))
    axes.yaxis.set_major_locator(ticks)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())   # the unlabelled ticks at 2, 3, ..., 9 of each decade stay


# ---------------------------------------------------------------------------------------------
# Character models
# ---------------------------------------------------------------------------------------------


def text_windows(text, seq_len):
    """(vocabulary, x, y) for next-character prediction: x[i] = ids of text[i : i+seq_len], y[i]
    the same window one character later (the classic char-rnn windows)."""
    vocabulary = Vocabulary(text)
    x, y = sliding_windows(vocabulary.encode(text), seq_len)
    return vocabulary, x, y


def continue_text(model, vocabulary, prime, length, seq_len):
    """`length` characters after `prime`, each the most likely next character given the last
    seq_len characters (the model's own output once the prime is used up): how a model
    trained on windows of seq_len writes. Works for per-step outputs (the last step's logits
    are the prediction) and many-to-one outputs."""
    ids = list(vocabulary.encode(prime))
    for _ in range(length):
        logits = model.predict(np.array(ids[-seq_len:])[None])[0]
        ids.append(int(logits[-1].argmax() if logits.ndim == 2 else logits.argmax()))
    return vocabulary.decode(ids[len(prime):])


# ---------------------------------------------------------------------------------------------
# Time series
# ---------------------------------------------------------------------------------------------


def chronological_split(array, train_fraction):
    """(first part, rest): no shuffling, so the model is tested on a future it has not seen."""
    cut = int(len(array) * train_fraction)
    return array[:cut], array[cut:]


def rmse(prediction, target):
    return float(np.sqrt(np.mean((np.asarray(prediction) - np.asarray(target)) ** 2)))


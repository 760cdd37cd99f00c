"""sort: an encoder-decoder reads a sequence of digits and writes it back sorted.

The course's many-to-one-to-many model. A stacked LSTM encoder reads random digits (0-9), 8 to
12 of them (padded to 12; `lengths` marks each sequence's digits); its final states, layer by
layer, are the initial states of a decoder as deep, whose inputs are zeros: everything it
writes comes from the state the encoder left, so that state must hold how many of each digit
the sequence has (sorting is counting). At each step a dense layer turns the decoder's output
into the logits of that position's digit; the loss skips the padded positions.

The course's encoder has 4 layers of 512 units (--layers 4 --hidden 512, with a decoder as
deep: some 35 times the arithmetic per step); this task needs far less, and 2 layers of 128
learn it in under a minute on 2 cores. The held-out sequences are scored per position (digits
right, over valid positions) and exactly (every digit right), next to the baseline that copies
its input.

--decoder-inputs teacher feeds the decoder the previous sorted digit in training and its own
previous output when predicting; "previous" feeds it its own output in training too.
"""

import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, OneHot, Seq2Seq
from fastrnn.seq2seq import DECODER_INPUTS

from .common import DemoParser, compare, figure, plot_losses, save

DIGITS = 10
MIN_LENGTH, MAX_LENGTH = 8, 12
TEST_SEQUENCES = 1000
EXAMPLES = 5                 # held-out sequences printed with the model's output
COPYING = 'copying "output = input"'


def main(argv=None):
    parser = DemoParser("sort", __doc__)
    parser.add_setting("--sequences", 10_000, 4000, "training sequences")
    parser.add_setting("--epochs", 6, 4, "passes over the training sequences")
    parser.add_setting("--hidden", 128, 64, "LSTM hidden size (encoder and decoder)")
    parser.add_argument("--layers", type=int, default=2, help="LSTM layers (encoder and decoder; default: 2)")
    parser.add_argument("--decoder-inputs", choices=DECODER_INPUTS, default="zeros",
                        help="what the decoder reads at each step (default: zeros, as in the course)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, y, lengths = digit_sequences(args.sequences, rng)
    # Held out: with 10^8 to 10^12 possible sequences of each length, almost surely none was trained on.
    x_test, y_test, test_lengths = digit_sequences(TEST_SEQUENCES, rng)

    model = sorting_model(args.hidden, args.layers, args.decoder_inputs, args.seed)
    model.compile(fastrnn.optim.Adam(lr=0.01, clip_norm=1.0), "cross_entropy")   # clipping: LSTM gradients can spike
    history = model.fit(x, y, lengths=lengths, epochs=args.epochs, batch_size=32,
                        validation_data=(x_test, y_test, test_lengths)).history

    output = model.decode(x_test, test_lengths)
    exact, per_position, by_position = accuracies(output, y_test, test_lengths)
    copy_exact, copy_per_position, copy_by_position = accuracies(x_test, y_test, test_lengths)
    print(f"{EXAMPLES} held-out sequences: input -> model output (sorted)")
    for source, written, target, length in zip(x_test[:EXAMPLES], output, y_test, test_lengths):
        print(f"  {text(source, length)} -> {text(written, length)} ({text(target, length)})")
    compare("per-position accuracy", per_position, COPYING, copy_per_position)
    compare("exact-sequence accuracy", exact, COPYING, copy_exact)
    if args.out:
        plot_losses(args.out, "sort_loss.png", "Sorting digits: loss",
                    {"training": history["loss"], "held-out": history["val_loss"]}, ylabel="cross-entropy")
        plot_accuracy_by_position(args.out, by_position, copy_by_position)
    print(f"sort: per position {per_position:.4f}, exact {exact:.4f} "
          f"(copying: {copy_per_position:.4f}, {copy_exact:.4f})")
    return {"exact": exact, "per_position": per_position, "copy_exact": copy_exact,
            "copy_per_position": copy_per_position}


def digit_sequences(count, rng):
    """(x, x sorted, lengths): `count` sequences of random digits, MIN_LENGTH to MAX_LENGTH long,
    padded with 0 to MAX_LENGTH (the padding is never read: the encoder stops at each length,
    and the loss and the scores skip the positions past it)."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, count)
    valid = valid_positions(lengths)
    digits = np.where(valid, rng.integers(0, DIGITS, (count, MAX_LENGTH)), 0)
    # Padding sorts last as DIGITS (above every digit), then becomes 0 like the input's.
    return digits, np.where(valid, np.sort(np.where(valid, digits, DIGITS), axis=1), 0), lengths


def sorting_model(hidden, layers, decoder_inputs, seed):
    """Encoder and decoder LSTMs of the same shape; a decoder fed its outputs reads them one-hot."""
    fed_back = decoder_inputs != "zeros"
    return Seq2Seq(
        encoder=LSTM(DIGITS, hidden, num_layers=layers, batch_first=True, seed=seed),
        decoder=LSTM(DIGITS if fed_back else 1, hidden, num_layers=layers, batch_first=True, seed=seed),
        head=Dense(hidden, DIGITS, seed=seed),              # each step's output -> that position's digit logits
        source_embedding=OneHot(DIGITS), target_embedding=OneHot(DIGITS) if fed_back else None,
        decoder_inputs=decoder_inputs, seed=seed)


def valid_positions(lengths):
    """(N, MAX_LENGTH) booleans: True at each sequence's digits, False at its padding."""
    return np.arange(MAX_LENGTH) < lengths[:, None]


def accuracies(output, targets, lengths):
    """(exact-sequence accuracy, per-position accuracy, accuracy at each output position) of
    output ids against the targets, over valid positions only."""
    valid = valid_positions(lengths)
    right = output == targets
    by_position = (right & valid).sum(axis=0) / valid.sum(axis=0)
    return float((right | ~valid).all(axis=1).mean()), float(right[valid].mean()), by_position


def text(digits, length):
    """A sequence's valid digits as a string, e.g. "01123799"."""
    return "".join(map(str, digits[:length]))


def plot_accuracy_by_position(out, model_accuracy, copying_accuracy):
    drawing, axes = figure("Sorting digits: accuracy at each output position", width=7, height=3.5)
    positions = np.arange(1, MAX_LENGTH + 1)
    axes.plot(positions, model_accuracy, "o-", label="encoder-decoder")
    axes.plot(positions, copying_accuracy, "s--", label=COPYING)
    axes.set(xlabel="output position", ylabel="accuracy (held-out)", ylim=(0, 1.05), xticks=positions)
    axes.legend(loc="center right")
    return save(drawing, out, "sort_accuracy.png")

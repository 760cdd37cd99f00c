"""ship: a 2-layer LSTM learns a long sentence from windows of 10 characters, then rewrites it.

The classic "long sentence" tutorial. The sentence is cut into every window of 10 characters
(x) paired with the same window shifted by one (y), so each step learns the next character
from at most the 10 before it. After training, the model gets only the first 10 characters
and writes the rest itself, each character predicted from the last 10 it wrote.
"""

import fastrnn
from fastrnn import LSTM, Dense, OneHot, Sequential

from .common import DemoParser, continue_text, plot_losses, text_windows, trained

SENTENCE = ("if you want to build a ship, don't drum up people together to collect wood and don't assign them "
            "tasks and work, but rather teach them to long for the endless immensity of the sea.")
WINDOW = 10


def main(argv=None):
    parser = DemoParser("ship", __doc__)
    parser.add_setting("--epochs", 100, 40, "passes over the windows")
    parser.add_argument("--hidden", type=int, default=64, help="LSTM hidden size (default: 64)")
    args = parser.parse_args(argv)

    vocabulary, x, y = text_windows(SENTENCE, WINDOW)    # x, y: (170 windows, 10) of ids
    classes = len(vocabulary)
    model = Sequential([
        OneHot(classes),
        LSTM(classes, args.hidden, num_layers=2, batch_first=True, seed=args.seed),   # two stacked layers
        Dense(args.hidden, classes, seed=args.seed),
    ], seed=args.seed)
    model.compile(fastrnn.optim.Adam(lr=0.01), "cross_entropy")
    losses = model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0).history["loss"]   # ~1 s: no progress bar
    trained(losses)

    rewritten = SENTENCE[:WINDOW] + continue_text(model, vocabulary, SENTENCE[:WINDOW], len(SENTENCE) - WINDOW, WINDOW)
    correct = sum(a == b for a, b in zip(rewritten, SENTENCE))
    if args.out:
        plot_losses(args.out, "ship_loss.png", "The long sentence from windows of 10 characters: training loss",
                    {"training": losses})
    print(f"given {SENTENCE[:WINDOW]!r}, the model writes:\n{rewritten}")
    print(f"ship: {correct}/{len(SENTENCE)} characters as in the sentence, loss {losses[-1]:.4f}")
    return {"text": rewritten, "sentence": SENTENCE, "loss": losses[-1]}

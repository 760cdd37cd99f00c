"""hihello: an LSTM learns to map "hihell" to "ihello", one character ahead at each step.

The classic first RNN tutorial. Five distinct characters, one-hot encoded; at each step the
LSTM's output goes through a dense layer to five logits, and softmax cross-entropy compares
them with the next character. Every few steps it prints the loss and the predicted string.
"""

import fastrnn
from fastrnn import LSTM, Dense, OneHot, Sequential
from fastrnn.data import Vocabulary

from .common import DemoParser, plot_losses

SOURCE, TARGET = "hihell", "ihello"


def main(argv=None):
    parser = DemoParser("hihello", __doc__)
    parser.add_setting("--steps", 60, 40, "optimizer steps on the one training sequence")
    parser.add_argument("--every", type=int, default=5, help="print every N steps (default: 5)")
    args = parser.parse_args(argv)

    vocabulary = Vocabulary(SOURCE + TARGET)            # e, h, i, l, o -> ids 0..4
    classes = len(vocabulary)
    x = vocabulary.encode(SOURCE)[None]                 # (1 sequence, 6 steps) of ids
    y = vocabulary.encode(TARGET)[None]                 # the next character at each step
    model = character_model(classes, args.seed)

    losses, prediction = train_printing_predictions(model, x, y, vocabulary, args.steps, args.every)
    if args.out:
        plot_losses(args.out, "hihello_loss.png", f"{SOURCE!r} -> {TARGET!r}: training loss",
                    {"training": losses}, xlabel="step")
    print(f"hihello: {SOURCE!r} -> {prediction!r} (target {TARGET!r}), loss {losses[-1]:.4f}")
    return {"prediction": prediction, "loss": losses[-1]}


def character_model(classes, seed):
    """The tutorial's model, compiled: one-hot ids -> LSTM with `classes` units -> per-step
    logits over the `classes` characters; Adam(lr=0.1) on cross-entropy."""
    model = Sequential([
        OneHot(classes),                                # ids -> one-hot vectors (batch, steps, classes)
        LSTM(classes, classes, batch_first=True, seed=seed),
        Dense(classes, classes, seed=seed),             # per-step logits over the characters
    ])
    model.compile(fastrnn.optim.Adam(lr=0.1), "cross_entropy")
    return model


def train_printing_predictions(model, x, y, vocabulary, steps, every):
    """The tutorial's loop: one optimizer step on the whole (tiny) data set per step and, every
    `every` steps, the loss and the predicted string (the most likely character at each step).
    Returns (the losses, the last prediction)."""
    losses = []
    for step in range(1, steps + 1):
        losses.append(model.train_step(x, y)["loss"])
        if step % every == 0 or step == steps:
            prediction = vocabulary.decode(model.predict(x).argmax(axis=-1))
            print(f"step {step:4d}  loss {losses[-1]:.4f}  prediction {prediction!r}")
    return losses, prediction

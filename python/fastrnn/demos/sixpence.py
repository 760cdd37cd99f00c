"""sixpence: "Sing a Song of Sixpence" learnt two ways, many-to-one and many-to-many, then recited.

many-to-one (the classic character-model tutorial): every window of 10 characters is one
example and its label is the character that follows; LastStep keeps the LSTM's output at the
window's last step. To write, the model predicts a character, appends it and slides the window.
Ten characters are not always enough: " blackbird" ends a line of both the first and the last
verse, so this model may jump from one to the other.

many-to-many: the rhyme, repeated, is one long sequence cut into chunks, and every step predicts
the next character. Training is stateful truncated BPTT: each chunk starts from the state the
previous chunk ended with, so the model learns to use more than a window of context, and
model.generate() can carry its state along while it writes.
"""

import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, Embedding, LastStep, OneHot, Sequential
from fastrnn.data import Vocabulary, sequence_batches

from .common import DemoParser, continue_text, plot_losses, text_windows, trained

RHYME = """Sing a song of sixpence,
A pocket full of rye.
Four and twenty blackbirds,
Baked in a pie.

When the pie was opened
The birds began to sing;
Wasn't that a dainty dish,
To set before the king.

The king was in his counting house,
Counting out his money;
The queen was in the parlour,
Eating bread and honey.

The maid was in the garden,
Hanging out the clothes,
When down came a blackbird
And pecked off her nose.
"""
WINDOW = 10
COPIES = 5   # copies of the rhyme in the many-to-many text: see many_to_many
PRIME = "Sing a son"


def main(argv=None):
    parser = DemoParser("sixpence", __doc__)
    parser.add_argument("--variant", choices=("many-to-one", "many-to-many", "both"), default="both",
                        help="which model(s) to train (default: both)")
    parser.add_setting("--epochs", 100, 50, "passes over the rhyme")
    parser.add_argument("--prime", default=PRIME, help=f"the text to continue (default: {PRIME!r})")
    parser.add_argument("--temperature", type=float, default=0.5,
                        help="many-to-many sampling temperature, 0 for the most likely character (default: 0.5)")
    args = parser.parse_args(argv)
    if not args.prime or not set(args.prime) <= set(RHYME):
        parser.error(f"--prime: expected characters of the rhyme, got {args.prime!r}")

    results, curves = {}, {}   # curves: name -> (passes over the rhyme, loss after them)
    if args.variant in ("many-to-one", "both"):
        curves["many-to-one"], text = many_to_one(args)
        results["many_to_one_loss"] = curves["many-to-one"][1][-1]
        print(f"many-to-one, from {args.prime!r}:\n{args.prime}{text}\n")
    if args.variant in ("many-to-many", "both"):
        curves["many-to-many"], text = many_to_many(args)
        results["many_to_many_loss"] = curves["many-to-many"][1][-1]
        print(f"many-to-many, from {args.prime!r} at temperature {args.temperature}:\n{args.prime}{text}\n")
    if args.out:
        plot_losses(args.out, "sixpence_loss.png", "Sing a Song of Sixpence: training loss", curves,
                    ylabel="training loss", xlabel="passes over the rhyme")
    finals = ", ".join(f"{name} {losses[-1]:.4f}" for name, (_, losses) in curves.items())
    print(f"sixpence: final training loss {finals}")
    return results


def many_to_one(args):
    """((passes, losses), text written after the prime) of the window -> next character model."""
    vocabulary, x, y = text_windows(RHYME, WINDOW)
    y = y[:, -1]                                    # only the character after each window: (windows,)
    classes = len(vocabulary)
    model = Sequential([
        OneHot(classes),
        LSTM(classes, 75, batch_first=True, seed=args.seed),
        LastStep(),                                 # (windows, 10, 75) -> (windows, 75)
        Dense(75, classes, seed=args.seed),
    ], seed=args.seed)
    model.compile(fastrnn.optim.Adam(lr=0.01), "cross_entropy")
    losses = model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0).history["loss"]   # a second: no bar
    trained(losses, "passes over the rhyme")
    text = continue_text(model, vocabulary, args.prime, len(RHYME) - len(args.prime), WINDOW)
    return (np.arange(1, len(losses) + 1), losses), text


def many_to_many(args):
    """((passes, losses), text written after the prime) of the stateful per-step model."""
    vocabulary = Vocabulary(RHYME)
    classes = len(vocabulary)
    # 4 streams, each cut into chunks of 25 characters: batch k+1 continues batch k. Each stream
    # starts from a zero state; with the rhyme repeated, every verse is also in the middle of a
    # stream, so the model learns to go on from any point, as generate() needs.
    x, y = sequence_batches(vocabulary.encode(RHYME * COPIES), batch_size=4, seq_len=25)
    model = Sequential([
        Embedding(classes, 16, seed=args.seed),
        LSTM(16, 128, batch_first=True, seed=args.seed),
        Dense(128, classes, seed=args.seed),
    ], seed=args.seed, vocabulary=vocabulary)
    model.compile(fastrnn.optim.Adam(lr=0.01, clip_norm=5.0), "cross_entropy")
    losses = model.fit(x, y, epochs=max(1, args.epochs // COPIES), batch_size=4, shuffle=False, stateful=True,
                       verbose=0).history["loss"]
    trained(losses, "passes over the rhyme", COPIES)   # each epoch reads the rhyme COPIES times
    text = model.generate(args.prime, len(RHYME) - len(args.prime), temperature=args.temperature, seed=args.seed)
    return (COPIES * np.arange(1, len(losses) + 1), losses), text

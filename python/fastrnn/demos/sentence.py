"""sentence: the hihello recipe on any short text, " if you want you" by default.

The vocabulary now comes from the text itself, and the model learns to predict each next
character of the sentence from the ones before it: x is the text without its last character,
y the text without its first. The LSTM's hidden size is the number of distinct characters,
as in the classic tutorial.
"""

from fastrnn.data import Vocabulary

from .common import DemoParser, plot_losses
from .hihello import character_model, train_printing_predictions

SENTENCE = " if you want you"


def main(argv=None):
    parser = DemoParser("sentence", __doc__)
    parser.add_argument("--text", default=SENTENCE, help=f"the sentence to learn (default: {SENTENCE!r})")
    parser.add_setting("--steps", 50, 30, "optimizer steps on the one training sequence")
    parser.add_argument("--every", type=int, default=5, help="print every N steps (default: 5)")
    args = parser.parse_args(argv)
    if len(args.text) < 2:
        parser.error("--text: needs at least two characters (one to read, one to predict)")

    vocabulary = Vocabulary(args.text)
    ids = vocabulary.encode(args.text)
    x, y = ids[None, :-1], ids[None, 1:]                # (1, len - 1): each character -> the next one
    classes = len(vocabulary)
    model = character_model(classes, args.seed)

    losses, prediction = train_printing_predictions(model, x, y, vocabulary, args.steps, args.every)
    if args.out:
        plot_losses(args.out, "sentence_loss.png", f"Each next character of {args.text!r}: training loss",
                    {"training": losses}, xlabel="step")
    target = args.text[1:]
    correct = sum(a == b for a, b in zip(prediction, target))
    print(f"sentence: predicted {prediction!r} for {target!r}: {correct}/{len(target)} characters, "
          f"loss {losses[-1]:.4f}")
    return {"prediction": prediction, "target": target, "loss": losses[-1]}

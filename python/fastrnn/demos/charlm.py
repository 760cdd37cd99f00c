"""charlm: a character language model of any text file; by default, Python's own standard library.

The char-rnn recipe. The text is split into training (the first 90%) and validation (the
rest) parts. Training is stateful truncated BPTT: the training text is cut into `--batch-size`
long streams read side by side in chunks of `--seq-len` characters; each chunk starts from the
LSTM state the previous one ended with, and gradients flow back through one chunk only.
After each epoch the demo prints the validation loss in bits per character, next to a naive
baseline (each character's frequency in the training text, ignoring context), writes a sample
at `--temperature`, and saves a checkpoint if asked; `--resume` continues from it.

Under mpiexec (`mpiexec -n 2 fastrnn-demo charlm`) the ranks train data-parallel, each on its
share of every batch's streams (fastrnn.distributed); rank 0 prints, samples and saves.

Without --text the corpus is the public top-level modules of the running interpreter's
standard library (sysconfig's "stdlib" directory), in name order: real text on every machine,
no download. Either corpus is cut at --max-chars.
"""

import math
import sysconfig
from pathlib import Path

import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, Embedding, Sequential
from fastrnn.data import Vocabulary, sequence_batches, sliding_windows

from .common import DemoParser, compare, plot_losses

VALIDATION_FRACTION = 0.1
STDLIB_PRIME = "def "


def main(argv=None):
    parser = DemoParser("charlm", __doc__)
    parser.add_argument("--text", type=Path, metavar="FILE", help="a UTF-8 text file (default: the stdlib sources)")
    parser.add_setting("--max-chars", 600_000, 60_000, "characters of the corpus to use")
    parser.add_setting("--epochs", 4, 1, "passes over the training text in all (a --resume run trains those the "
                                         "checkpoint has not)")
    parser.add_setting("--hidden", 256, 64, "LSTM hidden size")
    parser.add_setting("--batch-size", 32, 16, "streams read side by side")
    parser.add_setting("--seq-len", 64, 32, "characters per chunk (how far back gradients flow)")
    # 1.0 samples the model's own distribution. Below it, a model this small and this briefly
    # trained falls into loops of one character (a sample of underscores after 3 epochs at 0.8).
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature: lower is more repetitive, higher more inventive (default: 1.0)")
    parser.add_setting("--sample-length", 400, 100, "characters per sample")
    parser.add_argument("--prime", help=f"text the samples start from (default: {STDLIB_PRIME!r} for the stdlib, "
                                        "else the first 10 characters of --text)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH", help="save the model here after every epoch")
    parser.add_argument("--resume", action="store_true", help="start from the --checkpoint file instead of anew")
    args = parser.parse_args(argv)
    # Under mpiexec the ranks train data-parallel (fastrnn.distributed); rank 0 alone prints,
    # samples, plots and writes the checkpoint.
    communicator = fastrnn.distributed.mpi()
    root = communicator is None or communicator.rank == 0
    say = print if root else (lambda *args, **kwargs: None)
    if args.resume and args.checkpoint is None:
        parser.error("--resume needs --checkpoint PATH (the file to resume from)")

    try:
        text = read_corpus(args.text, args.max_chars)
        model = resumed_model(args.checkpoint, text) if args.resume else new_model(Vocabulary(text), args)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if args.resume:
        say(f"resumed from {args.checkpoint}")
    prime = args.prime or (STDLIB_PRIME if args.text is None else text[:10])
    if not set(prime) <= set(model.vocabulary.tokens):
        parser.error(f"--prime: {prime!r} has characters the model does not know")
    if model.optimizer is None:   # a new model (a checkpoint holds its optimizer, its state and its epochs)
        model.compile(fastrnn.optim.Adam(lr=2e-3, clip_norm=5.0), "cross_entropy")
    if model.epochs_done >= args.epochs:
        parser.error(f"--epochs {args.epochs}: the checkpoint has trained {model.epochs_done} epochs already; "
                     "--epochs counts them all, so ask for more")

    cut = int(len(text) * (1 - VALIDATION_FRACTION))
    train_ids, validation_ids = model.vocabulary.encode(text[:cut]), model.vocabulary.encode(text[cut:])
    try:
        x, y = sequence_batches(train_ids, args.batch_size, args.seq_len)
        # Validation: consecutive chunks, each evaluated from a zero state (a little pessimistic).
        validation = sliding_windows(validation_ids, args.seq_len, step=args.seq_len)
    except ValueError as error:
        parser.error(f"the text is too short for --batch-size {args.batch_size} and --seq-len {args.seq_len}: {error}")
    baseline = unigram_bits(train_ids, validation_ids, len(model.vocabulary))
    parameters = sum(view.size for view in model.params.values())
    if len(train_ids) < parameters:   # fewer characters than parameters: it memorises the text
        say(f"warning: {len(train_ids):,} training characters for a model of {parameters:,} parameters is too "
              f"little text to learn from: expect gibberish samples and validation no better than character "
              f"frequencies. Use a longer --text (at least {parameters:,} characters) or a smaller --hidden.")
    say(f"{len(text):,} characters ({len(train_ids):,} training, {len(validation_ids):,} validation), "
          f"{len(model.vocabulary)} distinct; model: {model.layers[1]!r}")

    samples = []

    def end_of_epoch(epoch, logs):
        """After each epoch: validation in bits per character, a sample, a checkpoint."""
        logs["bits"] = bits(logs["loss"])
        logs["val_bits"] = bits(model.evaluate(*validation, batch_size=args.batch_size,
                                               distributed=communicator)["loss"])
        if not root:
            return
        compare("validation bits per character", logs["val_bits"], "character frequencies", baseline)
        samples.append(model.generate(prime, args.sample_length, temperature=args.temperature, seed=args.seed + epoch))
        print(f"--- sample at temperature {args.temperature} ---\n{prime}{samples[-1]}\n---")
        if args.checkpoint:
            model.save(args.checkpoint)
            print(f"saved {args.checkpoint}")

    epochs = np.arange(model.epochs_done + 1, args.epochs + 1)   # a resumed run's follow the checkpoint's
    history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, shuffle=False, stateful=True,
                        initial_epoch=model.epochs_done, callbacks=[end_of_epoch], distributed=communicator).history
    curves = {"training": history["bits"], "validation": history["val_bits"]}
    sample = samples[-1] if root else None

    if args.out and root:
        text_name = args.text.name if args.text else "the standard library's sources"
        plot_losses(args.out, "charlm_bits.png", f"Character model of {text_name}: bits per character",
                    {name: (epochs, values) for name, values in curves.items()}, ylabel="bits per character")
    say(f"charlm: validation {curves['validation'][-1]:.3f} bits per character "
          f"(character frequencies: {baseline:.3f})")
    return {"validation_bits": curves["validation"][-1], "training_bits": curves["training"][-1],
            "baseline_bits": baseline, "sample": sample}


def read_corpus(path, max_chars):
    """The first max_chars characters of the file at `path`, or of the stdlib sources."""
    if path is not None:
        try:
            text, source = path.read_text(encoding="utf-8")[:max_chars], path
        except UnicodeDecodeError as error:
            raise ValueError(f"--text {path}: not UTF-8 text ({error.reason} at byte {error.start}); convert it "
                             f"first, e.g. iconv -f latin1 -t utf-8 {path} > text.txt") from None
    else:
        source = Path(sysconfig.get_paths()["stdlib"])
        parts, size = [], 0
        for module in sorted(source.glob("*.py")):
            if module.name.startswith("_"):
                continue
            parts.append(module.read_text(encoding="utf-8"))
            size += len(parts[-1])
            if size >= max_chars:
                break
        text = "".join(parts)[:max_chars]
    if not text:
        raise ValueError(f"{source}: no text found" + ("" if path else " (no Python sources; pass --text FILE)"))
    return text


def new_model(vocabulary, args):
    classes = len(vocabulary)
    return Sequential([
        Embedding(classes, 32, seed=args.seed),                # each character id -> a learnt vector
        LSTM(32, args.hidden, batch_first=True, seed=args.seed),
        Dense(args.hidden, classes, seed=args.seed),           # next-character logits at every step
    ], seed=args.seed, vocabulary=vocabulary)


def resumed_model(checkpoint, text):
    """The model saved at `checkpoint`, if it can read `text`."""
    model = fastrnn.load(checkpoint)
    if model.vocabulary is None:
        raise ValueError(f"{checkpoint}: a model without a vocabulary, not a character model")
    unknown = "".join(sorted(set(text) - set(model.vocabulary.tokens)))
    if unknown:
        raise ValueError(f"{checkpoint}: the model has never seen these characters of the text: {unknown[:20]!r}")
    return model


def unigram_bits(train_ids, validation_ids, classes):
    """Validation cross-entropy in bits of the context-free model: each character's training
    frequency (add-one smoothed, so no character has probability 0)."""
    counts = np.bincount(train_ids, minlength=classes) + 1.0
    return float(-np.mean(np.log2(counts[validation_ids] / counts.sum())))


def bits(nats):
    """fastrnn's cross-entropy is in nats (natural logarithm); bits per character are base 2."""
    return nats / math.log(2)

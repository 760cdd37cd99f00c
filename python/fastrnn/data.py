"""Turning text and long sequences into training arrays: a character vocabulary, sliding
windows (many short independent sequences) and the chunked layout of stateful truncated BPTT."""

import numpy as np

from .base import class_ids, positive_int


class Vocabulary:
    """Tokens (the characters of a text, or any strings) <-> ids 0..n-1, in sorted order.

    >>> vocabulary = Vocabulary("hello")    # tokens ['e', 'h', 'l', 'o']
    >>> vocabulary.decode(vocabulary.encode("hole"))
    'hole'
    """

    def __init__(self, tokens):
        self.tokens = sorted(set(tokens))
        if not self.tokens or not all(isinstance(token, str) for token in self.tokens):
            raise ValueError("tokens: expected a non-empty text or collection of strings")
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    def encode(self, text):
        """The ids (int64 array) of the characters of `text` (or of a sequence of tokens)."""
        try:
            return np.array([self._ids[token] for token in text], dtype=np.int64)
        except KeyError as error:
            raise ValueError(f"text: {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        """The text of `ids` (integers in [0, len(self))): their tokens joined."""
        ids = np.asarray(ids)
        if not ids.size:   # [] is a float64 array, yet plainly no ids
            return ""
        return "".join(self.tokens[index] for index in class_ids(ids, len(self), "ids").ravel())

    def __len__(self):
        return len(self.tokens)

    def __repr__(self):
        return f"Vocabulary({self.tokens!r})"


def sliding_windows(sequence, seq_len, step=1):
    """x, y for next-step prediction from one sequence (L, ...): x[i] = sequence[i*step :
    i*step + seq_len] and y[i] the same window one step later; both (N, seq_len, ...)."""
    sequence = np.asarray(sequence)
    seq_len, step = positive_int(seq_len, "seq_len"), positive_int(step, "step")
    if len(sequence) < seq_len + 1:
        raise ValueError(f"sequence: expected at least seq_len + 1 = {seq_len + 1} steps, got {len(sequence)}")
    starts = np.arange(0, len(sequence) - seq_len, step)
    window = starts[:, None] + np.arange(seq_len)
    return sequence[window], sequence[window + 1]


def sequence_batches(sequence, batch_size, seq_len):
    """x, y laid out for stateful truncated BPTT (the char-rnn recipe).

    The sequence (L, ...) is cut into batch_size contiguous streams, each cut into chunks of
    seq_len steps. x has shape (chunks * batch_size, seq_len, ...): rows [k*batch_size,
    (k+1)*batch_size) are chunk k, and row i of chunk k+1 continues row i of chunk k. y is x one
    step later. Train with fit(x, y, batch_size=batch_size, shuffle=False, stateful=True).
    The tail that does not fill a whole chunk is dropped.
    """
    sequence = np.asarray(sequence)
    batch_size, seq_len = positive_int(batch_size, "batch_size"), positive_int(seq_len, "seq_len")
    stream_length = (len(sequence) - 1) // batch_size
    chunks = stream_length // seq_len
    if chunks == 0:
        raise ValueError(f"sequence: {len(sequence)} steps are too few for batch_size={batch_size} streams of at "
                         f"least seq_len={seq_len} steps (needs {batch_size * seq_len + 1})")
    item_shape = sequence.shape[1:]

    def layout(start):
        streams = sequence[start:start + batch_size * stream_length].reshape((batch_size, stream_length) + item_shape)
        chunked = streams[:, :chunks * seq_len].reshape((batch_size, chunks, seq_len) + item_shape)
        return chunked.swapaxes(0, 1).reshape((chunks * batch_size, seq_len) + item_shape)

    return layout(0), layout(1)


__all__ = ["Vocabulary", "sequence_batches", "sliding_windows"]


def __dir__():   # dir() and editors' completion: the public names only, not numpy or math
    return __all__

"""fastrnn.data: the vocabulary, sliding windows and the stateful-BPTT batch layout."""

import numpy as np
import pytest

from fastrnn.data import Vocabulary, sequence_batches, sliding_windows


def test_vocabulary_round_trip_and_errors():
    vocabulary = Vocabulary("hello world")
    assert vocabulary.tokens == [" ", "d", "e", "h", "l", "o", "r", "w"] and len(vocabulary) == 8
    ids = vocabulary.encode("hold")
    assert ids.dtype == np.int64 and vocabulary.decode(ids) == "hold"
    with pytest.raises(ValueError, match="text: 'z' is not in the vocabulary"):
        vocabulary.encode("lolz")
    with pytest.raises(ValueError, match="tokens: expected a non-empty text"):
        Vocabulary("")


def test_decode_takes_only_ids_of_the_vocabulary():
    vocabulary = Vocabulary("abc")
    assert vocabulary.decode([]) == ""
    # Python's negative indexing used to decode -1 as the last token
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 3\), got values from -1 to 0"):
        vocabulary.decode([-1, 0])
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 3\), got values from 0 to 3"):
        vocabulary.decode([0, 3])


def test_sliding_windows_pair_each_window_with_the_next_step():
    x, y = sliding_windows(np.arange(7), seq_len=3, step=2)
    np.testing.assert_array_equal(x, [[0, 1, 2], [2, 3, 4]])
    np.testing.assert_array_equal(y, [[1, 2, 3], [3, 4, 5]])
    x, y = sliding_windows(np.zeros((12, 2)), seq_len=10)
    assert x.shape == y.shape == (2, 10, 2)
    with pytest.raises(ValueError, match=r"sequence: expected at least seq_len \+ 1 = 5 steps, got 4"):
        sliding_windows(np.arange(4), seq_len=4)


def test_sequence_batches_continue_each_row_in_the_next_chunk():
    x, y = sequence_batches(np.arange(27), batch_size=2, seq_len=4)
    # streams of (27 - 1) // 2 = 13 steps: [0, 13) and [13, 26); 3 whole chunks of 4 steps each
    np.testing.assert_array_equal(x, [[0, 1, 2, 3], [13, 14, 15, 16],
                                      [4, 5, 6, 7], [17, 18, 19, 20],
                                      [8, 9, 10, 11], [21, 22, 23, 24]])
    np.testing.assert_array_equal(y, x + 1)
    features, _ = sequence_batches(np.zeros((27, 3)), batch_size=2, seq_len=4)
    assert features.shape == (6, 4, 3)
    with pytest.raises(ValueError, match=r"sequence: 8 steps are too few for batch_size=2 streams"):
        sequence_batches(np.arange(8), batch_size=2, seq_len=4)

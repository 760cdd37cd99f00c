"""fit's progress display: tqdm when installed, a plain '\r' line without it, quiet at verbose=0."""

import numpy as np
import pytest

from fastrnn import Dense, OneHot, Sequential, progress


def fit(verbose):
    model = Sequential([OneHot(3), Dense(3, 3, seed=0)], seed=0).compile("sgd", "cross_entropy")
    x = np.zeros((8, 2), dtype=int)
    model.fit(x, x, epochs=2, batch_size=4, validation_data=(x, x), verbose=verbose)


def test_plain_line_without_tqdm(monkeypatch, capsys):
    monkeypatch.setattr(progress, "tqdm", None)
    fit(verbose=1)
    output = capsys.readouterr().err
    assert output.count("\n") == 2 and "\rEpoch 1/2 2/2 - loss: " in output
    assert "accuracy: " in output and "val_loss: " in output and "val_accuracy: " in output


def test_tqdm_bar_when_installed(capsys):
    pytest.importorskip("tqdm")
    fit(verbose=1)
    output = capsys.readouterr().err
    # tqdm's counter reaches both batches of an epoch; the metrics are in our format, not tqdm's.
    assert "Epoch 1/2" in output and "Epoch 2/2" in output and "| 2/2 [" in output and "val_loss=" not in output
    assert "val_loss: " in output


def test_verbose_2_prints_one_line_per_epoch_and_0_nothing(capsys):
    fit(verbose=2)
    lines = capsys.readouterr().err.strip("\n").split("\n")
    assert len(lines) == 2 and lines[1].startswith("\rEpoch 2/2 2/2 - loss: ")
    fit(verbose=0)
    assert capsys.readouterr() == ("", "")

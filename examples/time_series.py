"""A time-series model: predicts the next value of a noisy sine wave from the previous 40."""
import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, LastStep, Sequential
from fastrnn.data import sliding_windows

wave = np.sin(0.1 * np.arange(4000)) + 0.05 * np.random.default_rng(0).normal(size=4000)
x, y = sliding_windows(wave[:, None], seq_len=40, step=4)   # x (990, 40, 1); y: x one step later
model = Sequential([LSTM(1, 32, batch_first=True), LastStep(), Dense(32, 1)])
model.compile(fastrnn.optim.Adam(lr=0.01), "mse")
model.fit(x, y[:, -1], epochs=10, validation_split=0.2, verbose=2)
print("predicted", model.predict(x[-1:])[0, 0], "true", y[-1, -1, 0])

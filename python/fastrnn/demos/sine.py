"""sine: a simple RNN predicts the next sample of a noisy sine wave, against "next = last".

The classic first time-series recipe: slide a window of --window samples along the series, and
train a many-to-one model (an Elman RNN, its last step, a dense layer) to predict the sample
that follows each window. The first 70% of the series trains, the rest tests. The noise cannot
be predicted, so the best possible test RMSE is about the noise level (--noise); the naive
forecast "next sample = last sample" pays the noise twice, once in each of the two samples.
"""

import numpy as np

import fastrnn
from fastrnn import RNN, Dense, LastStep, Sequential
from fastrnn.data import sliding_windows

from .common import DemoParser, chronological_split, compare, figure, plot_losses, rmse, save

PERIOD = 40   # samples per cycle of the sine


def main(argv=None):
    parser = DemoParser("sine", __doc__)
    parser.add_setting("--samples", 8000, 1500, "length of the series")
    parser.add_setting("--epochs", 30, 6, "passes over the training windows")
    parser.add_argument("--window", type=int, default=2 * PERIOD,
                        help=f"samples per input window (default: {2 * PERIOD})")
    parser.add_argument("--noise", type=float, default=0.1, help="standard deviation of the noise (default: 0.1)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    time = np.arange(args.samples)
    clean = np.sin(2 * np.pi * time / PERIOD)
    series = (clean + args.noise * rng.standard_normal(args.samples)).astype(np.float32)

    x, y = sliding_windows(series[:, None], args.window)   # (windows, window, 1 feature)
    y = y[:, -1]                                            # the sample after each window: (windows, 1)
    (x_train, x_test), (y_train, y_test) = chronological_split(x, 0.7), chronological_split(y, 0.7)

    model = Sequential([
        RNN(1, 32, batch_first=True, seed=args.seed),       # tanh RNN over the window
        LastStep(),                                         # its output after the last sample
        Dense(32, 1, seed=args.seed),                       # -> the next sample
    ], seed=args.seed)
    model.compile(fastrnn.optim.Adam(lr=0.005, clip_norm=1.0), "mse")   # clipping: RNN gradients can spike
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_data=(x_test, y_test))

    prediction = model.predict(x_test)[:, 0]
    naive = x_test[:, -1, 0]                                # "next = last"
    model_rmse, naive_rmse = rmse(prediction, y_test[:, 0]), rmse(naive, y_test[:, 0])
    compare("test RMSE", model_rmse, 'naive "next = last"', naive_rmse)
    print(f"(noise level, the floor no forecast can beat on average: {args.noise})")
    if args.out:
        plot_losses(args.out, "sine_loss.png", "Noisy sine: loss",
                    {"training": history.history["loss"], "test": history.history["val_loss"]}, ylabel="MSE")
        plot_forecast(args.out, y_test[:, 0], prediction, clean[-len(y_test):])
    print(f"sine: test RMSE {model_rmse:.4f} (naive: {naive_rmse:.4f})")
    return {"rmse": model_rmse, "naive_rmse": naive_rmse}


def plot_forecast(out, truth, prediction, clean, shown=4 * PERIOD):
    drawing, axes = figure("Noisy sine: one-step-ahead prediction on the test part")
    steps = np.arange(shown)
    axes.plot(steps, truth[:shown], ".", color="0.6", label="noisy series (target)")
    axes.plot(steps, clean[:shown], color="0.3", linewidth=1, label="sine without noise")
    axes.plot(steps, prediction[:shown], color="C1", label="RNN: next-sample prediction")
    axes.set(xlabel="test sample", ylim=(-1.6, 1.9))
    axes.legend(loc="upper center", ncol=3)
    return save(drawing, out, "sine.png")

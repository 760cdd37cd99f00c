"""vibration: forecast the next 10 windows of a machine's vibration, one window at a time.

A rotating machine's acceleration signal, synthetic and seeded (no download): harmonics of the
shaft rotation, the ringing impulses of a bearing with an outer-race fault, and sensor noise.
The signal is cut into windows of 100 samples; the model reads 10 consecutive windows and
predicts the next one (2 stacked LSTMs of 100 units, then a dense layer with ReLU and a linear
one of 100 outputs). To forecast 10 windows ahead it predicts one, appends it to its input in
place of the oldest window, and repeats: autoregressive generation, errors included.

The baselines are naive forecasts: "seasonal naive" repeats the last shaft revolution (it
knows the rotation period, as a tachometer would), "last window" repeats the last 100 samples.
Neither the noise nor the impacts' ringing can be forecast (the impacts come a little early or
late, and the ringing is too fast to stay in phase), so the best forecast is a clean version of
the harmonics: the seasonal naive forecast copies the noise of the last revolution instead.
"""

import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, LastStep, ReLU, Sequential
from fastrnn.data import sliding_windows

from .common import DemoParser, chronological_split, compare, figure, plot_losses, rmse, save

SAMPLE_RATE = 12_000        # samples per second
SHAFT_HZ = 29.95            # 1797 rpm
FAULT_ORDER = 3.585         # outer-race fault impulses per shaft revolution (BPFO / shaft speed)
RESONANCE_HZ = 3_000        # the structural resonance each impact rings at
RING_SAMPLES = 48           # 4 ms of ringing per impact (it has decayed to 0.2% by then)
WINDOW = 100                # samples per window
CONTEXT = 10                # windows the model reads
HORIZON = 10                # windows it forecasts
TRAIN_FRACTION = 0.8


def main(argv=None):
    parser = DemoParser("vibration", __doc__)
    parser.add_setting("--seconds", 20.0, 5.0, "length of the signal", type=float)
    parser.add_setting("--epochs", 30, 12, "passes over the training sequences")
    parser.add_setting("--forecasts", 20, 10, "test forecasts (from different starting points) to average over")
    args = parser.parse_args(argv)

    signal = vibration_signal(args.seconds, args.seed)
    train, test = chronological_split(signal, TRAIN_FRACTION)
    scale = train.std()                                      # the model sees signal / scale (unit variance)
    windows = (train[:len(train) // WINDOW * WINDOW] / scale).reshape(-1, WINDOW)
    x, y = sliding_windows(windows, CONTEXT)                 # x: (sequences, 10 windows, 100 samples)
    y = y[:, -1]                                             # the window after each sequence: (sequences, 100)

    model = Sequential([
        LSTM(WINDOW, 100, num_layers=2, batch_first=True, seed=args.seed),   # 2 stacked LSTM(100)
        LastStep(),
        Dense(100, 100, seed=args.seed), ReLU(),
        Dense(100, WINDOW, seed=args.seed),                  # the next window's 100 samples
    ], seed=args.seed)
    model.compile(fastrnn.optim.Adam(lr=1e-3, clip_norm=1.0), "mse")
    history = model.fit(x, y, epochs=args.epochs, batch_size=32)

    # Forecasts from evenly spaced points of the test part: each reads the 10 windows before
    # its point and predicts the 10 after it.
    span = (CONTEXT + HORIZON) * WINDOW
    starts = np.linspace(0, len(test) - span, args.forecasts).astype(int)
    context = np.stack([test[start:start + CONTEXT * WINDOW] for start in starts])
    truth = np.stack([test[start + CONTEXT * WINDOW:start + span] for start in starts])
    forecast = scale * forecast_windows(model, context / scale)
    revolution = round(SAMPLE_RATE / SHAFT_HZ)              # samples per shaft revolution
    seasonal = repeat_end(context, revolution, truth.shape[1])
    last_window = repeat_end(context, WINDOW, truth.shape[1])

    model_rmse = rmse(forecast, truth)
    seasonal_rmse, last_window_rmse = rmse(seasonal, truth), rmse(last_window, truth)
    print(f"{args.forecasts} forecasts of {HORIZON} windows ({HORIZON * WINDOW} samples) each:")
    compare("test RMSE", model_rmse, "seasonal naive (last revolution)", seasonal_rmse)
    compare("test RMSE", model_rmse, "last window repeated", last_window_rmse)
    if args.out:
        plot_losses(args.out, "vibration_loss.png", "Bearing vibration: training loss",
                    {"training": history.history["loss"]}, ylabel="MSE (scaled)")
        plot_forecast(args.out, context[0], truth[0], forecast[0], seasonal[0])
    print(f"vibration: test RMSE {model_rmse:.4f} (seasonal naive: {seasonal_rmse:.4f}, "
          f"last window: {last_window_rmse:.4f})")
    return {"rmse": model_rmse, "seasonal_rmse": seasonal_rmse, "last_window_rmse": last_window_rmse}


def vibration_signal(seconds, seed):
    """Acceleration (in g) of a shaft running at SHAFT_HZ whose bearing has an outer-race
    fault: shaft harmonics (1x, 2x, 3x) + an impact at each fault period (each a little early
    or late: the rolling elements slip) ringing at RESONANCE_HZ + Gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * SAMPLE_RATE)
    time = np.arange(samples) / SAMPLE_RATE
    signal = sum(amplitude * np.sin(2 * np.pi * order * SHAFT_HZ * time + rng.uniform(0, 2 * np.pi))
                 for order, amplitude in ((1, 1.0), (2, 0.5), (3, 0.25)))
    fault_period = 1 / (FAULT_ORDER * SHAFT_HZ)
    impacts = np.arange(0, seconds, fault_period)
    impacts += rng.normal(0, 0.02 * fault_period, len(impacts))
    index = np.ceil(impacts * SAMPLE_RATE).astype(int)[:, None] + np.arange(RING_SAMPLES)   # (impacts, ring)
    delay = index / SAMPLE_RATE - impacts[:, None]           # seconds since the impact
    ringing = 1.5 * np.exp(-delay * 1500) * np.sin(2 * np.pi * RESONANCE_HZ * delay)
    inside = (index >= 0) & (index < samples)
    np.add.at(signal, index[inside], ringing[inside])
    return (signal + 0.3 * rng.standard_normal(samples)).astype(np.float32)


def forecast_windows(model, context):
    """(forecasts, HORIZON * WINDOW) from context (forecasts, CONTEXT * WINDOW), autoregressively:
    each predicted window is appended to the input, and the model reads the latest 10."""
    windows = context.reshape(len(context), CONTEXT, WINDOW)
    for _ in range(HORIZON):
        predicted = model.predict(windows[:, -CONTEXT:])    # (forecasts, 100)
        windows = np.concatenate([windows, predicted[:, None]], axis=1)
    return windows[:, CONTEXT:].reshape(len(context), HORIZON * WINDOW)


def repeat_end(signals, period, length):
    """The last `period` samples of each row of `signals`, repeated to `length` samples."""
    return np.tile(signals[:, -period:], -(-length // period))[:, :length]


def plot_forecast(out, context, truth, forecast, seasonal):
    drawing, axes = figure(f"Vibration: the next {HORIZON} windows of {WINDOW} samples, forecast one window at a time",
                           width=11, height=4)
    shown = 3 * WINDOW                                       # of the context, for orientation
    past = np.arange(-shown, 0)
    future = np.arange(len(truth))
    axes.plot(past, context[-shown:], color="0.6", linewidth=0.8, label="signal read by the model (end)")
    axes.plot(future, truth, color="0.2", linewidth=0.8, label="ground truth")
    axes.plot(future, forecast, color="C1", linewidth=1.2, label="LSTM forecast (autoregressive)")
    axes.plot(future, seasonal, color="C0", linewidth=0.6, alpha=0.6, label="seasonal naive")
    for boundary in range(0, len(truth) + 1, WINDOW):
        axes.axvline(boundary, color="0.85", linewidth=0.5, zorder=0)
    axes.set(xlabel="sample (12 kHz) after the forecast start", ylabel="acceleration (g)")
    axes.legend(loc="upper left", fontsize="small", ncol=2)
    return save(drawing, out, "vibration.png")

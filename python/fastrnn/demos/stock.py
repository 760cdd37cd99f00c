"""stock: an LSTM reads 7 days of Open, High, Low, Volume, Close and predicts the next Close.

The classic stock-prediction tutorial, with two corrections that keep it honest. The min-max
scaling is fitted on the training days only (fitting it on all the data, as the tutorial
does, leaks the test period's range into training), and the test RMSE is printed next to the
naive forecast "tomorrow's Close = today's Close", which is very hard to beat on real prices.
The first 70% of the days train, the last 30% test, in time order.

--csv FILE reads daily rows of Open, High, Low, Volume, Close, in that order and, like the
classic file, newest day first (--oldest-first if not); lines starting with '#' are skipped.
Without --csv the demo makes a synthetic price series, and says so.
"""

from pathlib import Path

import numpy as np

import fastrnn
from fastrnn import LSTM, Dense, LastStep, Sequential
from fastrnn.data import sliding_windows

from .common import DemoParser, compare, figure, plot_losses, rmse, save, trained

COLUMNS = ("Open", "High", "Low", "Volume", "Close")
CLOSE = COLUMNS.index("Close")
DAYS = 7                # days per input window
TRAIN_FRACTION = 0.7


def main(argv=None):
    parser = DemoParser("stock", __doc__)
    parser.add_argument("--csv", type=Path, metavar="FILE", help="daily " + ", ".join(COLUMNS) + " rows")
    parser.add_argument("--oldest-first", action="store_true", help="the --csv rows run forward in time")
    parser.add_setting("--epochs", 100, 60, "passes over the training windows")
    args = parser.parse_args(argv)

    if args.csv:
        try:
            prices, label = read_prices(args.csv, args.oldest_first), args.csv.name
        except (OSError, ValueError) as error:
            parser.error(str(error))
    else:
        prices, label = synthetic_prices(days=1000, seed=args.seed), "SYNTHETIC prices (no --csv given)"
    print(f"data: {label}, {len(prices)} days")

    # Min-max scaling of each column to [0, 1], fitted on the training days only: the test
    # days may fall outside [0, 1], as the future may leave the range of the past.
    train_days = int(len(prices) * TRAIN_FRACTION)
    low, high = prices[:train_days].min(axis=0), prices[:train_days].max(axis=0)
    scaled = ((prices - low) / (high - low)).astype(np.float32)

    x, y = sliding_windows(scaled, DAYS)                    # x: (windows, 7 days, 5 columns)
    y = y[:, -1, CLOSE:CLOSE + 1]                           # the next day's Close: (windows, 1)
    train = np.arange(len(x)) + DAYS < train_days           # windows whose target is a training day
    model = Sequential([
        LSTM(len(COLUMNS), 32, batch_first=True, seed=args.seed),
        LastStep(),
        Dense(32, 1, seed=args.seed),
    ], seed=args.seed)
    model.compile(fastrnn.optim.Adam(lr=0.01), "mse")
    # The test loss per epoch is only plotted: nothing is chosen by it. A second: no progress bar.
    history = model.fit(x[train], y[train], epochs=args.epochs, batch_size=32,
                        validation_data=(x[~train], y[~train]), verbose=0)
    trained(history.history["loss"])

    def to_price(scaled_close):
        return scaled_close * (high[CLOSE] - low[CLOSE]) + low[CLOSE]

    truth = to_price(y[~train, 0])
    prediction = to_price(model.predict(x[~train])[:, 0])
    naive = to_price(x[~train, -1, CLOSE])                  # tomorrow = today
    model_rmse, naive_rmse = rmse(prediction, truth), rmse(naive, truth)
    compare("test RMSE of Close (price units)", model_rmse, 'naive "tomorrow = today"', naive_rmse)
    outside = np.mean((truth < low[CLOSE]) | (truth > high[CLOSE]))
    if outside:
        print(f"note: {outside:.0%} of the test days close outside the training days' range "
              f"[{low[CLOSE]:.2f}, {high[CLOSE]:.2f}]; the model has never seen such prices.")
    if args.out:
        plot_losses(args.out, "stock_loss.png", f"Next-day Close, {label}: loss",
                    {"training": history.history["loss"], "test": history.history["val_loss"]}, ylabel="MSE (scaled)")
        plot_test(args.out, label, truth, prediction, naive)
    print(f"stock: test RMSE {model_rmse:.4f} (naive tomorrow = today: {naive_rmse:.4f})")
    return {"rmse": model_rmse, "naive_rmse": naive_rmse, "days": len(prices)}


def read_prices(path, oldest_first):
    """(days, 5) float64 array of Open, High, Low, Volume, Close, oldest day first."""
    expected = f"at least {5 * DAYS} rows of {len(COLUMNS)} numbers ({', '.join(COLUMNS)})"
    try:
        rows = np.loadtxt(path, delimiter=",", comments="#", ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: expected {expected}; {error}") from None
    if rows.shape[1] != len(COLUMNS) or len(rows) < 5 * DAYS:
        raise ValueError(f"{path}: expected {expected}, got shape {rows.shape}")
    return rows if oldest_first else rows[::-1]


def synthetic_prices(days, seed):
    """A made-up daily series, NOT market data: a slow cycle around 100 plus swings that keep
    their momentum for a few days (an AR(2) process), so unlike real prices it is partly
    predictable from the last days. Open, High, Low and Volume are derived from the Closes."""
    rng = np.random.default_rng(seed)
    swings = np.zeros(days)
    for day in range(2, days):
        swings[day] = 1.6 * swings[day - 1] - 0.7 * swings[day - 2] + rng.normal(0, 0.5)
    close = 100 + 10 * np.sin(2 * np.pi * np.arange(days) / 200) + swings
    open_ = np.concatenate([[close[0]], close[:-1]]) + rng.normal(0, 0.3, days)
    high = np.maximum(open_, close) + np.abs(rng.normal(0, 0.5, days))
    low = np.minimum(open_, close) - np.abs(rng.normal(0, 0.5, days))
    volume = 1e6 * (1 + np.abs(close - open_)) * rng.lognormal(0, 0.2, days)
    return np.stack([open_, high, low, volume, close], axis=1)


def plot_test(out, label, truth, prediction, naive):
    drawing, axes = figure(f"Next-day Close on the test days: {label}")
    axes.plot(truth, color="0.3", label="Close")
    axes.plot(prediction, color="C1", label="LSTM prediction")
    axes.plot(naive, color="C0", linewidth=0.8, alpha=0.7, label="naive: tomorrow = today")
    axes.set(xlabel="test day", ylabel="Close")
    axes.legend()
    return save(drawing, out, "stock.png")

"""fastrnn: hand-optimized CPU kernels for RNN, LSTM and GRU with a thin NumPy training API.

Layers follow PyTorch (names, shapes, gate orders, packed-sequence semantics); forward and
backprop-through-time run in C++ and are checked against the NumPy reference in
fastrnn.reference. Models follow Keras: fastrnn.Sequential([...]).compile(optimizer, loss), fit,
evaluate, predict, plus generate for character models, save and fastrnn.load.
"""

import os
import warnings

from . import _core, data, io, losses, optim
from .base import Layer, positive_int
from .io import load
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import History, Sequential
from .recurrent import GRU, LSTM, RNN

__version__ = "0.1.0"


def get_num_threads():
    """Threads the kernels may use (default: FASTRNN_NUM_THREADS, else all cores)."""
    return _core.get_num_threads()


def set_num_threads(threads):
    """Sets the number of threads the kernels may use (1 to 1024); results are identical for any
    count."""
    threads = positive_int(threads, "threads")
    if threads > _core.max_threads:
        raise ValueError(f"threads: expected 1 to {_core.max_threads}, got {threads}")
    _core.set_num_threads(threads)


def _apply_thread_environment():
    """FASTRNN_NUM_THREADS, when set, as if passed to set_num_threads; a value that is not a
    thread count is ignored with a warning (a typo should not silently change the speed)."""
    text = os.environ.get("FASTRNN_NUM_THREADS")
    if text is None:
        return
    try:
        set_num_threads(int(text))
    except ValueError:
        warnings.warn(f"FASTRNN_NUM_THREADS={text!r} ignored: expected an integer from 1 to {_core.max_threads}; "
                      f"using {get_num_threads()} threads", RuntimeWarning, stacklevel=2)


_apply_thread_environment()


def kernel_isa():
    """'avx2' or 'portable': the kernel variant in use (FASTRNN_ISA=portable forces the latter)."""
    return _core.kernel_isa()


__all__ = ["GRU", "LSTM", "RNN", "Dense", "Dropout", "Embedding", "History", "LastStep", "Layer", "OneHot", "ReLU",
           "Sequential", "Tanh", "data", "get_num_threads", "io", "kernel_isa", "load", "losses", "optim",
           "set_num_threads"]

"""fastrnn: hand-optimized CPU kernels for RNN, LSTM and GRU with a thin NumPy training API.

Layers follow PyTorch (names, shapes, gate orders, packed-sequence semantics); forward and
backprop-through-time run in C++ and are checked against the NumPy reference in
fastrnn.reference. Models follow Keras: fastrnn.Sequential([...]).compile(optimizer, loss), fit,
evaluate, predict, plus generate for character models, save and fastrnn.load.
"""

from . import _core, _threads, data, io, losses, optim
from ._threads import get_num_threads, set_num_threads
from .base import Layer
from .io import load
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import History, Sequential
from .recurrent import GRU, LSTM, RNN

__version__ = "0.1.0"


_threads.apply_defaults()


def kernel_isa():
    """'avx2' or 'portable': the kernel variant in use (FASTRNN_ISA=portable forces the latter)."""
    return _core.kernel_isa()


__all__ = ["GRU", "LSTM", "RNN", "Dense", "Dropout", "Embedding", "History", "LastStep", "Layer", "OneHot", "ReLU",
           "Sequential", "Tanh", "data", "get_num_threads", "io", "kernel_isa", "load", "losses", "optim",
           "set_num_threads"]

"""fastrnn: hand-optimized CPU kernels for RNN, LSTM and GRU with a thin NumPy training API.

Layers follow PyTorch (names, shapes, gate orders, packed-sequence semantics); forward and
backprop-through-time run in C++ and are checked against the NumPy reference in
fastrnn.reference. Models follow Keras: fastrnn.Sequential([...]).compile(optimizer, loss), fit,
evaluate, predict, plus generate for character models, save and fastrnn.load.
"""

from . import _core, _threads, data, distributed, io, losses, optim, reference
from ._threads import get_num_threads, set_num_threads
from .base import Layer
from .io import load
from .layers import Dense, Dropout, Embedding, LastStep, OneHot, ReLU, Tanh
from .model import Sequential
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .seq2seq import Seq2Seq
from .training import History, Model

__version__ = "0.1.0"


_threads.apply_defaults()
if _core.ignored_isa_request():
    _threads.warn_at_import(_core.ignored_isa_request())


def kernel_isa():
    """The kernel variant in use: the best this CPU can run ('avx512', 'avx2' or 'portable'), or
    the one FASTRNN_ISA names."""
    return _core.kernel_isa()


def available_isas():
    """The kernel variants this CPU can run, best first; FASTRNN_ISA may name any of them."""
    return [name for name, available, tests_only in _core.isa_variants() if available and not tests_only]


__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "Dense", "Dropout", "Embedding", "History",
           "LastStep", "Layer", "Model", "OneHot", "ReLU", "Seq2Seq", "Sequential", "Tanh", "available_isas", "data",
           "distributed", "get_num_threads", "io", "kernel_isa", "load", "losses", "optim", "reference",
           "set_num_threads"]


def __dir__():   # dir() and editors' completion: the public API, not the modules behind it
    return [*__all__, "__version__"]

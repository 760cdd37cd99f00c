"""fastrnn: hand-optimized CPU kernels for RNN, LSTM and GRU with a thin NumPy training API.

Layers follow PyTorch (names, shapes, gate orders, packed-sequence semantics); forward and
backprop-through-time run in C++ and are checked against the NumPy reference in
fastrnn.reference.
"""

from . import _core
from .base import Layer
from .recurrent import GRU, LSTM, RNN

__version__ = "0.1.0"


def get_num_threads():
    """Threads the kernels may use (default: FASTRNN_NUM_THREADS, else all cores)."""
    return _core.get_num_threads()


def set_num_threads(threads):
    """Sets the number of threads the kernels may use; results are identical for any count."""
    _core.set_num_threads(threads)


def kernel_isa():
    """'avx2' or 'portable': the kernel variant in use (FASTRNN_ISA=portable forces the latter)."""
    return _core.kernel_isa()


__all__ = ["GRU", "LSTM", "Layer", "RNN", "get_num_threads", "kernel_isa", "set_num_threads"]
